"""A port of scikit-learn's ``neural_network/tests/test_mlp.py`` to TorchMLPClassifier.

Each test names the sklearn test it ports. Where skorchlite deliberately differs
from MLPClassifier, the test checks skorchlite's documented behaviour and says so:

- ``n_iter_`` accumulates over warm-started fits and ``partial_fit`` calls
  (MLPClassifier 1.9 restarts it at 0 on every call);
- ``partial_fit`` is unavailable (AttributeError) with ``early_stopping=True``,
  like it is with lbfgs (MLPClassifier raises ValueError when called);
- a single class is an error, and an early-stopping split falls back to an
  unstratified one when a class has too few members to stratify.
"""

import re
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler

from skorchlite import TorchMLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ACTIVATION_TYPES = ["identity", "logistic", "tanh", "relu"]


def _digits(n_class):
    X, y = load_digits(n_class=n_class, return_X_y=True)
    return MinMaxScaler().fit_transform(X[:200]), y[:200]


X_digits_multi, y_digits_multi = _digits(3)
X_digits_binary, y_digits_binary = _digits(2)
X_digits_raw, y_digits_raw = load_digits(n_class=2, return_X_y=True)
classification_datasets = [
    (X_digits_multi, y_digits_multi),
    (X_digits_binary, y_digits_binary),
]
X_iris, y_iris = load_iris(return_X_y=True)


def lr_of(clf):
    return clf._optimizer.param_groups[0]["lr"]


# test_alpha
def test_alpha():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    sums = []
    for alpha in (0.0, 1.0):
        clf = TorchMLPClassifier(hidden_layer_sizes=10, alpha=alpha, random_state=1)
        clf.fit(X, y)
        sums.append([np.abs(c).sum() for c in clf.coefs_])
    assert (np.array(sums[0]) > np.array(sums[1])).all()


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
    theirs.coefs_ = ours.coefs_
    theirs.intercepts_ = ours.intercepts_
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


# test_lbfgs_classification
@pytest.mark.parametrize(("X", "y"), classification_datasets)
@pytest.mark.parametrize("activation", ACTIVATION_TYPES)
def test_lbfgs_classification(X, y, activation):
    X_train, y_train, X_test = X[:150], y[:150], X[150:]
    clf = TorchMLPClassifier(
        solver="lbfgs",
        hidden_layer_sizes=50,
        max_iter=150,
        random_state=1,
        activation=activation,
    )
    clf.fit(X_train, y_train)
    y_predict = clf.predict(X_test)
    assert clf.score(X_train, y_train) > 0.95
    assert y_predict.shape == (X_test.shape[0],)
    assert y_predict.dtype.kind == y_train.dtype.kind


# test_lbfgs_classification_maxfun
@pytest.mark.parametrize(("X", "y"), classification_datasets)
def test_lbfgs_classification_maxfun(X, y):
    clf = TorchMLPClassifier(
        solver="lbfgs", hidden_layer_sizes=50, max_iter=150, max_fun=10, random_state=1
    )
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.n_iter_ <= 10


# test_learning_rate_warmstart
@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
def test_learning_rate_warmstart(learning_rate):
    X = [[3, 2], [1, 6], [5, 6], [-2, -4]]
    y = [1, 1, 1, 0]
    clf = TorchMLPClassifier(
        solver="sgd",
        hidden_layer_sizes=4,
        learning_rate=learning_rate,
        max_iter=1,
        power_t=0.25,
        warm_start=True,
    )
    clf.fit(X, y)
    prev_eta = lr_of(clf)
    clf.fit(X, y)
    post_eta = lr_of(clf)
    if learning_rate == "constant":
        assert prev_eta == post_eta
    else:
        assert post_eta == pytest.approx(clf.learning_rate_init / (8 + 1) ** 0.25)


# test_multilabel_classification
def test_multilabel_classification():
    X, y = make_multilabel_classification(
        n_samples=50, random_state=0, return_indicator=True
    )
    clf = TorchMLPClassifier(
        solver="lbfgs",
        hidden_layer_sizes=50,
        alpha=1e-5,
        max_iter=150,
        random_state=0,
        activation="logistic",
    )
    clf.fit(X, y)
    assert clf.score(X, y) > 0.97

    clf = TorchMLPClassifier(
        solver="sgd",
        hidden_layer_sizes=50,
        random_state=0,
        activation="logistic",
        alpha=1e-5,
        learning_rate_init=0.2,
    )
    for _ in range(100):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    assert clf.score(X, y) > 0.9

    # Early stopping works with multilabel targets (the split is not stratified).
    clf = TorchMLPClassifier(early_stopping=True, max_iter=20, random_state=0)
    assert clf.fit(X, y).predict(X).shape == y.shape


# test_partial_fit_classes_error
def test_partial_fit_classes_error():
    clf = TorchMLPClassifier(solver="sgd")
    clf.partial_fit([[3, 2]], [0], classes=[0, 1])
    with pytest.raises(ValueError):
        clf.partial_fit([[3, 2]], [0], classes=[1, 2])


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


