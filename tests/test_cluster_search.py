"""Batched searches whose groups are joblib tasks: threads, loky and a real
2-worker ``distributed.LocalCluster`` give the results of the search in this
process and of ``GridSearchCV``; a worker killed mid-search does not lose it.
"""

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import loguniform
from sklearn.datasets import make_moons, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skorchlite._engine.batched as batched
import skorchlite.model_selection as search_module
from skorchlite import (
    BatchedGridSearchCV,
    BatchedHalvingGridSearchCV,
    BatchedRandomizedSearchCV,
    TorchMLPClassifier,
    TorchMLPRegressor,
)

distributed = pytest.importorskip("distributed", reason="needs the dask extra")
joblib = pytest.importorskip("joblib")
cloudpickle = pytest.importorskip("cloudpickle")

# Both cluster fixtures' tests on one pytest worker: two clusters at once
# would share the 2 cores with the rest of the suite.
pytestmark = [
    pytest.mark.xdist_group("dask-cluster"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

X, y = make_moons(160, noise=0.25, random_state=0)
XR, yr = make_regression(160, 4, noise=5.0, random_state=0)
yr = yr / yr.std()
GRID = {"hidden_layer_sizes": [(4,), (16,)], "learning_rate_init": [3e-3, 3e-2]}


def classifier(**params):
    return TorchMLPClassifier(max_iter=12, random_state=0, **params)


SEARCHES = {
    "grid": lambda: BatchedGridSearchCV(classifier(), GRID, cv=3),
    "randomized": lambda: BatchedRandomizedSearchCV(
        classifier(hidden_layer_sizes=(8,)),
        {"learning_rate_init": loguniform(1e-3, 1e-1), "alpha": [1e-4, 1e-2]},
        n_iter=4,
        cv=3,
        random_state=0,
    ),
    "halving": lambda: BatchedHalvingGridSearchCV(
        classifier(hidden_layer_sizes=(8,)),
        {"learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2]},
        factor=2,
        cv=3,
        random_state=0,
    ),
    "pipeline": lambda: BatchedGridSearchCV(
        make_pipeline(StandardScaler(), classifier()),
        {f"torchmlpclassifier__{k}": v for k, v in GRID.items()},
        cv=3,
    ),
    "regressor": lambda: BatchedGridSearchCV(
        TorchMLPRegressor(max_iter=12, random_state=0), GRID, cv=3
    ),
}
REFERENCES = {"grid": GridSearchCV, "pipeline": GridSearchCV, "regressor": GridSearchCV}


def data(case):
    return (XR, yr) if case == "regressor" else (X, y)


def score_keys(results):
    return sorted(k for k in results if "test_score" in k or "train_score" in k)


def assert_same_results(results, expected):
    assert [str(p) for p in results["params"]] == [str(p) for p in expected["params"]]
    for key in score_keys(expected):
        np.testing.assert_allclose(
            results[key], expected[key], rtol=0, atol=1e-10, err_msg=key
        )
    for key in ("n_resources", "iter"):
        if key in expected:
            np.testing.assert_array_equal(results[key], expected[key])


LOCAL = {}


def local_results(case):
    """The search's results in this process (``n_jobs=None``), once per case."""
    if case not in LOCAL:
        search = SEARCHES[case]().fit(*data(case))
        assert search.n_batched_fits_ == len(search.cv_results_["params"]) * 3
        LOCAL[case] = search.cv_results_
    return LOCAL[case]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("case", sorted(SEARCHES))
def test_search_on_a_cluster_equals_the_local_run_and_sklearns(client, case):
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            search = SEARCHES[case]().fit(*data(case))
    on_workers = {task["worker"] for task in stream.data}
    assert len(on_workers) == 2, "the groups did not spread over both workers"
    assert search.n_batched_fits_ == len(search.cv_results_["params"]) * 3
    assert_same_results(search.cv_results_, local_results(case))
    if case in REFERENCES:
        plain = SEARCHES[case]()
        reference = REFERENCES[case](plain.estimator, plain.param_grid, cv=3).fit(
            *data(case)
        )
        assert_same_results(search.cv_results_, reference.cv_results_)
    # The refit ran here, as an ordinary fit.
    assert search.best_estimator_.predict(data(case)[0][:5]).shape == (5,)


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_local_joblib_workers_equal_the_run_in_this_process(backend):
    threads = torch.get_num_threads()
    with joblib.parallel_config(backend=backend):
        search = SEARCHES["pipeline"]().set_params(n_jobs=2).fit(X, y)
    assert_same_results(search.cv_results_, local_results("pipeline"))
    assert torch.get_num_threads() == threads


def test_a_task_ships_numbers_and_the_data_reaches_each_worker_once(
    client, monkeypatch
):
    big_X = np.random.default_rng(0).normal(size=(4000, 30))
    big_y = (big_X[:, 0] > 0).astype(int)
    calls = []
    real = search_module.Parallel

    class Recording(real):
        def __call__(self, iterable):
            iterable = list(iterable)
            calls.extend(iterable)
            return super().__call__(iterable)

    monkeypatch.setattr(search_module, "Parallel", Recording)
    with joblib.parallel_config(backend="dask"):
        search = BatchedGridSearchCV(
            TorchMLPClassifier(max_iter=2, random_state=0), GRID, cv=3, n_jobs=2
        ).fit(big_X, big_y)
    group_tasks = [c for c in calls if c[0] is search_module._group_task]
    assert len(group_tasks) >= 2
    futures = {id(args[0]): args[0] for _, args, _ in group_tasks}
    assert len(futures) == 1, "every task must share one copy of the data"
    (shared,) = futures.values()
    assert isinstance(shared, distributed.Future)
    assert len(client.who_has(shared)[shared.key]) == 2  # on each worker
    for _, args, kwargs in group_tasks:
        payload = len(cloudpickle.dumps((args[1:], kwargs)))
        assert payload < 2_000 < big_X.nbytes
    assert search.n_batched_fits_ == 12


def test_groups_spread_over_the_workers_and_threads_are_shared(monkeypatch):
    seen = []
    real = search_module.train_groups

    def recording(runs):
        seen.append((len(runs), torch.get_num_threads()))
        return real(runs)

    monkeypatch.setattr(search_module, "train_groups", recording)
    grid = {"learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2]}
    # One group: every fold gives 4 batches of 32 rows.
    estimator = classifier(hidden_layer_sizes=(8,), batch_size=32)
    search = BatchedGridSearchCV(estimator, grid, cv=3, n_jobs=2, verbose=1)
    with joblib.parallel_config(backend="threading"):
        search.fit(X, y)
    assert len(seen) == 2, "one group of 12 models should be split in 2 tasks"
    # Each of the 2 tasks in this process gets its share of torch's threads.
    assert all(n == max(1, torch.get_num_threads() // 2) for _, n in seen)
    reference = GridSearchCV(estimator, grid, cv=3)
    assert_same_results(search.cv_results_, reference.fit(X, y).cv_results_)


def test_a_group_over_the_memory_bound_trains_in_runs(monkeypatch):
    search = BatchedGridSearchCV(classifier(), GRID, cv=3)
    whole = search.fit(X, y).cv_results_
    n_groups = search.n_batch_groups_
    monkeypatch.setattr(batched, "RUN_MAX_BYTES", 20_000)
    split = BatchedGridSearchCV(classifier(), GRID, cv=3).fit(X, y)
    assert split.n_batch_groups_ > n_groups
    assert_same_results(split.cv_results_, whole)


@pytest.fixture
def fresh_client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def test_a_worker_killed_mid_search_does_not_lose_the_search(fresh_client):
    client = fresh_client
    Xk, yk = make_moons(600, noise=0.25, random_state=0)
    grid = {"hidden_layer_sizes": [(16,), (64,)], "learning_rate_init": [3e-3, 3e-2]}

    def search():
        return BatchedGridSearchCV(
            TorchMLPClassifier(max_iter=150, n_iter_no_change=1000, random_state=0),
            grid,
            cv=3,
            refit=False,
        )

    outcome = {}

    def run():
        try:
            with joblib.parallel_config(backend="dask"):
                outcome["search"] = search().fit(Xk, yk)
        except Exception as exc:  # asserted below
            outcome["error"] = exc

    pids = client.run(os.getpid)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        busy = [w for w, keys in client.processing().items() if keys]
        victim = busy[0] if busy else None
        time.sleep(0.05)
    assert victim is not None, "no task started on the cluster"
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the search hangs after losing a worker"
    print("killed worker; the search", "raised" if "error" in outcome else "finished")
    if "error" in outcome:  # allowed only with a message that says what happened
        message = str(outcome["error"]).lower()
        assert "worker" in message and ("died" in message or "lost" in message)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = search().fit(Xk, yk).cv_results_
        assert_same_results(outcome["search"].cv_results_, expected)
