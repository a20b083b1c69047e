"""Behaviour tests of TorchMLPClassifier: the estimator bullets of issue 2."""

import contextlib
import copy
import inspect
import io
import math
import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, log_expit, softmax
from sklearn.base import clone
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skorchlite import TorchMLPClassifier
from skorchlite._engine import loop
from skorchlite._engine.loop import StackTraining
from skorchlite._engine.network import Dropout
from skorchlite._engine.solvers import SOLVERS
from skorchlite._engine.spec import SolverSettings

# ------------------------------------------------------------- parameters


def test_parameters_and_defaults_match_mlpclassifier():
    ours = TorchMLPClassifier().get_params()
    theirs = MLPClassifier().get_params()
    # MLPClassifier's `loss` is fixed to log loss; ours is picked from y.
    shared = set(theirs) - {"loss"}
    assert shared <= set(ours)
    for name in shared:
        assert ours[name] == theirs[name], name


def test_signature_keeps_mlpclassifier_positional_parameters():
    def positional(cls):
        return [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD
        ]

    assert positional(TorchMLPClassifier) == positional(MLPClassifier)


def test_torch_additions_defaults():
    params = TorchMLPClassifier().get_params()
    assert params["device"] == "auto"
    assert params["dtype"] is None
    assert params["dropout"] == 0.0
    assert params["class_weight"] is None
    assert params["max_grad_norm"] is None


# ---------------------------------------------------------- target policy


def _last_linear(module):
    return [layer for layer in module if isinstance(layer, nn.Linear)][-1]


@pytest.mark.parametrize(
    ("fixture", "n_outputs", "out_activation"),
    [
        ("fitted_binary", 1, "logistic"),
        ("fitted_multiclass", 3, "softmax"),
        ("fitted_multilabel", 4, "logistic"),
    ],
)
def test_outputs_follow_label_count(request, fixture, n_outputs, out_activation):
    clf = request.getfixturevalue(fixture)
    assert clf.n_outputs_ == n_outputs
    assert clf.out_activation_ == out_activation
    assert _last_linear(clf.module_).out_features == n_outputs
    assert clf.coefs_[-1].shape[1] == n_outputs


def _training_loss_at(clf, X, y):
    """The loss_ of one full-batch epoch that starts from clf's current weights."""
    clf = copy.deepcopy(clf).set_params(
        warm_start=True, max_iter=1, alpha=0.0, batch_size=len(X)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y).loss_


def test_binary_loss_is_bce_on_one_logit(fitted_binary, moons):
    X, y = moons
    # The loss of the epoch is computed before its single step: it is the log
    # loss of the starting weights' probabilities (BCE-with-logits, exactly).
    expected = log_loss(y, fitted_binary.predict_proba(X))
    assert_allclose(_training_loss_at(fitted_binary, X, y), expected, rtol=1e-10)


def test_multiclass_loss_is_cross_entropy(fitted_multiclass, blobs):
    X, y = blobs
    expected = log_loss(y, fitted_multiclass.predict_proba(X))
    assert_allclose(_training_loss_at(fitted_multiclass, X, y), expected, rtol=1e-10)


def test_multilabel_loss_is_per_label_bce_summed(fitted_multilabel, multilabel):
    X, Y = multilabel
    P = fitted_multilabel.predict_proba(X)
    expected = sum(log_loss(Y[:, k], P[:, k]) for k in range(Y.shape[1]))
    assert_allclose(_training_loss_at(fitted_multilabel, X, Y), expected, rtol=1e-10)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog"]),
        np.array([-1, 1]),
        np.array([10, 20, 30]),
        np.array([False, True]),
        np.array(["a", "b", "c"], dtype=object),
        np.array([1.0, 2.0]),
    ],
    ids=["str", "pm1", "10-20-30", "bool", "object", "float"],
)
def test_any_labels_in_and_out(make_clf, fit_quietly, blobs, labels):
    X, y = blobs
    y = labels[y % len(labels)]
    clf = fit_quietly(make_clf(learning_rate_init=0.05, max_iter=30), X, y)
    assert_array_equal(clf.classes_, np.unique(labels))
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype
    assert set(pred) <= set(labels)
    assert accuracy_score(y, pred) > 0.9
    proba = clf.predict_proba(X)
    assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])


