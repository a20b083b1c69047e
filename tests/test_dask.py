"""Scale-out on dask.distributed: grid search on a cluster, out-of-core training.

Both tests run on a real (in-process) ``distributed.LocalCluster`` with two
single-threaded workers.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skorchlite import TorchMLPClassifier

distributed = pytest.importorskip("distributed", reason="needs the dask extra")
da = pytest.importorskip("dask.array", reason="needs the dask extra")
joblib = pytest.importorskip("joblib")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_on_dask_matches_local_run(client):
    X, y = make_moons(300, noise=0.2, random_state=0)
    grid = {"hidden_layer_sizes": [(2,), (32,)], "learning_rate_init": [1e-3, 3e-2]}

    def search():
        return GridSearchCV(TorchMLPClassifier(random_state=0, max_iter=40), grid, cv=3)

    local = search().fit(X, y)
    with (
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_backend("dask"),
    ):
        remote = search().set_params(n_jobs=-1).fit(X, y)

    assert tasks.data, "no task ran on the dask cluster"
    assert remote.best_params_ == local.best_params_
    # Same seeds, same models: of the 4 x 3 x 100 test-fold predictions, at
    # most one may flip (rounding in another thread), moving one split score
    # by 1/100.
    splits = [f"split{k}_test_score" for k in range(3)]
    remote_scores = np.array([remote.cv_results_[key] for key in splits])
    local_scores = np.array([local.cv_results_[key] for key in splits])
    assert np.abs(remote_scores - local_scores).sum() <= 1 / 100 + 1e-12


def test_incremental_over_blocks_matches_in_memory_fit(client):
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers", reason="needs dask-ml")
    X, y = make_classification(
        2400, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    X_train, y_train, X_test, y_test = X[:1600], y[:1600], X[1600:], y[1600:]
    n_blocks, n_passes = 8, 6
    X_blocks = da.from_array(X_train, chunks=(1600 // n_blocks, X.shape[1]))
    y_blocks = da.from_array(y_train, chunks=1600 // n_blocks)
    params = {"hidden_layer_sizes": (32,), "learning_rate_init": 0.01}

    incremental = dask_ml_wrappers.Incremental(
        TorchMLPClassifier(random_state=0, **params), random_state=0
    )
    for _ in range(n_passes):
        incremental.partial_fit(X_blocks, y_blocks, classes=np.unique(y))
    with pytest.warns(ConvergenceWarning):
        in_memory = TorchMLPClassifier(random_state=0, max_iter=n_passes, **params)
        in_memory.fit(X_train, y_train)

    model = incremental.estimator_
    # One partial_fit (= one epoch) per block per pass, over every row.
    assert len(model.loss_curve_) == n_blocks * n_passes
    assert model.t_ == n_passes * len(X_train)
    assert model.score(X_test, y_test) >= in_memory.score(X_test, y_test) - 0.02

    # Prediction stays blockwise on dask arrays and agrees with in-memory predict.
    X_test_blocks = da.from_array(X_test, chunks=(200, X.shape[1]))
    predicted = incremental.predict(X_test_blocks)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(predicted.compute(), model.predict(X_test))
    proba = incremental.predict_proba(X_test_blocks).compute()
    np.testing.assert_allclose(proba, model.predict_proba(X_test))
