"""Our tests of MLPClassifier behaviour beyond scikit-learn's own ``test_mlp.py``.

``tests/test_sklearn_mlp.py`` runs the installed sklearn's test file against
TorchMLPClassifier. The tests here are the ports of its ideas that check more
than it does: mostly comparisons with MLPClassifier itself, from the same
weights, step by step; and the two learning-rate tests of sklearn's file that
read its private ``_optimizer.learning_rate``, pinned here through the weights
and the verbose output instead.

Where skorchlite deliberately differs from MLPClassifier, the test says so:
multiclass early stopping stratifies its split when every class can be split
(MLPClassifier never stratifies multiclass targets).
"""

import contextlib
import io
import re
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import MinMaxScaler

from skorchlite import TorchMLPClassifier, TorchMLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ACTIVATION_TYPES = ["identity", "logistic", "tanh", "relu"]


def _digits(n_class):
    X, y = load_digits(n_class=n_class, return_X_y=True)
    return MinMaxScaler().fit_transform(X[:200]), y[:200]


X_digits_multi, y_digits_multi = _digits(3)
X_digits_binary, y_digits_binary = _digits(2)
classification_datasets = [
    (X_digits_multi, y_digits_multi),
    (X_digits_binary, y_digits_binary),
]


def _small_data(target, seed):
    """30 rows, 4 features, and binary, 3-class or 3-label targets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4))
    if target == "multilabel":
        _, y = make_multilabel_classification(30, n_classes=3, random_state=seed)
    else:
        y = rng.integers(0, 2 if target == "binary" else 3, 30)
    return X, y


def _one_more_fit_from_the_same_weights(params, X, y):
    """Ours and MLPClassifier, refit once from the weights ours started with."""
    ours = TorchMLPClassifier(**params).fit(X, y)
    theirs = MLPClassifier(**params).fit(X, y)
    # Copies: ours are views of our network, which their fit would update.
    theirs.coefs_ = [coef.copy() for coef in ours.coefs_]
    theirs.intercepts_ = [bias.copy() for bias in ours.intercepts_]
    return ours.fit(X, y), theirs.fit(X, y)


# test_fit: the worked example becomes a comparison with MLPClassifier itself:
# from the same weights, one full-batch step must land on the same weights.
@pytest.mark.parametrize("activation", ACTIVATION_TYPES)
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
def test_one_sgd_step_matches_mlpclassifier(activation, target):
    X, y = _small_data(target, seed=0)
    params = dict(
        hidden_layer_sizes=(5, 4),
        activation=activation,
        solver="sgd",
        alpha=0.1,
        learning_rate_init=0.1,
        momentum=0.0,
        max_iter=1,
        batch_size=30,
        warm_start=True,
        random_state=0,
    )
    ours, theirs = _one_more_fit_from_the_same_weights(params, X, y)
    ours_params = ours.coefs_ + ours.intercepts_
    theirs_params = theirs.coefs_ + theirs.intercepts_
    for a, b in zip(ours_params, theirs_params, strict=True):
        assert_allclose(a, b, rtol=1e-10, atol=1e-14)


# test_fit, the loss: without the penalty, loss_ is MLPClassifier's loss_
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
def test_loss_matches_mlpclassifier(target):
    X, y = _small_data(target, seed=1)
    params = dict(
        hidden_layer_sizes=(5,),
        solver="sgd",
        alpha=0.0,
        max_iter=1,
        batch_size=30,
        warm_start=True,
        random_state=0,
    )
    ours, theirs = _one_more_fit_from_the_same_weights(params, X, y)
    assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)


def _fit_and_convergence_warnings(model, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    return [
        str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)
    ]


# L-BFGS stops by MLPClassifier's rule: scipy's L-BFGS-B with maxiter=max_iter,
# maxfun=max_fun and gtol=tol, n_iter_ and loss_ read from its result. From the
# same weights, a few iterations (before rounding makes the paths part) land
# on the same weights, loss and iteration count, and on the same warning, for
# each of the three stopping reasons.
@pytest.mark.parametrize(
    ("stop", "converged"),
    [
        ({"max_iter": 10, "tol": 0.0}, False),
        ({"max_fun": 7}, False),  # in the middle of an iteration
        ({"tol": 0.05}, True),  # gtol
    ],
    ids=["max_iter", "max_fun", "tol"],
)
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel", "regression"])
def test_lbfgs_stops_where_mlpclassifier_stops(target, stop, converged):
    X, y = _small_data("binary" if target == "regression" else target, seed=0)
    ours_class, their_class = TorchMLPClassifier, MLPClassifier
    if target == "regression":
        y = X @ [1.0, -2.0, 0.5, 0.0] + 0.1 * np.sin(7 * X[:, 0])
        ours_class, their_class = TorchMLPRegressor, MLPRegressor
    params = dict(
        hidden_layer_sizes=(5,), solver="lbfgs", warm_start=True, random_state=0
    )
    ours = ours_class(**params, **stop).fit(X, y)
    theirs = their_class(**params, **stop).fit(X, y)
    # Copies: ours are views of our module, which our next fit updates.
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]

    ours_warnings = _fit_and_convergence_warnings(ours, X, y)
    theirs_warnings = _fit_and_convergence_warnings(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ <= 10
    assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    # The same status and scipy message (the advice around them is our own).
    assert len(ours_warnings) == len(theirs_warnings) == (not converged)
    for our_warning, their_warning in zip(ours_warnings, theirs_warnings, strict=True):
        status, message = re.search(r"\(status=(\d)\):\n(.*)", their_warning).groups()
        assert f"(status={status}): {message}" in our_warning


# test_partial_fit_classification: full batches, so that only the order of the
# rows (irrelevant in a full batch) can differ between the two ways.
@pytest.mark.parametrize(("X", "y"), classification_datasets)
def test_partial_fit_classification(X, y):
    params = dict(solver="sgd", random_state=1, alpha=1e-5, learning_rate_init=0.2)
    clf = TorchMLPClassifier(max_iter=40, tol=0, **params).fit(X, y)
    pred1, proba1 = clf.predict(X), clf.predict_proba(X)
    clf = TorchMLPClassifier(**params)
    for _ in range(40):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert_array_equal(clf.predict(X), pred1)
    assert_allclose(clf.predict_proba(X), proba1, rtol=1e-9)
    assert clf.score(X, y) > 0.95


# test_shuffle
def test_shuffle():
    X, y = X_digits_binary[:50], y_digits_binary[:50]

    def first_coefs(shuffle):
        clf = TorchMLPClassifier(
            hidden_layer_sizes=1, max_iter=1, batch_size=1, random_state=0
        )
        return clf.set_params(shuffle=shuffle).fit(X, y).coefs_[0]

    for shuffle in (True, False):
        assert_array_equal(first_coefs(shuffle), first_coefs(shuffle))
    assert not np.array_equal(first_coefs(True), first_coefs(False))


# test_n_iter_no_change
@pytest.mark.parametrize("n_iter_no_change", [2, 5, 10, 50])
def test_n_iter_no_change(n_iter_no_change):
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    tol, max_iter = 0.01, 3000
    clf = TorchMLPClassifier(
        tol=tol, max_iter=max_iter, solver="sgd", n_iter_no_change=n_iter_no_change
    )
    clf.fit(X, y)
    assert clf.n_iter_ < max_iter
    # Each of the last n_iter_no_change + 1 epochs failed to beat the best loss
    # before it by tol (and training stopped right then).
    curve = np.array(clf.loss_curve_)
    for epoch in range(len(curve) - n_iter_no_change - 1, len(curve)):
        assert curve[epoch] > curve[:epoch].min(initial=np.inf) - tol
    improved = len(curve) - n_iter_no_change - 2
    assert curve[improved] <= curve[:improved].min(initial=np.inf) - tol


# test_early_stopping_stratified: binary targets raise sklearn's error (run
# from sklearn's file). Multiclass targets, which MLPClassifier never
# stratifies, are stratified by skorchlite when every class can be split, and
# split like MLPClassifier's otherwise: a tiny class is no error.
def test_early_stopping_with_a_tiny_class_in_multiclass_targets():
    X = np.arange(20.0).reshape(10, 2)
    y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 2]
    clf = TorchMLPClassifier(early_stopping=True, max_iter=5, random_state=0)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == 5


# test_mlp_loading_from_joblib_partial_fit
def test_mlp_loading_from_joblib_partial_fit(tmp_path):
    X, y = X_digits_binary[:60], y_digits_binary[:60]
    clf = TorchMLPClassifier(
        hidden_layer_sizes=(42,), random_state=42, learning_rate_init=0.01, max_iter=50
    )
    clf.fit(X, y)
    path = tmp_path / "mlp.pkl"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    flipped = 1 - y
    for _ in range(60):
        loaded.partial_fit(X, flipped)
    # The loaded model learned the new labels (and the original did not move).
    assert loaded.score(X, flipped) == 1.0
    assert clf.score(X, y) == 1.0


# test_mlp_sample_weight_with_early_stopping
def test_mlp_sample_weight_with_early_stopping():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    params = dict(
        hidden_layer_sizes=10,
        early_stopping=True,
        tol=1e-2,
        learning_rate_init=0.01,
        batch_size=10,
        random_state=42,
    )
    m1 = TorchMLPClassifier(**params).fit(X, y, sample_weight=np.ones(len(y)))
    m2 = TorchMLPClassifier(**params).fit(X, y)
    assert_allclose(m1.predict_proba(X), m2.predict_proba(X), rtol=1e-7)


# test_minimum_input_sample_size
def test_minimum_input_sample_size():
    with pytest.raises(ValueError, match="The validation set is too small"):
        TorchMLPClassifier(early_stopping=True, random_state=0).fit(
            [[0.0, 1.0], [1.0, 0.0]], [0, 1]
        )


def _same_start(params, X, y):
    """Ours after one epoch, and MLPClassifier fitted once and given our weights."""
    ours = TorchMLPClassifier(**params, max_iter=1, warm_start=True).fit(X, y)
    theirs = MLPClassifier(**params, max_iter=1, warm_start=True).fit(X, y)
    # Copies: ours are views of our network, which their fit would update.
    theirs.coefs_ = [coef.copy() for coef in ours.coefs_]
    theirs.intercepts_ = [bias.copy() for bias in ours.intercepts_]
    # and the stopping rule's state, which carries over warm starts
    theirs.loss_curve_ = list(ours.loss_curve_)
    theirs.best_loss_ = ours.best_loss_
    theirs._no_improvement_count = ours._no_improvement_count
    return ours, theirs


def _assert_same_weights(ours, theirs):
    ours_params = ours.coefs_ + ours.intercepts_
    theirs_params = theirs.coefs_ + theirs.intercepts_
    for a, b in zip(ours_params, theirs_params, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _verbose_output(call):
    """What ``call()`` prints, without our extras after MLPClassifier's text."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call()
    return re.sub(r", (time|validation loss) = [^\n]*", "", out.getvalue())


