"""A batched search over joblib workers: in process, threads, loky and dask.

Run ``python benchmarks/cluster_search.py`` (``--quick``: one turn of 10
epochs, into a temporary file; ``--repeats N``: turns, 3 by default). It times
``BatchedGridSearchCV`` of ``TorchMLPClassifier`` on a 3 x 4 grid of widths and
learning rates (cv=5, refit=False) on this machine's cores:

1. ``n_jobs=1``: the groups train in this process, side by side;
2. ``n_jobs=2`` under ``joblib.parallel_config(backend="threading")``;
3. ``n_jobs=2`` on loky, after an untimed search that starts its workers;
4. a ``distributed.LocalCluster`` of two one-thread workers under
   ``parallel_config(backend="dask")``, after an untimed search (the cluster's
   start is timed on its own).

The setups alternate turn by turn; each figure is the median of the turns. It
also reports the joblib tasks each search made (from its ``verbose=1`` line),
the largest difference of ``mean_test_score`` from the ``n_jobs=1`` search,
the bytes a task ships (its members' numbers) against the context shared by
all tasks, and the seconds the client spends preparing the jobs
(``_prepare_all`` on the main thread). A full run also times scikit-learn's
``GridSearchCV(n_jobs=1)`` once, as a reference. The report goes to
``benchmarks/results_cluster_search.md``.
"""

import argparse
import contextlib
import io
import re
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import cloudpickle
import joblib
import numpy as np
from run import HERE, machine
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skorchlite.model_selection as ms
from skorchlite import TorchMLPClassifier
from skorchlite.model_selection import BatchedGridSearchCV

GRID = {
    "hidden_layer_sizes": [(10,), (50,), (100,)],
    "learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
}
SMALL = {"hidden_layer_sizes": [(10,)], "learning_rate_init": [1e-3, 1e-2]}
PREPARE = {"seconds": 0.0}
SHIPPED = []


def timed_prepare(original):
    """``_prepare_all``, adding the main thread's seconds to ``PREPARE``."""

    def wrapper(context, members):
        start = time.perf_counter()
        try:
            return original(context, members)
        finally:
            if threading.current_thread() is threading.main_thread():
                PREPARE["seconds"] += time.perf_counter() - start

    return wrapper


def sizing_task(original):
    """``_group_task``, recording the pickled sizes of what it got."""

    def wrapper(context, members):
        SHIPPED.append(
            (len(cloudpickle.dumps(members)), len(cloudpickle.dumps(context)))
        )
        return original(context, members)

    return wrapper


def search(X, y, max_iter, grid=GRID, n_jobs=None, backend=None):
    """(seconds, mean_test_score, tasks, client prepare seconds) of one search."""
    estimator = TorchMLPClassifier(
        max_iter=max_iter, n_iter_no_change=1000, random_state=0
    )
    gs = BatchedGridSearchCV(estimator, grid, cv=5, refit=False, n_jobs=n_jobs)
    gs.verbose = 1
    config = (
        joblib.parallel_config(backend=backend) if backend else contextlib.nullcontext()
    )
    PREPARE["seconds"] = 0.0
    out = io.StringIO()
    with config, contextlib.redirect_stdout(out):
        start = time.perf_counter()
        gs.fit(X, y)
        seconds = time.perf_counter() - start
    found = re.search(r"as (\d+) task\(s\)", out.getvalue())
    tasks = int(found.group(1)) if found else 0
    scores = gs.cv_results_["mean_test_score"]
    return seconds, scores, tasks, PREPARE["seconds"]