def test_binary_decision_function_positive_means_second_class(make_clf, moons):
    X, y = moons
    y = np.where(y == 1, "yes", "no")
    clf = make_clf(max_iter=30, learning_rate_init=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (len(X),)
    assert_array_equal(clf.predict(X), np.where(scores > 0, "yes", "no"))


# ---------------------------------------------------------- probabilities


def test_binary_predict_proba_has_two_columns(fitted_binary, moons):
    X, _ = moons
    proba = fitted_binary.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert proba.dtype == np.float64
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(proba[:, 1], expit(fitted_binary.decision_function(X)))


def test_multiclass_predict_proba_is_softmax_of_decision(fitted_multiclass, blobs):
    X, _ = blobs
    proba = fitted_multiclass.predict_proba(X)
    decision = fitted_multiclass.decision_function(X)
    assert proba.shape == decision.shape == (len(X), 3)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(proba, softmax(decision, axis=1))
    assert_array_equal(decision.argmax(axis=1), proba.argmax(axis=1))


def test_multilabel_predict_proba_is_sigmoid_per_label(fitted_multilabel, multilabel):
    X, Y = multilabel
    proba = fitted_multilabel.predict_proba(X)
    assert proba.shape == Y.shape
    assert_allclose(proba, expit(fitted_multilabel.decision_function(X)))
    assert_array_equal(fitted_multilabel.predict(X), (proba > 0.5).astype(int))


@pytest.mark.parametrize(
    "fixture", ["fitted_binary", "fitted_multiclass", "fitted_multilabel"]
)
def test_predict_log_proba_and_score(request, fixture, moons, blobs, multilabel):
    clf = request.getfixturevalue(fixture)
    X, y = {
        "fitted_binary": moons,
        "fitted_multiclass": blobs,
        "fitted_multilabel": multilabel,
    }[fixture]
    proba = clf.predict_proba(X)
    assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))


def test_predict_log_proba_keeps_tiny_probabilities(make_clf, fit_quietly):
    # A linear model whose logit is x itself. Between 30 and 40 the small
    # binary probability is still a normal float, but 1 - expit(z) loses most
    # of its digits (and is exactly 0 from z ~ 37 on): only expit(-z) keeps it.
    clf = fit_quietly(
        make_clf(hidden_layer_sizes=(), max_iter=1), [[-1.0], [1.0]], [0, 1]
    )
    with torch.no_grad():
        clf.module_[0].weight.fill_(1.0)
        clf.module_[0].bias.zero_()
    z = np.array([30.0, 33.0, 36.0, 38.0, 40.0, -30.0, -35.0, -40.0])
    assert_array_equal(clf.decision_function(z[:, None]), z)
    expected = np.column_stack([log_expit(-z), log_expit(z)])
    # The log of the probability near 1 is log(p), as MLPClassifier computes
    # it: exact to 1e-15 in absolute terms. The small one must be exact.
    assert_allclose(clf.predict_log_proba(z[:, None]), expected, rtol=1e-12, atol=1e-15)
    assert_allclose(clf.predict_proba(z[:, None]), np.exp(expected), rtol=1e-12)


# ------------------------------------------- fit / partial_fit / warm_start


def test_fitted_attributes(fitted_binary, moons):
    X, _ = moons
    clf = fitted_binary
    assert_array_equal(clf.classes_, [0, 1])
    assert clf.n_features_in_ == 2
    assert not hasattr(clf, "feature_names_in_")
    assert isinstance(clf.module_, nn.Sequential)
    assert not any(m.training for m in clf.module_.modules())
    assert clf.n_layers_ == 3
    assert clf.n_iter_ == len(clf.loss_curve_) == 40
    assert clf.t_ == clf.n_iter_ * len(X)
    assert all(isinstance(v, float) for v in clf.loss_curve_)
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