# test_learning_rate_warmstart: invscaling goes on from the samples seen over
# warm starts. Each fit starts at learning_rate_init (MLPClassifier builds a
# new optimizer per fit) and ends at learning_rate_init / (t_ + 1) ** power_t,
# the rate of the next partial_fit. Without momentum, the weights show it.
@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
def test_learning_rate_warmstart_matches_mlpclassifier(learning_rate):
    X = np.array([[3, 2], [1, 6], [5, 6], [-2, -4]], dtype=float)
    y = [1, 1, 1, 0]
    params = dict(
        solver="sgd",
        hidden_layer_sizes=4,
        learning_rate=learning_rate,
        learning_rate_init=0.5,
        power_t=0.25,
        momentum=0.0,
        shuffle=False,
        random_state=0,
    )
    ours, theirs = _same_start(params, X, y)
    for model in (ours, theirs):
        model.fit(X, y)
        model.partial_fit(X, y)
    assert ours.t_ == theirs.t_ == 12
    assert theirs._optimizer.learning_rate == pytest.approx(
        0.5 / 13**0.25 if learning_rate == "invscaling" else 0.5
    )
    _assert_same_weights(ours, theirs)


# test_adaptive_learning_rate: on a plateau the rate is divided by 5, and
# training stops once it is below 1e-6. Same epochs, weights and messages.
def test_adaptive_learning_rate_matches_mlpclassifier():
    X = np.array([[3, 2], [1, 6]], dtype=float)
    y = [1, 0]
    params = dict(
        tol=0.5,
        solver="sgd",
        learning_rate="adaptive",
        momentum=0.0,
        hidden_layer_sizes=(5,),
        random_state=0,
    )
    ours, theirs = _same_start(params, X, y)
    outputs = []
    for model in (ours, theirs):
        model.set_params(max_iter=3000, verbose=True)
        outputs.append(_verbose_output(lambda model=model: model.fit(X, y)))
    assert 1e-6 > theirs._optimizer.learning_rate
    assert ours.n_iter_ == theirs.n_iter_ < 3000
    # The reported loss adds the L2 term of the weights after each epoch's
    # steps once (cheaper than per batch); MLPClassifier's, before each step.
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    _assert_same_weights(ours, theirs)
    messages = [line for line in outputs[0].splitlines() if "tol=" in line]
    assert messages == [line for line in outputs[1].splitlines() if "tol=" in line]
    assert messages[0].endswith("Setting learning rate to 0.000200")
    assert messages[-1].endswith("Learning rate too small. Stopping.")


# test_verbose_sgd, with the text itself: MLPClassifier's lines, word for word.
@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_lines_are_mlpclassifiers(early_stopping):
    X, y = X_digits_binary[:60], y_digits_binary[:60]
    params = dict(
        solver="sgd",
        tol=0.5,
        n_iter_no_change=2,
        early_stopping=early_stopping,
        verbose=True,
        random_state=0,
    )
    outputs = [
        _verbose_output(lambda cls=cls: cls(**params).fit(X, y))
        for cls in (TorchMLPClassifier, MLPClassifier)
    ]
    templates = [re.sub(r"\d+\.\d+", "<float>", out) for out in outputs]
    # The split and initial weights differ, the printed lines do not.
    assert templates[0] == templates[1]
    assert ("Validation score: <float>" in templates[0]) == early_stopping
