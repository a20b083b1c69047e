"""Fits in threads share no mutable state: each owns its random generators.

Every random draw of a fit (initial weights, batch order, validation split,
dropout masks) comes from generators seeded from ``random_state``; torch's,
numpy's and Python's global generators are neither read nor written. So fits
overlapping in threads (joblib's threading backend, dask workers, web servers)
give exactly the models they give one after the other. Overlaps are random:
each test repeats (``trials``; many more with SKORCHLITE_SLOW_TESTS=1).
"""

import random
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skorchlite import BatchedGridSearchCV, TorchMLPClassifier


@pytest.fixture(scope="module")
def data():
    return make_moons(150, noise=0.25, random_state=0)


def global_rng_states():
    return (
        torch.get_rng_state(),
        np.random.get_state(),  # noqa: NPY002 (the global one is under test)
        random.getstate(),
    )


def assert_same_rng_states(before, after):
    assert torch.equal(before[0], after[0]), "torch's global RNG changed"
    for left, right in zip(before[1], after[1], strict=True):
        assert_array_equal(left, right, err_msg="numpy's global RNG changed")
    assert before[2] == after[2], "Python's global RNG changed"


def quiet_fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


# Dropout (autograd path with masks), early stopping (validation split and
# passes), plain closed-form fits and an SGD fit, with different seeds.
ESTIMATORS = [
    TorchMLPClassifier((16,), dropout=0.3, max_iter=25, random_state=1),
    TorchMLPClassifier(
        (8, 8), dropout=0.2, early_stopping=True, max_iter=25, random_state=2
    ),
    TorchMLPClassifier((16,), max_iter=25, random_state=3),
    TorchMLPClassifier((8,), solver="sgd", dropout=0.5, max_iter=25, random_state=4),
]


def run_in_threads(functions):
    """Call each function in its own thread, all released at once."""
    barrier = threading.Barrier(len(functions))

    def start(function):
        barrier.wait()
        return function()

    with ThreadPoolExecutor(len(functions)) as pool:
        return list(pool.map(start, functions))


def test_a_fit_neither_reads_nor_writes_the_global_rngs(data):
    X, y = data
    results = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (the global one is under test)
        random.seed(seed)
        before = global_rng_states()
        clf = quiet_fit(clone(ESTIMATORS[1]), X, y)
        assert_same_rng_states(before, global_rng_states())
        results.append(clf.predict_proba(X))
    assert_array_equal(results[0], results[1])


def test_overlapping_fits_equal_sequential_ones_and_keep_global_rngs(data, trials):
    X, y = data
    sequential = [quiet_fit(clone(e), X, y).predict_proba(X) for e in ESTIMATORS]
    for _ in range(trials(3, 30)):
        before = global_rng_states()
        fitted = run_in_threads(
            [lambda e=e: quiet_fit(clone(e), X, y) for e in ESTIMATORS]
        )
        assert_same_rng_states(before, global_rng_states())
        for clf, expected in zip(fitted, sequential, strict=True):
            assert_array_equal(clf.predict_proba(X), expected)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_threaded_grid_search_equals_sequential_bit_for_bit(data, trials, dropout):
    X, y = data
    estimator = TorchMLPClassifier(
        (8,), dropout=dropout, max_iter=15, early_stopping=True, random_state=0
    )
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [0.01, 0.03]}
    kwargs = {"cv": 3, "scoring": "neg_log_loss"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sequential = GridSearchCV(estimator, grid, n_jobs=1, **kwargs).fit(X, y)
        for _ in range(trials(1, 10)):
            before = global_rng_states()
            with joblib.parallel_backend("threading"):
                threaded = GridSearchCV(estimator, grid, n_jobs=2, **kwargs).fit(X, y)
            assert_same_rng_states(before, global_rng_states())
            for key in sequential.cv_results_:
                if key.startswith(("split", "mean_test", "std_test")):
                    assert_array_equal(
                        threaded.cv_results_[key], sequential.cv_results_[key]
                    )
            assert_array_equal(threaded.predict_proba(X), sequential.predict_proba(X))


def test_batched_search_in_a_thread_beside_fits(data, trials):
    # The batched search draws each model's dropout masks from its own
    # generators, while ordinary fits with dropout run beside it.
    X, y = data
    search = BatchedGridSearchCV(
        TorchMLPClassifier((8,), max_iter=15, random_state=0),
        {"dropout": [0.1, 0.4], "early_stopping": [False, True]},
        cv=3,
        scoring="neg_log_loss",
    )

    def run_search():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return clone(search).fit(X, y)

    alone = run_search()
    assert alone.n_batched_fits_ == 4 * 3
    others = ESTIMATORS[:2]
    expected = [quiet_fit(clone(e), X, y).predict_proba(X) for e in others]
    for _ in range(trials(2, 20)):
        before = global_rng_states()
        searched, *fitted = run_in_threads(
            [run_search, *(lambda e=e: quiet_fit(clone(e), X, y) for e in others)]
        )
        assert_same_rng_states(before, global_rng_states())
        for key in alone.cv_results_:
            if key.startswith(("split", "mean_test")):
                assert_array_equal(searched.cv_results_[key], alone.cv_results_[key])
        for clf, proba in zip(fitted, expected, strict=True):
            assert_array_equal(clf.predict_proba(X), proba)