@pytest.mark.parametrize(
    ("fixture", "data"),
    [
        ("fitted_binary", "moons"),
        ("fitted_multiclass", "blobs"),
        ("fitted_multilabel", "multilabel"),
    ],
)
def test_coefs_and_intercepts_shaped_like_mlpclassifier(request, fixture, data):
    clf = request.getfixturevalue(fixture)
    X, y = request.getfixturevalue(data)
    reference = MLPClassifier(hidden_layer_sizes=(16,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(X, y)
    assert [c.shape for c in clf.coefs_] == [c.shape for c in reference.coefs_]
    assert [b.shape for b in clf.intercepts_] == [
        b.shape for b in reference.intercepts_
    ]
    assert clf.n_outputs_ == reference.n_outputs_
    assert clf.out_activation_ == reference.out_activation_
    assert clf.n_layers_ == reference.n_layers_


def test_warm_start_continues_and_accumulates(make_clf, fit_quietly, moons):
    X, y = moons
    clf = make_clf(max_iter=5, warm_start=True, learning_rate_init=0.05)
    fit_quietly(clf, X, y)
    first_curve = list(clf.loss_curve_)
    weights = copy.deepcopy(clf.module_.state_dict())
    fit_quietly(clf, X, y)
    # Like MLPClassifier: n_iter_ counts this call; t_ and loss_curve_ go on.
    assert clf.n_iter_ == 5
    assert clf.t_ == 10 * len(X)
    assert clf.loss_curve_[:5] == first_curve
    assert len(clf.loss_curve_) == 10
    # It went on from the previous weights rather than a new initialization.
    assert clf.loss_curve_[5] < first_curve[0]
    assert not torch.equal(clf.module_[0].weight, weights["0.weight"])


def test_fit_without_warm_start_starts_over(make_clf, fit_quietly, moons):
    X, y = moons
    clf = make_clf(max_iter=5)
    first = fit_quietly(clf, X, y).predict_proba(X)
    fit_quietly(clf, X, y)
    assert clf.n_iter_ == 5
    assert len(clf.loss_curve_) == 5
    assert_array_equal(clf.predict_proba(X), first)


def test_partial_fit_runs_one_epoch_per_call(make_clf, moons):
    X, y = moons
    clf = make_clf()
    clf.partial_fit(X[:50], y[:50], classes=[0, 1])
    assert clf.n_iter_ == 1
    clf.partial_fit(X[50:], y[50:])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1
    assert clf.t_ == 50 + 50 + 100
    assert len(clf.loss_curve_) == 3


def test_partial_fit_after_fit_continues(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(max_iter=4), X, y)
    curve = list(clf.loss_curve_)
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1
    assert clf.t_ == 5 * len(X)
    assert clf.loss_curve_[:4] == curve
    assert len(clf.loss_curve_) == 5


def test_partial_fit_needs_classes_on_first_call(make_clf, moons):
    X, y = moons
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        make_clf().partial_fit(X, y)


def test_partial_fit_accepts_classes_missing_from_first_batch(make_clf, blobs):
    X, y = blobs
    clf = make_clf()
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.n_outputs_ == 3
    clf.partial_fit(X[y == 2], y[y == 2])
    assert_array_equal(clf.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y + 1)


@pytest.mark.parametrize(
    ("labels", "classes"),
    [([0, 1, 2], [2, 0, 1]), (["a", "b", "c"], ["c", "a", "b"])],
)
def test_partial_fit_sorts_the_classes_it_is_given(make_clf, blobs, labels, classes):
    X, y = blobs
    y = np.asarray(labels)[y]
    given_unsorted = make_clf().partial_fit(X, y, classes=classes)
    given_sorted = make_clf().partial_fit(X, y, classes=sorted(classes))
    assert_array_equal(given_unsorted.classes_, sorted(classes))
    # The same model: each label encoded to the same output, whatever the order
    # of classes; predict_proba's columns follow classes_.
    assert_array_equal(given_unsorted.predict_proba(X), given_sorted.predict_proba(X))
    assert_array_equal(given_unsorted.predict(X), given_sorted.predict(X))
    proba = given_unsorted.predict_proba(X)
    assert_array_equal(
        given_unsorted.predict(X), given_unsorted.classes_[proba.argmax(1)]
    )


def test_partial_fit_unavailable_with_lbfgs():
    clf = TorchMLPClassifier(solver="lbfgs")
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit") as info:
        clf.partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])
    assert "lbfgs is not stochastic" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # MLPClassifier's exception and message.
        ({"early_stopping": True}, "partial_fit does not support early_stopping=True"),
        ({"class_weight": "balanced"}, "class_weight='balanced'"),
    ],
)
@pytest.mark.parametrize("fitted_first", [False, True])
def test_partial_fit_refuses_what_it_cannot_honour(
    make_clf, fit_quietly, moons, params, message, fitted_first
):
    X, y = moons
    clf = make_clf(**params)
    if fitted_first:
        fit_quietly(clf, X, y)
    before = dict(vars(clf))
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.partial_fit(X, y, classes=[0, 1])
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[name] is value for name, value in before.items())


# --------------------------------------------------------- early stopping


def _validation_split(clf, X, y):
    """Rebuild the split the estimator held out (documented seed policy)."""
    n_val = max(math.ceil(clf.validation_fraction * len(X)), 2)
    return train_test_split(
        X, y, test_size=n_val, random_state=clf._seed % 2**32, stratify=y
    )


@pytest.fixture(scope="module")
def early_stopped():
    from sklearn.datasets import make_classification

    X, y = make_classification(
        200, n_features=6, n_informative=3, flip_y=0.15, random_state=0
    )
    clf = TorchMLPClassifier(
        hidden_layer_sizes=(32,),
        max_iter=60,
        random_state=0,
        early_stopping=True,
        validation_fraction=0.2,
        learning_rate_init=0.05,
        n_iter_no_change=4,
        tol=0.0,
    ).fit(X, y)
    return clf, X, y


def test_early_stopping_attributes(early_stopped):
    clf, _, _ = early_stopped
    assert clf.n_iter_ < clf.max_iter
    assert clf.best_loss_ is None
    assert isinstance(clf.validation_scores_, list)
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_early_stopping_stops_n_iter_no_change_after_the_best(early_stopped):
    clf, _, _ = early_stopped
    scores = np.array(clf.validation_scores_)
    last_best_epoch = len(scores) - np.argmax(scores[::-1])  # 1-based
    # With tol=0 each epoch below the best counts; training stops once the
    # count exceeds n_iter_no_change.
    assert clf.n_iter_ - last_best_epoch == clf.n_iter_no_change + 1


def test_early_stopping_restores_best_weights(early_stopped):
    clf, X, y = early_stopped
    # The last epochs were worse than the best one ...
    assert clf.validation_scores_[-1] < clf.best_validation_score_
    # ... yet the module scores the best validation score on the held-out rows.
    _, X_val, _, y_val = _validation_split(clf, X, y)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)