# test_partial_fit_unseen_classes
def test_partial_fit_unseen_classes():
    clf = TorchMLPClassifier(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


# test_partial_fit_errors
def test_partial_fit_errors():
    X, y = [[3, 2], [1, 6]], [1, 0]
    with pytest.raises(ValueError):
        TorchMLPClassifier(solver="sgd").partial_fit(X, y, classes=[2])
    assert not hasattr(TorchMLPClassifier(solver="lbfgs"), "partial_fit")


# test_predict_proba_binary
def test_predict_proba_binary():
    X, y = X_digits_binary[:50], y_digits_binary[:50]
    clf = TorchMLPClassifier(
        hidden_layer_sizes=5, activation="logistic", random_state=1
    )
    clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)
    assert y_proba.shape == (50, 2)
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    assert_allclose(y_log_proba, np.log(y_proba))
    assert roc_auc_score(y, y_proba[:, 1]) == 1.0


# test_predict_proba_multiclass
def test_predict_proba_multiclass():
    X, y = X_digits_multi[:10], y_digits_multi[:10]
    clf = TorchMLPClassifier(hidden_layer_sizes=5).fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)
    assert y_proba.shape == (10, np.unique(y).size)
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    assert_allclose(y_log_proba, np.log(y_proba))


# test_predict_proba_multilabel
def test_predict_proba_multilabel():
    X, Y = make_multilabel_classification(
        n_samples=50, random_state=0, return_indicator=True
    )
    clf = TorchMLPClassifier(solver="lbfgs", hidden_layer_sizes=30, random_state=0)
    clf.fit(X, Y)
    y_proba = clf.predict_proba(X)
    assert y_proba.shape == Y.shape
    assert_array_equal(y_proba > 0.5, Y)
    y_log_proba = clf.predict_log_proba(X)
    # Not a softmax: rows do not sum to one.
    assert (y_proba.sum(1) - 1).dot(y_proba.sum(1) - 1) > 1e-10
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    assert_allclose(y_log_proba, np.log(y_proba))


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


# test_sparse_matrices
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array])
def test_sparse_matrices(container):
    X, y = X_digits_binary[:50], y_digits_binary[:50]
    X_sparse = container(X)
    clf = TorchMLPClassifier(solver="lbfgs", hidden_layer_sizes=15, random_state=1)
    pred1 = clf.fit(X, y).predict(X)
    pred2 = clf.fit(X_sparse, y).predict(X_sparse)
    assert_array_equal(pred1, pred2)
    assert_array_equal(clf.predict(X), clf.predict(X_sparse))


# test_tolerance
def test_tolerance():
    clf = TorchMLPClassifier(tol=0.5, max_iter=3000, solver="sgd")
    clf.fit([[3, 2], [1, 6]], [1, 0])
    assert clf.max_iter > clf.n_iter_


# test_verbose_sgd
def test_verbose_sgd(capsys):
    X, y = [[3, 2], [1, 6]], [1, 0]
    clf = TorchMLPClassifier(solver="sgd", max_iter=2, verbose=10, hidden_layer_sizes=2)
    clf.fit(X, y)
    clf.partial_fit(X, y)
    out, _ = capsys.readouterr()
    assert "Epoch" in out


# test_early_stopping
def test_early_stopping():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    tol = 0.2
    clf = TorchMLPClassifier(tol=tol, max_iter=3000, solver="sgd", early_stopping=True)
    clf.fit(X, y)
    assert clf.max_iter > clf.n_iter_
    assert clf.best_loss_ is None
    assert isinstance(clf.validation_scores_, list)
    valid_scores = clf.validation_scores_
    best_valid_score = clf.best_validation_score_
    assert max(valid_scores) == best_valid_score
    assert best_valid_score + tol > valid_scores[-2]
    assert best_valid_score + tol > valid_scores[-1]

    clf = TorchMLPClassifier(tol=tol, max_iter=3000, solver="sgd", early_stopping=False)
    clf.fit(X, y)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.best_loss_ is not None


# test_adaptive_learning_rate
def test_adaptive_learning_rate():
    clf = TorchMLPClassifier(
        tol=0.5, max_iter=3000, solver="sgd", learning_rate="adaptive"
    )
    clf.fit([[3, 2], [1, 6]], [1, 0])
    assert clf.max_iter > clf.n_iter_
    assert 1e-6 > lr_of(clf)


