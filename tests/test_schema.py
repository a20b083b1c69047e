"""The allowlist of skorchlite._schema equals what save writes for the supported cases.

Every case below is saved with :func:`skorchlite.save` and loaded back with
:func:`skorchlite.load` (predicting as the original); the (loader, type) pairs
of all their schemas must be exactly :data:`skorchlite._schema.TRUSTED`, so an
entry no supported case needs is as much a failure as a case that is refused.
When a scikit-learn or skops release changes what a file holds, the failure
lists the pairs to add or remove.
"""

import io
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import TransformedTargetRegressor, make_column_transformer
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from torch import nn

from skorchlite import (
    BatchedGridSearchCV,
    BatchedHalvingGridSearchCV,
    BatchedHalvingRandomSearchCV,
    BatchedRandomizedSearchCV,
    TorchClassifier,
    TorchMLPClassifier,
    TorchMLPRegressor,
    TorchRegressor,
    load,
    save,
)
from skorchlite._schema import TRUSTED, scorer_functions

pytest.importorskip("skops.io", reason="save and load need skops")


def _classifier(**params):
    return TorchMLPClassifier((3,), max_iter=2, random_state=0, **params)


def _regressor(**params):
    return TorchMLPRegressor(hidden_layer_sizes=(3,), max_iter=2, **params)


class Tiny(nn.Module):
    """A module of the user's own: its class is trusted by name."""

    def __init__(self, n_features_in, n_outputs, width=3):
        super().__init__()
        self.hidden = nn.Linear(n_features_in, width)
        self.out = nn.Linear(width, n_outputs)

    def forward(self, X):
        return self.out(torch.tanh(self.hidden(X)))


#: What a user trusts when saving and loading their module.
OWN_MODULE = [f"{Tiny.__module__}.{Tiny.__qualname__}"]


def _cases():
    """(name, estimator, X, y): what save is meant to write and load to read."""
    X, y = make_classification(40, 4, n_informative=3, n_redundant=0, random_state=0)
    X3, y3 = make_classification(
        40, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    Xr, yr = make_regression(40, 4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(
        colour=np.array(["red", "blue"])[np.arange(40) % 2]
    )
    grid = {"alpha": [1e-4, 1e-2]}
    return [
        ("binary strings", _classifier(), X, np.array(["no", "yes"])[y]),
        ("multiclass float32", _classifier(), X3.astype(np.float32), y3),
        ("multilabel", _classifier(), X, np.c_[y, 1 - y, y]),
        ("lbfgs", _classifier(solver="lbfgs"), X, y),
        ("sgd early stopping", _classifier(solver="sgd", early_stopping=True), X, y),
        (
            "seeded, weighted, device",
            TorchMLPClassifier(
                (3,),
                max_iter=2,
                random_state=np.random.RandomState(0),
                class_weight={0: 1.0, 1: 2.0},
                device=torch.device("cpu"),
            ),
            X,
            y,
        ),
        ("regressor", _regressor(solver="adamw"), Xr, yr / 100),
        ("poisson", _regressor(loss="poisson"), Xr, np.abs(yr) / 100),
        (
            "pipeline",
            make_pipeline(
                SimpleImputer(),
                StandardScaler(),
                MinMaxScaler(),
                RobustScaler(),
                PCA(3),
                PolynomialFeatures(2),
                _classifier(),
            ),
            X,
            y,
        ),
        (
            "column transformer",
            make_pipeline(
                make_column_transformer(
                    (StandardScaler(), ["a", "b"]),
                    (OneHotEncoder(), ["colour"]),
                    remainder="passthrough",
                ),
                _classifier(),
            ),
            frame,
            y,
        ),
        ("one vs rest", OneVsRestClassifier(_classifier()), X3, y3),
        ("multi-output", MultiOutputRegressor(_regressor()), Xr, np.c_[yr, yr] / 100),
        (
            "transformed target",
            TransformedTargetRegressor(_regressor(), transformer=StandardScaler()),
            Xr,
            yr,
        ),
        (
            "grid search, two metrics",
            GridSearchCV(
                _classifier(), grid, cv=2, scoring=["accuracy", "f1"], refit="f1"
            ),
            X,
            y,
        ),
        (
            "randomized search, KFold",
            RandomizedSearchCV(
                _classifier(),
                grid,
                n_iter=2,
                cv=KFold(2, shuffle=True, random_state=0),
                random_state=0,
            ),
            X,
            y,
        ),
        ("batched grid", BatchedGridSearchCV(_classifier(), grid, cv=2), X, y),
        (
            "batched randomized",
            BatchedRandomizedSearchCV(
                _classifier(), grid, n_iter=2, cv=2, random_state=0
            ),
            X,
            y,
        ),
        (
            "batched halving grid",
            BatchedHalvingGridSearchCV(
                _classifier(), grid, cv=2, scoring="neg_log_loss"
            ),
            X,
            y,
        ),
        (
            "batched halving random",
            BatchedHalvingRandomSearchCV(_regressor(), grid, cv=2, random_state=0),
            Xr,
            yr / 100,
        ),
        (
            "own module classifier",
            TorchClassifier(Tiny, module__width=4, max_iter=2, random_state=0),
            X3,
            y3,
        ),
        (
            "own module regressor",
            make_pipeline(StandardScaler(), TorchRegressor(Tiny, max_iter=2)),
            Xr,
            yr / 100,
        ),
    ]


def _pairs(node, found):
    if isinstance(node, dict):
        if "__loader__" in node:
            found.add((node["__loader__"], f"{node['__module__']}.{node['__class__']}"))
        for value in node.values():
            _pairs(value, found)
    elif isinstance(node, list):
        for value in node:
            _pairs(value, found)
    return found


@pytest.fixture(scope="module")
def saved():
    files = {}
    for name, estimator, X, y in _cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X, y)
        buffer = io.BytesIO()
        save(estimator, buffer, trusted=OWN_MODULE)
        files[name] = (estimator, X, buffer.getvalue())
    return files


def test_every_supported_case_loads_and_predicts_as_saved(saved):
    for name, (estimator, X, data) in saved.items():
        loaded = load(io.BytesIO(data), trusted=OWN_MODULE)
        assert type(loaded) is type(estimator), name
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X), name)


def test_the_allowlist_is_what_the_supported_cases_hold(saved):
    found = set()
    for _, _, data in saved.values():
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _pairs(json.loads(zf.read("schema.json")), found)
    functions = {name for loader, name in found if loader == "FunctionNode"}
    assert functions and functions <= scorer_functions()
    listed = {(loader, name) for loader, names in TRUSTED.items() for name in names}
    found -= {("FunctionNode", name) for name in functions}
    found -= {("TypeNode", name) for name in OWN_MODULE}
    assert not found - listed, f"add to TRUSTED: {sorted(found - listed)}"
    assert not listed - found, f"no case holds: {sorted(listed - found)}"
