"""Every fitted attribute against MLPClassifier's and MLPRegressor's.

Ours and scikit-learn's are fitted on the same data with the same parameters;
each public fitted attribute must have the same name, type, dtype and shape,
and follow the same conventions (what ``t_`` counts, which of ``best_loss_``
and ``validation_scores_`` is None, ...). The differences we keep on purpose
are listed in ``DELIBERATE`` and on the docs page that says so, which this
file checks too.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import (
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skorchlite import TorchMLPClassifier, TorchMLPRegressor

DOCS_PAGE = Path(__file__).parents[1] / "docs/user_guide/differences.rst"

#: Attributes only ours have, and why (the docs page lists each).
DELIBERATE = {
    "module_": "the trained torch module",
    "validation_loss_curve_": "the validation loss of each epoch",
}

MAX_ITER = 3  # fewer than n_iter_no_change: no fit can stop before it


def _data(kind, dtype):
    if kind == "multilabel":
        X, y = make_multilabel_classification(40, 4, n_classes=3, random_state=0)
    elif kind.startswith("regression"):
        n_targets = 2 if kind == "regression-2" else 1
        X, y = make_regression(40, 4, n_targets=n_targets, random_state=0)
        y = y / 100
    else:
        n_classes = 2 if kind == "binary" else 3
        X, y = make_classification(
            40, 4, n_informative=3, n_redundant=0, n_classes=n_classes,
            random_state=0,
        )  # fmt: skip
    return X.astype(dtype), y


def _fitted(kind, solver, early_stopping, dtype):
    X, y = _data(kind, dtype)
    regression = kind.startswith("regression")
    ours = TorchMLPRegressor if regression else TorchMLPClassifier
    theirs = MLPRegressor if regression else MLPClassifier
    kwargs = {
        "hidden_layer_sizes": (5,),
        "solver": solver,
        "early_stopping": early_stopping,
        "max_iter": MAX_ITER,
        "random_state": 0,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours(device="cpu", **kwargs).fit(X, y), theirs(**kwargs).fit(X, y), X


def _public_attributes(estimator):
    names = {
        name
        for name in vars(estimator)
        if name.endswith("_") and not name.startswith("_")
    }
    return names | {"coefs_", "intercepts_"}


def _describe(value):
    """Type, dtype and shape of a value, recursively through lists."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype, value.shape)
    if isinstance(value, list):  # coefs_ is a list subclass (documented)
        return ("list", len(value), sorted({repr(_describe(v)) for v in value}))
    return (type(value),)


def _conventions(estimator):
    """What each fitted attribute means, in terms of the others."""
    curve = getattr(estimator, "loss_curve_", None)
    scores = getattr(estimator, "validation_scores_", None)
    stochastic = estimator.solver != "lbfgs"
    facts = {
        "n_iter_": estimator.n_iter_ if stochastic else 1 <= estimator.n_iter_,
        "t_": estimator.t_,
        "curve has n_iter_ entries": None if curve is None else len(curve),
        "loss_ is the last of the curve": None if curve is None
        else bool(estimator.loss_ == curve[-1]),
        "best_loss_": None if estimator.__dict__.get("best_loss_") is None
        else bool(estimator.best_loss_ == min(curve)),
        "validation_scores_": None if scores is None else len(scores),
        "best_validation_score_": None if scores is None
        else bool(estimator.best_validation_score_ == max(scores)),
        "n_features_in_": estimator.n_features_in_,
        "n_layers_": estimator.n_layers_,
        "n_outputs_": estimator.n_outputs_,
        "out_activation_": estimator.out_activation_,
        "layer shapes": [c.shape for c in estimator.coefs_],
    }  # fmt: skip
    if hasattr(estimator, "classes_"):
        facts["classes_"] = estimator.classes_.tolist()
    return facts


CASES = [
    (kind, solver, early_stopping, dtype)
    for kind in ["binary", "multiclass", "multilabel", "regression", "regression-2"]
    for solver in ["adam", "sgd", "lbfgs"]
    for early_stopping in [False, True]
    for dtype in [np.float32, np.float64]
    # lbfgs ignores early_stopping; multilabel early stopping is covered by adam.
    if not (solver == "lbfgs" and early_stopping)
    and not (kind == "multilabel" and solver == "sgd" and early_stopping)
]


@pytest.mark.parametrize(
    ("kind", "solver", "early_stopping", "dtype"),
    CASES,
    ids=[
        f"{k}-{s}-{'es' if e else 'no_es'}-{np.dtype(d).name}" for k, s, e, d in CASES
    ],
)
def test_fitted_attributes_are_sklearns(kind, solver, early_stopping, dtype):
    ours, theirs, X = _fitted(kind, solver, early_stopping, dtype)
    names = _public_attributes(theirs)
    assert _public_attributes(ours) - names == {
        name for name in DELIBERATE if hasattr(ours, name)
    }
    assert names <= _public_attributes(ours)
    for name in sorted(names):
        ours_value, their_value = getattr(ours, name), getattr(theirs, name)
        assert _describe(ours_value) == _describe(their_value), name
    assert _conventions(ours) == _conventions(theirs)
    if solver != "lbfgs":
        n_train = len(X) - (4 if early_stopping else 0)
        assert ours.t_ == MAX_ITER * n_train
    for method in ("predict", "predict_proba"):
        if hasattr(theirs, method):
            for data in (X, X.astype(np.float64)):
                expected = getattr(theirs, method)(data)
                got = getattr(ours, method)(data)
                assert (got.dtype, got.shape) == (expected.dtype, expected.shape)


@pytest.mark.parametrize("estimators", [(TorchMLPClassifier, MLPClassifier)])
def test_lbfgs_after_a_stochastic_fit_keeps_t_and_the_loss_curve(estimators):
    X, y = _data("binary", np.float64)
    fitted = []
    for estimator in estimators:
        model = estimator(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
            model.set_params(solver="lbfgs", warm_start=True).fit(X, y)
        fitted.append(model)
    ours, theirs = fitted
    assert ours.t_ == theirs.t_ == 2 * len(X)
    assert len(ours.loss_curve_) == len(theirs.loss_curve_) == 2
    assert type(ours.loss_) is type(theirs.loss_) is np.float64


@pytest.mark.parametrize("n_rows", [1, 5])
def test_one_class_predicts_it_with_one_probability_column(n_rows):
    # Deliberate: MLPClassifier returns two columns for its one class.
    X, _ = _data("binary", np.float64)
    X, y = X[:n_rows], np.full(n_rows, 7)
    ours = TorchMLPClassifier((5,), max_iter=2, device="cpu", random_state=0)
    theirs = MLPClassifier((5,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.classes_.tolist() == theirs.classes_.tolist() == [7]
    assert ours.predict(X).tolist() == theirs.predict(X).tolist() == [7] * n_rows
    assert ours.predict_proba(X).tolist() == [[1.0]] * n_rows
    assert theirs.predict_proba(X).shape == (n_rows, 2)


def test_the_docs_page_lists_each_deliberate_difference():
    page = DOCS_PAGE.read_text()
    for name in (*DELIBERATE, "coefs_", "predict_proba", "t_", "loss_"):
        assert f"``{name}``" in page, name