def run(quick, repeats):
    from distributed import Client, LocalCluster

    max_iter = 10 if quick else 60
    X, y = make_classification(2000, 20, n_informative=10, n_classes=3, random_state=0)
    ms._prepare_all = timed_prepare(ms._prepare_all)
    # What a task ships: threads run the tasks in this process.
    original = ms._group_task
    ms._group_task = sizing_task(original)
    search(X, y, max_iter, n_jobs=2, backend="threading")
    ms._group_task = original
    search(X, y, max_iter, SMALL, n_jobs=2)  # starts loky's workers
    start = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    cluster_start = time.perf_counter() - start
    setups = {
        "n_jobs=1 (in process)": {"n_jobs": 1},
        "n_jobs=2, threading": {"n_jobs": 2, "backend": "threading"},
        "n_jobs=2, loky": {"n_jobs": 2},
        "dask LocalCluster (2 x 1 thread)": {"n_jobs": None, "backend": "dask"},
    }
    try:
        search(X, y, max_iter, SMALL, backend="dask")  # warms the cluster up
        runs = {name: [] for name in setups}
        for turn in range(repeats):
            for name, kwargs in setups.items():
                runs[name].append(search(X, y, max_iter, **kwargs))
                print(f"turn {turn}: {name} {runs[name][-1][0]:.2f} s", file=sys.stderr)
    finally:
        client.close()
        cluster.close()
    reference = None
    if not quick:
        estimator = TorchMLPClassifier(
            max_iter=max_iter, n_iter_no_change=1000, random_state=0
        )
        gs = GridSearchCV(estimator, GRID, cv=5, refit=False, n_jobs=1)
        start = time.perf_counter()
        gs.fit(X, y)
        reference = (time.perf_counter() - start, gs.cv_results_["mean_test_score"])
    return runs, reference, cluster_start, SHIPPED


def report(runs, reference, cluster_start, shipped, quick, repeats):
    base = runs["n_jobs=1 (in process)"]
    base_seconds = statistics.median(r[0] for r in base)
    rows = []
    for name, results in runs.items():
        seconds = statistics.median(r[0] for r in results)
        diff = max(float(np.max(np.abs(r[1] - base[0][1]))) for r in results)
        tasks = results[0][2] or "- (in process)"
        prepare = statistics.median(r[3] for r in results)
        rows.append(
            f"| {name} | {seconds:.2f} | {base_seconds / seconds:.2f}x | {tasks} "
            f"| {diff:.1e} | {prepare:.3f} ({100 * prepare / seconds:.0f}%) |"
        )
    if reference is not None:
        seconds, scores = reference
        diff = float(np.max(np.abs(scores - base[0][1])))
        rows.append(
            f"| GridSearchCV(n_jobs=1), 1 turn | {seconds:.2f} | "
            f"{base_seconds / seconds:.2f}x | - | {diff:.1e} | - |"
        )
    members = statistics.median(m for m, _ in shipped)
    context = shipped[0][1]
    epochs = 10 if quick else 60
    run_kind = "a --quick run" if quick else "the full run"
    return [
        "### Batched search over joblib workers",
        "",
        f"This is {run_kind}: 12 candidates x 5 folds, {epochs} epochs each, "
        f"{repeats} alternating turn(s), medians. Loky and dask were warmed up "
        "by an untimed small search; the dask LocalCluster took "
        f"{cluster_start:.2f} s to start (not in its row). The last column is "
        "the client's serial part: seconds in `_prepare_all` on the main "
        "thread, and its share of the search.",
        "",
        "| setup | seconds (median) | vs n_jobs=1 | tasks | "
        "max abs diff of mean_test_score | client _prepare_all s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "### What a task ships",
        "",
        f"Measured under threads ({len(shipped)} tasks): cloudpickle sizes.",
        "",
        "| what | bytes |",
        "|---|---|",
        f"| a task's members, (index, (candidate, split)) (median) | {members:.0f} |",
        f"| the shared context (once per worker) | {context} |",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 turn, 10 epochs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    repeats = 1 if args.quick else args.repeats
    results = run(args.quick, repeats)
    command = " ".join(["python benchmarks/cluster_search.py", *sys.argv[1:]])
    text = "\n".join(
        [
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}.",
            "",
            *report(*results, args.quick, repeats),
        ]
    )
    print(text)
    output = args.output
    if output is None and args.quick:
        output = Path(tempfile.mkdtemp()) / "results_cluster_search.md"
    output = output or HERE / "results_cluster_search.md"
    output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