# test_warm_start
def test_warm_start():
    X, y = X_iris, y_iris
    y_2classes = np.array([0] * 75 + [1] * 75)
    y_3classes = np.array([0] * 40 + [1] * 40 + [2] * 70)
    y_3classes_alt = np.array([0] * 50 + [1] * 50 + [3] * 50)
    y_4classes = np.array([0] * 37 + [1] * 37 + [2] * 38 + [3] * 38)
    y_5classes = np.array([0] * 30 + [1] * 30 + [2] * 30 + [3] * 30 + [4] * 30)

    def make():
        return TorchMLPClassifier(
            hidden_layer_sizes=2, solver="lbfgs", warm_start=True, random_state=42
        )

    clf = make().fit(X, y)
    clf.fit(X, y)
    clf.fit(X, y_3classes)

    for y_i in (y_2classes, y_3classes_alt, y_4classes, y_5classes):
        clf = make().fit(X, y)
        message = (
            "warm_start can only be used where `y` has the same classes as in the "
            f"previous call to fit. Previously got [0 1 2], `y` has {np.unique(y_i)}"
        )
        with pytest.raises(ValueError, match=re.escape(message)):
            clf.fit(X, y_i)


# test_warm_start_full_iteration (n_iter_ accumulates in skorchlite: each warm
# fit runs max_iter more epochs)
def test_warm_start_full_iteration():
    clf = TorchMLPClassifier(
        hidden_layer_sizes=2, solver="sgd", warm_start=True, max_iter=3
    )
    clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 3
    clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 6
    assert len(clf.loss_curve_) == 6


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


# test_n_iter_no_change_inf
def test_n_iter_no_change_inf():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    clf = TorchMLPClassifier(
        tol=1e9, max_iter=30, solver="sgd", n_iter_no_change=np.inf
    )
    clf.fit(X, y)
    assert clf.n_iter_ == 30


# test_early_stopping_stratified: where a class is too small to stratify,
# skorchlite holds out an unstratified split instead of raising.
def test_early_stopping_with_a_tiny_class():
    X = [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]]
    y = [0, 0, 0, 0, 0, 1]
    clf = TorchMLPClassifier(early_stopping=True, max_iter=5, random_state=0)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_


# test_mlp_early_stopping_string_labels
def test_mlp_early_stopping_string_labels():
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=200, n_features=10, n_classes=3, n_informative=5, random_state=42
    )
    y = np.array(["class_a", "class_b", "class_c"], dtype=object)[y]
    clf = TorchMLPClassifier(early_stopping=True, max_iter=50, random_state=42)
    clf.fit(X, y)
    assert clf.validation_scores_ is not None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert np.isfinite(clf.validation_scores_).all()


# test_mlp_classifier_dtypes_casting
def test_mlp_classifier_dtypes_casting():
    params = dict(alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=100)
    X_train, y_train = X_digits_raw[:300], y_digits_raw[:300]
    X_test = X_digits_raw[300:]
    clf_64 = TorchMLPClassifier(tol=1e-1, **params).fit(X_train, y_train)
    clf_32 = TorchMLPClassifier(tol=1e-1, **params)
    clf_32.fit(X_train.astype(np.float32), y_train)
    X_test_32 = X_test.astype(np.float32)
    assert_array_equal(clf_64.predict(X_test), clf_32.predict(X_test_32))
    assert_allclose(
        clf_64.predict_proba(X_test), clf_32.predict_proba(X_test_32), rtol=1e-2
    )


# test_mlp_param_dtypes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_param_dtypes(dtype):
    X, y = X_digits_raw.astype(dtype), y_digits_raw
    clf = TorchMLPClassifier(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=50, tol=1e-1
    )
    clf.fit(X[:300], y[:300])
    clf.predict(X[300:])
    assert all(intercept.dtype == dtype for intercept in clf.intercepts_)
    assert all(coef.dtype == dtype for coef in clf.coefs_)


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


# test_preserve_feature_names
def test_preserve_feature_names():
    pd = pytest.importorskip("pandas", reason="pandas is a test extra")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.tile([0, 1], 5), name="colname_y")
    clf = TorchMLPClassifier(early_stopping=True, validation_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        clf.fit(X, y)


# test_mlp_warm_start_with_early_stopping
def test_mlp_warm_start_with_early_stopping():
    clf = TorchMLPClassifier(
        max_iter=10, random_state=0, warm_start=True, early_stopping=True
    )
    clf.fit(X_iris, y_iris)
    n_validation_scores = len(clf.validation_scores_)
    clf.set_params(max_iter=20)
    clf.fit(X_iris, y_iris)
    assert len(clf.validation_scores_) > n_validation_scores


# test_mlp_warm_start_no_convergence (n_iter_ accumulates in skorchlite)
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_mlp_warm_start_no_convergence(solver):
    clf = TorchMLPClassifier(
        solver=solver,
        warm_start=True,
        early_stopping=False,
        max_iter=10,
        n_iter_no_change=np.inf,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 10
    clf.set_params(max_iter=20)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 30


# test_mlp_partial_fit_after_fit
def test_mlp_partial_fit_after_fit():
    clf = TorchMLPClassifier(early_stopping=True, random_state=0, max_iter=10)
    clf.fit(X_iris, y_iris)
    with pytest.raises(AttributeError) as info:
        clf.partial_fit(X_iris, y_iris)
    assert "partial_fit does not support early_stopping=True" in str(
        info.value.__cause__
    )


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