def test_early_stopping_ties_keep_the_latest_best_epoch(monkeypatch):
    # Validation accuracy on 12 rows ties often: here epochs 4 to 12 share the
    # best score and the 8 after them are worse. The weights kept are those
    # of the latest best epoch, which has trained longest (MLPClassifier keeps
    # the first; docs/user_guide/early_stopping.rst says so).
    X, y = make_moons(60, noise=0.3, random_state=0)
    clf = TorchMLPClassifier(
        (8,),
        max_iter=20,
        random_state=2,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=1000,
        learning_rate_init=0.03,
        device="cpu",
    )
    states = []
    real_scores = StackTraining._scores

    def record_validation_pass(self):
        # Once per epoch, on the weights the epoch reached.
        states.append({k: v.clone() for k, v in clf.module_.state_dict().items()})
        return real_scores(self)

    monkeypatch.setattr(StackTraining, "_scores", record_validation_pass)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    scores = np.array(clf.validation_scores_)
    assert len(states) == len(scores) == 20
    best_epochs = np.flatnonzero(scores == scores.max())
    first, latest = best_epochs[0], best_epochs[-1]
    assert first < latest < len(scores) - 1  # a tie, then worse epochs
    kept = clf.module_.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in states[latest].items())
    assert not all(torch.equal(kept[k], v) for k, v in states[first].items())


def test_early_stopping_split_is_stratified(early_stopped):
    clf, X, y = early_stopped
    _, _, _, y_val = _validation_split(clf, X, y)
    counts = np.bincount(y_val)
    expected = np.bincount(y) * len(y_val) / len(y)
    assert np.abs(counts - expected).max() <= 1


def test_early_stopping_with_string_labels(make_clf, blobs):
    X, y = blobs
    labels = np.array(["x", "y", "z"], dtype=object)[y]
    clf = make_clf(early_stopping=True, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, labels)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert np.isfinite(clf.validation_scores_).all()


# ------------------------------------------------------ convergence warning


def test_convergence_warning_when_max_iter_reached(make_clf, moons):
    X, y = moons
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        make_clf(max_iter=3).fit(X, y)


def test_no_convergence_warning_when_the_loss_plateaus(make_clf, moons):
    X, y = moons
    clf = make_clf(max_iter=50, tol=1e9, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    # Epoch 1 sets the best loss; epochs 2-4 fail to beat it by tol.
    assert clf.n_iter_ == 4


def test_lbfgs_convergence_warning(make_clf, moons):
    X, y = moons
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = make_clf(solver="lbfgs", max_iter=2, hidden_layer_sizes=(16,)).fit(X, y)
    assert clf.n_iter_ <= 2


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 2},  # Stochastic Optimizer: Maximum iterations reached
        {"solver": "lbfgs", "max_iter": 1},  # lbfgs failed to converge
        {"batch_size": 10**6},  # batch_size clipped
    ],
)
@pytest.mark.parametrize("context", [contextlib.nullcontext, torch.no_grad])
def test_warnings_name_the_line_that_called_fit(make_clf, moons, params, context):
    X, y = moons
    clf = make_clf(**params)
    with context():
        caught = _warnings_of(lambda: clf.fit(X, y))
    line = inspect.currentframe().f_lineno - 1
    assert caught
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)] * len(caught)


def test_search_warnings_name_the_search_not_skorchlite(make_clf, moons):
    # Inside GridSearchCV, the caller of fit is sklearn, as for MLPClassifier.
    X, y = moons
    search = GridSearchCV(make_clf(max_iter=2), {"alpha": [1e-4]}, cv=2)
    caught = _warnings_of(lambda: search.fit(X, y))
    assert caught
    assert all("skorchlite" not in w.filename for w in caught)
    assert all("torch" not in w.filename for w in caught)


def test_validation_loss_curve_is_the_held_out_loss(early_stopped):
    clf, X, y = early_stopped
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_)
    # The weights kept are those of the latest best epoch.
    scores = np.array(clf.validation_scores_)
    best_epoch = np.flatnonzero(scores == scores.max())[-1]
    _, X_val, _, y_val = _validation_split(clf, X, y)
    assert clf.validation_loss_curve_[best_epoch] == pytest.approx(
        log_loss(y_val, clf.predict_proba(X_val)), rel=1e-9
    )


def test_no_validation_loss_curve_without_early_stopping(fitted_binary):
    assert fitted_binary.validation_loss_curve_ is None


# ----------------------------------------------- sample and class weights


@pytest.fixture(scope="module")
def small_moons():
    from sklearn.datasets import make_moons

    return make_moons(40, noise=0.2, random_state=1)


@pytest.mark.parametrize("solver", ["adam", "sgd", "adamw", "lbfgs"])
def test_integer_sample_weight_equals_repeated_rows(
    make_clf, fit_quietly, small_moons, solver
):
    X, y = small_moons
    weights = np.random.default_rng(0).integers(0, 4, len(X))
    # Full-batch training: batch_size="auto" covers both data sets.
    weighted = fit_quietly(make_clf(solver=solver), X, y, sample_weight=weights)
    repeated = fit_quietly(
        make_clf(solver=solver), np.repeat(X, weights, 0), np.repeat(y, weights)
    )
    assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9, atol=1e-12
    )


