"""Batched searches over a module of the user's own (through torch.func)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_moons, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skorchlite import BatchedGridSearchCV, TorchClassifier, TorchRegressor


class Skip(nn.Module):
    """Not a Sequential: a hidden layer with a skip connection."""

    def __init__(self, n_features_in, n_outputs, hidden=8, p=0.0):
        super().__init__()
        self.inner = nn.Linear(n_features_in, hidden)
        self.block = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_outputs)
        self.dropout = nn.Dropout(p) if p else nn.Identity()

    def forward(self, X):
        h = torch.relu(self.inner(X))
        return self.out(self.dropout(h + torch.tanh(self.block(h))))


class SmallCNN(nn.Module):
    """A convolution over 8x8 images given as 64 features."""

    def __init__(self, n_outputs, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3)
        self.out = nn.Linear(channels * 36, n_outputs)

    def forward(self, X):
        images = X.reshape(-1, 1, 8, 8)
        return self.out(torch.relu(self.conv(images)).flatten(1))


class Normalized(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_features_in)
        self.out = nn.Linear(n_features_in, n_outputs)

    def forward(self, X):
        return self.out(self.norm(X))


class Branching(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.out = nn.Linear(n_features_in, n_outputs)

    def forward(self, X):
        if X.sum() > 0:  # data-dependent control flow
            return self.out(X)
        return -self.out(X)


def _search(search_class, estimator, grid, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search_class(estimator, grid, cv=3, **kwargs).fit(X, y)


def _assert_same_results(batched, ordinary, atol=1e-8):
    np.testing.assert_allclose(
        batched.cv_results_["mean_test_score"],
        ordinary.cv_results_["mean_test_score"],
        rtol=0,
        atol=atol,
    )
    assert batched.best_params_ == ordinary.best_params_


def _moons():
    return make_moons(150, noise=0.25, random_state=0)


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16, y[:240]


@pytest.mark.parametrize(
    "make_estimator, grid, data",
    [
        (
            lambda: TorchClassifier(Skip, max_iter=8, random_state=0),
            {"module__hidden": [4, 8], "learning_rate_init": [0.003, 0.03]},
            _moons,
        ),
        (
            lambda: TorchClassifier(
                SmallCNN, max_iter=4, batch_size=64, random_state=0
            ),
            {"module__channels": [2, 3], "alpha": [0.0, 0.1]},
            _digits,
        ),
        (
            lambda: TorchClassifier(
                Skip, solver="sgd", early_stopping=True, max_iter=8, random_state=0
            ),
            {"learning_rate_init": [0.01, 0.1], "momentum": [0.5, 0.9]},
            _moons,
        ),
    ],
    ids=["skip", "cnn", "skip-sgd-early-stopping"],
)
def test_batched_search_equals_grid_search(make_estimator, grid, data, capsys):
    X, y = data()
    batched = _search(BatchedGridSearchCV, make_estimator(), grid, X, y, verbose=1)
    ordinary = _search(GridSearchCV, make_estimator(), grid, X, y)
    _assert_same_results(batched, ordinary)
    out = capsys.readouterr().out
    assert "0 ordinary fit(s)" in out, out
    # One group per architecture: module__ values that change a shape split.
    n_shapes = len(grid.get("module__hidden", grid.get("module__channels", [0])))
    assert f"in {n_shapes} batched group(s)" in out, out


def test_batched_regressor_in_a_pipeline_equals_grid_search(capsys):
    X, y = make_regression(120, n_features=4, noise=5, random_state=0)
    y = y / y.std()

    def make():
        return make_pipeline(
            StandardScaler(), TorchRegressor(Skip, max_iter=6, random_state=0)
        )

    grid = {"torchregressor__learning_rate_init": [0.003, 0.03]}
    batched = _search(BatchedGridSearchCV, make(), grid, X, y, verbose=1)
    ordinary = _search(GridSearchCV, make(), grid, X, y)
    _assert_same_results(batched, ordinary)
    assert "0 ordinary fit(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "estimator, reason",
    [
        (TorchClassifier(Skip, module__p=0.3, max_iter=2), "draws random numbers"),
        (TorchClassifier(Normalized, max_iter=2), "running statistics"),
        (TorchClassifier(Branching, max_iter=2), "cannot be vmapped"),
    ],
    ids=["dropout", "batch-norm", "control-flow"],
)
def test_modules_that_cannot_stack_fall_back_and_say_why(estimator, reason, capsys):
    X, y = _moons()
    estimator.set_params(random_state=0)
    grid = {"learning_rate_init": [0.01, 0.02]}
    batched = _search(BatchedGridSearchCV, estimator, grid, X, y, verbose=1)
    ordinary = _search(GridSearchCV, estimator, grid, X, y)
    out = capsys.readouterr().out
    assert reason in out, out
    assert "6 ordinary fit(s)" in out, out
    _assert_same_results(batched, ordinary, atol=0)


def test_dropout_that_can_stack_in_one_candidate_not_another(capsys):
    # The same class stacks or not by its arguments: the check is per module
    # arguments, not per class.
    X, y = _moons()
    grid = {"module__p": [0.0, 0.3]}
    estimator = TorchClassifier(Skip, max_iter=3, random_state=0)
    batched = _search(BatchedGridSearchCV, estimator, grid, X, y, verbose=1)
    ordinary = _search(GridSearchCV, estimator, grid, X, y)
    out = capsys.readouterr().out
    assert "3 ordinary fit(s)" in out, out
    _assert_same_results(batched, ordinary)
