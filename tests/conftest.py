"""Shared data sets and fitted estimators for the behaviour tests.

Fitted fixtures are module-scoped and shared: tests must not mutate them
(``clone`` or ``copy.deepcopy`` first).
"""

import importlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_moons, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning

from skorchlite import TorchMLPClassifier

# Randomized tests (threads, interrupts) repeat a few times in CI and many
# times with SKORCHLITE_SLOW_TESTS=1.
SLOW_TESTS = os.environ.get("SKORCHLITE_SLOW_TESTS", "0") not in {"", "0"}

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def import_benchmark():
    """``import_benchmark(name)``: the script ``benchmarks/<name>.py`` as a
    module (the scripts import each other by their bare names)."""

    def load(name):
        sys.path.insert(0, str(BENCHMARKS))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCHMARKS))

    return load


# Small networks and few epochs keep every fit in the tens of milliseconds.
SMALL = {"hidden_layer_sizes": (8,), "max_iter": 10, "random_state": 0}


def _fit_quietly(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


@pytest.fixture
def make_clf():
    """Factory of small TorchMLPClassifiers: ``make_clf(**overrides)``."""

    def make(**params):
        return TorchMLPClassifier(**{**SMALL, **params})

    return make


@pytest.fixture
def fit_quietly():
    """``fit_quietly(estimator, X, y, **fit_params)``: fit, ignoring
    ConvergenceWarning (expected with the few epochs used in tests)."""
    return _fit_quietly


@pytest.fixture(scope="session")
def trials():
    """``trials(ci, slow)``: how many times to repeat a randomized test,
    ``slow`` times when SKORCHLITE_SLOW_TESTS=1 and ``ci`` times otherwise."""
    return lambda ci, slow: slow if SLOW_TESTS else ci


@pytest.fixture(scope="session")
def moons():
    """Binary data: 100 rows, 2 features."""
    return make_moons(100, noise=0.1, random_state=0)


@pytest.fixture(scope="session")
def blobs():
    """Well separated 3-class data: 90 rows, 4 features."""
    return make_blobs(90, n_features=4, centers=3, cluster_std=1.0, random_state=0)


@pytest.fixture(scope="session")
def multilabel():
    """Multilabel indicator targets: 60 rows, 6 features, 4 labels."""
    return make_multilabel_classification(60, n_features=6, n_classes=4, random_state=0)


def _fitted(data, max_iter):
    clf = TorchMLPClassifier(
        hidden_layer_sizes=(16,),
        learning_rate_init=0.05,
        max_iter=max_iter,
        random_state=0,
    )
    return _fit_quietly(clf, *data)


@pytest.fixture(scope="module")
def fitted_binary(moons):
    return _fitted(moons, max_iter=40)


@pytest.fixture(scope="module")
def fitted_multiclass(blobs):
    return _fitted(blobs, max_iter=30)


@pytest.fixture(scope="module")
def fitted_multilabel(multilabel):
    return _fitted(multilabel, max_iter=30)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