def test_unit_sample_weight_equals_none(make_clf, fit_quietly, moons):
    X, y = moons
    a = fit_quietly(make_clf(batch_size=32), X, y, sample_weight=np.ones(len(X)))
    b = fit_quietly(make_clf(batch_size=32), X, y)
    assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize("target", ["small_moons", "blobs"])
def test_balanced_class_weight_counts_the_sample_weights(
    make_clf, fit_quietly, request, rng, target
):
    # "balanced" weighs each class by n / (n_classes * its count), with rows
    # counted by their sample_weight: integer weights equal repeated rows.
    X, y = request.getfixturevalue(target)
    X, y = X[:45], y[:45]
    weights = rng.integers(0, 4, len(X))
    assert len(set(np.bincount(y, weights))) == len(set(y))  # imbalanced when weighed
    balanced = make_clf(class_weight="balanced")
    weighted = fit_quietly(clone(balanced), X, y, sample_weight=weights)
    repeated = fit_quietly(
        clone(balanced), np.repeat(X, weights, 0), np.repeat(y, weights)
    )
    assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9, atol=1e-12
    )


def test_class_weight_dict_equals_sample_weight(make_clf, fit_quietly, moons):
    X, y = moons
    by_class = fit_quietly(make_clf(class_weight={0: 1.0, 1: 3.0}), X, y)
    by_sample = fit_quietly(make_clf(), X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X), rtol=1e-9)


@pytest.fixture(scope="module")
def imbalanced():
    from sklearn.datasets import make_classification

    return make_classification(
        300, n_features=5, weights=[0.9, 0.1], flip_y=0.05, random_state=0
    )


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 20.0}])
def test_class_weight_shifts_predictions_to_the_rare_class(
    make_clf, fit_quietly, imbalanced, class_weight
):
    X, y = imbalanced
    plain = fit_quietly(make_clf(max_iter=50), X, y)
    weighted = fit_quietly(make_clf(max_iter=50, class_weight=class_weight), X, y)
    assert weighted.predict(X).sum() > plain.predict(X).sum()
    assert weighted.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()


def test_class_weight_with_unknown_label_is_an_error(make_clf, moons):
    X, y = moons
    with pytest.raises(ValueError, match="class_weight"):
        make_clf(class_weight={0: 1.0, 7: 2.0}).fit(X, y)


# ---------------------------------------------------------------- verbose


# MLPClassifier's lines, then our extras on the same line.
EPOCH_LINE = re.compile(r"^Iteration (\d+), loss = (\d+\.\d{8}), time = \d+\.\d{3}s$")
VALIDATION_LINE = re.compile(
    r"^Validation score: (\d\.\d{6}), validation loss = (\d+\.\d{8})$"
)


def test_verbose_prints_one_line_per_epoch(make_clf, fit_quietly, moons, capsys):
    X, y = moons
    clf = fit_quietly(make_clf(max_iter=4, verbose=True), X, y)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 4
    matches = [EPOCH_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [int(m[1]) for m in matches] == [1, 2, 3, 4]
    assert [float(m[2]) for m in matches] == pytest.approx(clf.loss_curve_, abs=1e-8)
    assert err == ""


def test_verbose_with_early_stopping_reports_validation(
    make_clf, fit_quietly, moons, capsys
):
    X, y = moons
    clf = make_clf(max_iter=3, verbose=1, early_stopping=True)
    fit_quietly(clf, X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6, lines
    epochs = [EPOCH_LINE.match(line) for line in lines[::2]]
    validations = [VALIDATION_LINE.match(line) for line in lines[1::2]]
    assert all(epochs) and all(validations), lines
    assert [float(m[1]) for m in validations] == pytest.approx(
        clf.validation_scores_, abs=1e-6
    )
    assert [float(m[2]) for m in validations] == pytest.approx(
        clf.validation_loss_curve_, abs=1e-8
    )


def test_verbose_int_prints_every_k_epochs(make_clf, fit_quietly, moons, capsys):
    X, y = moons
    fit_quietly(make_clf(max_iter=20, verbose=10), X, y)
    epochs = [
        int(EPOCH_LINE.match(line)[1])
        for line in capsys.readouterr().out.strip().splitlines()
    ]
    assert {10, 20} <= set(epochs)
    assert set(epochs) <= {1, 10, 20}


def test_not_verbose_prints_nothing(make_clf, fit_quietly, moons, capsys):
    X, y = moons
    fit_quietly(make_clf(max_iter=3), X, y)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- pandas


def test_dataframe_sets_feature_names(make_clf, fit_quietly, moons):
    pd = pytest.importorskip("pandas", reason="pandas is a test extra")
    X, y = moons
    df = pd.DataFrame(X, columns=["width", "height"])
    clf = fit_quietly(make_clf(), df, pd.Series(y, name="target"))
    assert_array_equal(clf.feature_names_in_, ["width", "height"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_frame = clf.predict_proba(df)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        from_array = clf.predict_proba(X)
    assert_array_equal(from_frame, from_array)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(df.rename(columns={"width": "w"}))


# ---------------------------------------------------------------- sparse


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix, sp.csr_array])
def test_sparse_input_matches_dense(make_clf, fit_quietly, moons, container):
    X, y = moons
    dense = fit_quietly(make_clf(), X, y)
    sparse = fit_quietly(make_clf(), container(X), y)
    assert_allclose(sparse.predict_proba(container(X)), dense.predict_proba(X))
    assert_allclose(dense.predict_proba(container(X)), dense.predict_proba(X))


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_input_is_densified_one_batch_at_a_time(
    make_clf, fit_quietly, moons, monkeypatch, container, early_stopping
):
    X, y = moons
    densified = []
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array):
        original = cls.toarray

        def recording_toarray(self, *args, _original=original, **kwargs):
            densified.append(self.shape[0])
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "toarray", recording_toarray)

    # With early stopping, half of the rows are held out for validation: more
    # than a batch, so they must be densified batch by batch too.
    clf = make_clf(
        batch_size=16,
        predict_batch_size=20,
        max_iter=2,
        early_stopping=early_stopping,
        validation_fraction=0.5,
    )
    fit_quietly(clf, container(X), y)
    assert densified, "fit never densified a batch"
    assert max(densified) <= 20
    densified.clear()
    clf.predict_proba(container(X))
    assert densified
    assert max(densified) <= 20
    assert sum(densified) == len(X)


# ---------------------------------------------------------------- devices


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "auto"])
def test_cpu_devices(make_clf, fit_quietly, moons, device):
    if device == "auto" and (
        torch.cuda.is_available() or torch.backends.mps.is_available()
    ):
        pytest.skip("'auto' resolves to an accelerator on this machine")
    X, y = moons
    clf = fit_quietly(make_clf(device=device), X, y)
    assert all(p.device.type == "cpu" for p in clf.module_.parameters())
    assert clf.predict(X).shape == (len(X),)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_unavailable_cuda_is_a_clear_error(make_clf, moons, device):
    X, y = moons
    clf = make_clf(device=device)
    with pytest.raises(ValueError, match="CUDA is not available"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


@pytest.mark.parametrize("device", ["nonsense", "gpu0"])
def test_nonexistent_device_is_a_clear_error(make_clf, moons, device):
    X, y = moons
    with pytest.raises(ValueError, match="not a valid torch device"):
        make_clf(device=device).fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_and_cpu_pickle(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(device="cuda"), X, y)
    assert all(p.device.type == "cuda" for p in clf.module_.parameters())
    assert next(clf.module_.parameters()).dtype == torch.float32
    state = clf.__getstate__()
    assert all(type(a) is np.ndarray for a in state["_module_state"]["arrays"])
    # Pickling must not move the live estimator off its device.
    assert all(p.device.type == "cuda" for p in clf.module_.parameters())
    restored = pickle.loads(pickle.dumps(clf))
    assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_device_picks_cuda(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(), X, y)
    assert next(clf.module_.parameters()).device.type == "cuda"


# ------------------------------------------------------- batched predict


def test_predict_batch_size_does_not_change_results(fitted_multiclass, blobs):
    X, _ = blobs
    small = copy.deepcopy(fitted_multiclass).set_params(predict_batch_size=7)
    assert_array_equal(small.predict(X), fitted_multiclass.predict(X))
    assert_allclose(
        small.predict_proba(X), fitted_multiclass.predict_proba(X), rtol=1e-12
    )


def test_module_never_sees_more_than_predict_batch_size_rows(
    make_clf, fit_quietly, blobs
):
    X, y = blobs
    clf = fit_quietly(make_clf(predict_batch_size=16), X, y)
    seen = []
    handle = clf.module_.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].shape[0])
    )
    try:
        for method in ("predict", "predict_proba", "decision_function"):
            seen.clear()
            getattr(clf, method)(X)
            assert max(seen) <= 16
            assert sum(seen) == len(X)
    finally:
        handle.remove()


# ------------------------------------------------------ pickle and clone


def _all_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _all_tensors(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from _all_tensors(value)
    elif isinstance(obj, nn.Module):
        yield from obj.state_dict().values()


def test_pickle_round_trip_and_cpu_state(make_clf, moons):
    X, y = moons
    clf = make_clf()
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    state = clf.__getstate__()
    # Plain arrays and values: no tensor, no torch object at all.
    assert not list(_all_tensors(state))
    assert "module_" not in state and "_solver_state" not in state
    assert all(isinstance(a, np.ndarray) for a in state["_module_state"]["arrays"])
    assert all(
        isinstance(entry["exp_avg"], np.ndarray) and isinstance(entry["step"], int)
        for entry in state["_optimizer_state"]["parameters"]
    )
    # Pickling leaves the live estimator whole.
    assert clf._solver_state.step > 0
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    # The optimizer state travels too: both continue identically.
    restored.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_joblib_round_trip(fitted_multiclass, blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "model.joblib"
    joblib.dump(fitted_multiclass, path)
    restored = joblib.load(path)
    assert_array_equal(restored.predict(X), fitted_multiclass.predict(X))
    assert_array_equal(restored.predict_proba(X), fitted_multiclass.predict_proba(X))
    buffer = io.BytesIO()
    joblib.dump(fitted_multiclass, buffer)
    buffer.seek(0)
    assert_array_equal(joblib.load(buffer).predict(X), fitted_multiclass.predict(X))


def test_clone_gives_an_unfitted_copy(fitted_binary):
    copy_ = clone(fitted_binary)
    assert copy_.get_params() == fitted_binary.get_params()
    assert not hasattr(copy_, "module_")
    assert not hasattr(copy_, "classes_")


# ---------------------------------------------- model selection, pipelines


def test_grid_search_with_two_jobs(blobs):
    X, y = blobs
    search = GridSearchCV(
        TorchMLPClassifier(
            hidden_layer_sizes=(8,), max_iter=5, learning_rate_init=0.05, random_state=0
        ),
        {"alpha": [1e-4, 1e-1]},
        cv=2,
        n_jobs=2,
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X).shape == (len(X),)
    assert search.score(X, y) > 0.8


def test_pipeline_cross_val_score(blobs):
    X, y = blobs
    pipe = make_pipeline(
        StandardScaler(),
        TorchMLPClassifier(
            hidden_layer_sizes=(8,),
            max_iter=30,
            learning_rate_init=0.05,
            random_state=0,
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.85


# ------------------------------------------------------------ determinism


DETERMINISM_PARAMS = {"dropout": 0.3, "early_stopping": True, "max_iter": 8}


def test_same_random_state_gives_identical_models(make_clf, fit_quietly, blobs):
    X, y = blobs
    a = fit_quietly(make_clf(**DETERMINISM_PARAMS), X, y)
    b = fit_quietly(make_clf(**DETERMINISM_PARAMS), X, y)
    c = fit_quietly(make_clf(**DETERMINISM_PARAMS, random_state=1), X, y)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


@pytest.mark.parametrize("random_state", [None, 0, np.random.RandomState(0)])
def test_fitting_leaves_global_rngs_alone(make_clf, fit_quietly, blobs, random_state):
    X, y = blobs
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002
    fit_quietly(make_clf(**DETERMINISM_PARAMS, random_state=random_state), X, y)
    make_clf(dropout=0.3, random_state=random_state).partial_fit(
        X, y, classes=[0, 1, 2]
    )
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0]
    assert_array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fitting_leaves_the_cuda_rng_alone(make_clf, fit_quietly, blobs, device):
    X, y = blobs
    cpu_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all()
    fit_quietly(make_clf(dropout=0.3, device=device), X, y)
    assert torch.equal(torch.random.get_rng_state(), cpu_state)
    after = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(after, cuda_states, strict=True))


def test_fitting_leaves_torch_settings_alone(make_clf, fit_quietly, blobs):
    X, y = blobs
    threads = torch.get_num_threads()
    fit_quietly(make_clf(hidden_layer_sizes=(64, 64)), X, y)
    with pytest.raises(ValueError):
        make_clf().fit(np.full_like(X, np.nan), y)
    assert torch.get_num_threads() == threads
    assert torch.is_grad_enabled()
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_fit_inside_no_grad_or_inference_mode(make_clf, fit_quietly, moons, context):
    X, y = moons
    reference = fit_quietly(make_clf(), X, y)
    with context():
        clf = fit_quietly(make_clf(), X, y)
        clf.partial_fit(X, y)
        reference.partial_fit(X, y)
    assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_predict_is_deterministic_with_dropout(make_clf, fit_quietly, blobs):
    X, y = blobs
    clf = fit_quietly(make_clf(dropout=0.5), X, y)
    assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------ module structure


def test_dropout_layers_follow_each_hidden_activation(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(hidden_layer_sizes=(8, 4), dropout=0.3), X, y)
    kinds = [type(layer) for layer in clf.module_]
    # Dropout that draws from the fit's own generator: an nn.Dropout.
    assert issubclass(Dropout, nn.Dropout)
    assert kinds == [
        nn.Linear,
        nn.ReLU,
        Dropout,
        nn.Linear,
        nn.ReLU,
        Dropout,
        nn.Linear,
    ]
    assert all(m.p == 0.3 for m in clf.module_ if isinstance(m, nn.Dropout))
    plain = fit_quietly(make_clf(hidden_layer_sizes=(8, 4)), X, y)
    assert not any(isinstance(m, nn.Dropout) for m in plain.module_)


def test_empty_hidden_layer_sizes_gives_a_linear_model(make_clf, fit_quietly, blobs):
    X, y = blobs
    clf = fit_quietly(make_clf(hidden_layer_sizes=()), X, y)
    assert len(clf.module_) == 1
    assert isinstance(clf.module_[0], nn.Linear)
    assert clf.n_layers_ == 2
    assert [c.shape for c in clf.coefs_] == [(4, 3)]
    # The logits are affine in X.
    a, b = X[:10], X[10:20]
    assert_allclose(
        clf.decision_function(0.3 * a + 0.7 * b),
        0.3 * clf.decision_function(a) + 0.7 * clf.decision_function(b),
    )
    assert_allclose(
        clf.decision_function(X), X @ clf.coefs_[0] + clf.intercepts_[0], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("activation", "module"),
    [
        ("identity", nn.Identity),
        ("logistic", nn.Sigmoid),
        ("tanh", nn.Tanh),
        ("relu", nn.ReLU),
        ("gelu", nn.GELU),
        ("silu", nn.SiLU),
        ("leaky_relu", nn.LeakyReLU),
        ("elu", nn.ELU),
    ],
)
def test_activations_map_to_torch_modules(
    make_clf, fit_quietly, moons, activation, module
):
    X, y = moons
    clf = fit_quietly(make_clf(activation=activation, hidden_layer_sizes=(6, 5)), X, y)
    activations = [m for m in clf.module_ if not isinstance(m, nn.Linear)]
    assert len(activations) == 2
    assert all(type(m) is module for m in activations)


@pytest.mark.parametrize(
    ("solver", "optimizer"),
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("lbfgs", None),
    ],
)
def test_solvers_learn(make_clf, fit_quietly, blobs, solver, optimizer):
    X, y = blobs
    lr = 0.1 if solver == "sgd" else 0.05
    clf = fit_quietly(make_clf(solver=solver, learning_rate_init=lr, max_iter=30), X, y)
    assert clf.score(X, y) > 0.9
    if optimizer is not None:
        # The update is torch's optimizer (tests/test_engine_solvers.py).
        settings = SolverSettings.of(clf)
        reference = SOLVERS[solver].reference(list(clf.module_.parameters()), settings)
        assert type(reference) is optimizer


def test_adamw_alpha_is_weight_decay(make_clf, fit_quietly, blobs):
    X, y = blobs

    def weight_norm(alpha):
        clf = make_clf(
            solver="adamw", alpha=alpha, max_iter=30, learning_rate_init=0.05
        )
        fit_quietly(clf, X, y)
        return sum(np.square(c).sum() for c in clf.coefs_)

    assert weight_norm(1.0) < weight_norm(0.0)


def test_max_grad_norm_bounds_each_step(make_clf, fit_quietly, moons):
    X, y = moons
    X = X * 10  # large gradients

    def step_size(max_grad_norm):
        # One full-batch plain SGD step (lr 1) from the same starting weights.
        clf = make_clf(solver="sgd", momentum=0.0, max_iter=1, alpha=0.0)
        clf.set_params(warm_start=True, learning_rate_init=1.0, batch_size=len(X))
        fit_quietly(clf, X, y)
        before = [p.detach().clone() for p in clf.module_.parameters()]
        fit_quietly(clf.set_params(max_grad_norm=max_grad_norm), X, y)
        after = list(clf.module_.parameters())
        return math.sqrt(
            sum(((a - b) ** 2).sum().item() for a, b in zip(after, before, strict=True))
        )

    unclipped = step_size(None)  # lr 1: the gradient's norm
    assert unclipped > 0.1
    # torch's clip_grad_norm_ scales by max_norm / (norm + 1e-6)
    assert step_size(1e-3) == pytest.approx(
        1e-3 * unclipped / (unclipped + 1e-6), rel=1e-9
    )


def test_max_grad_norm_clips_every_step(make_clf, fit_quietly, moons, monkeypatch):
    X, y = moons
    calls = []
    original = loop.clip_gradients

    def spy(grads, max_norm):
        calls.append(max_norm)
        return original(grads, max_norm)

    monkeypatch.setattr(loop, "clip_gradients", spy)
    fit_quietly(make_clf(max_iter=3, batch_size=25, max_grad_norm=0.5), X, y)
    assert calls == [0.5] * 12  # 3 epochs of 4 batches


# ----------------------------------------------- the comparison on moons


def test_default_accuracy_matches_mlpclassifier_on_moons():
    from sklearn.datasets import make_moons

    X, y = make_moons(1000, noise=0.07, random_state=42)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=42
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = TorchMLPClassifier(random_state=42).fit(X_train, y_train)
        theirs = MLPClassifier(random_state=42).fit(X_train, y_train)
    ours_acc, theirs_acc = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    assert theirs_acc > 0.9
    # A drop-in must not be worse than the original by more than 2 points.
    assert ours_acc >= theirs_acc - 0.02


def test_html_repr_links_to_our_api_page():
    # The page that docs/api.rst generates (tests/test_docs.py checks it is built).
    link = TorchMLPClassifier()._get_doc_link()
    assert link.startswith("https://")
    assert link.endswith("/generated/skorchlite.TorchMLPClassifier.html")
    assert link in TorchMLPClassifier()._repr_html_()
