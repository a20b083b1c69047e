"""Batched searches against scikit-learn's, with the machine's limit.

Run ``python benchmarks/batched_search.py`` (``--quick``: one small grid, into
a temporary file; ``--json PATH``: the times, per search, as JSON too). Each row
times one search of ours and its scikit-learn counterpart on ``MLPClassifier``
at ``n_jobs=1`` and at ``n_jobs=-1`` (what a user would otherwise run on all
cores), in turns, and reports:

- the wall times and both speed-ups (the median of each turn's ratio);
- the work of our search, counted from each fitted model (``t_`` training
  rows seen, ``n_iter_`` epochs, hence optimizer steps):

  - matrix products, in FLOPs: per training row, forward 2, weight gradient 2
    and, above the first layer, input gradient 2 per weight;
  - elementwise passes, in bytes (values read or written x the dtype's size):
    per unit (hidden or output) per training row 6 values: the activation or
    the loss reads its input and writes its output (2), the derivative reads
    the incoming gradient and the activation and writes a gradient (3), the
    bias gradient sums it over the rows (1); per step, per parameter 7 for
    Adam (reads the parameter, its gradient and both moments, writes the
    parameter and both moments) and per weight 3 more for the L2 penalty
    (adds ``alpha * W`` to the gradient). Their arithmetic (a few FLOPs per
    value) is far below the products': memory traffic bounds them, so they
    are counted in bytes;

- the limit: products FLOPs / peak FLOPS plus elementwise bytes / peak
  bandwidth, the time no implementation that makes those passes can beat
  here. Each peak is measured on ONE core (``torch.set_num_threads(1)``,
  ``torch.bmm`` and ``torch.add`` at the search's shapes, the best of several
  repetitions) and multiplied by the torch threads the search may use: two
  threads on these 2-vCPU VMs measure erratically (17-67 GFLOPS float64 for
  the same product), one core steadily, and perfect scaling over the cores
  keeps the limit a bound;
- whether the goal (against ``n_jobs=1``: 10x at float64, 15x at float32, 10x
  for a Pipeline, 5x for randomized and halving searches, or within 1.5x of
  the limit where the limit forbids the speed-up) is met;
- the best score of each search, which must agree.

The results go to ``benchmarks/results_batched_search.md`` and the docs'
fragment is rendered from it.
"""

import argparse
import contextlib
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import render_docs
import torch
from run import HERE, machine, timed_fit
from sklearn.datasets import load_digits, make_classification, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import accuracy_score
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
)
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import TorchMLPClassifier
from skorchlite.model_selection import (
    BatchedGridSearchCV,
    BatchedHalvingGridSearchCV,
    BatchedRandomizedSearchCV,
)

WIDTHS_AND_RATES = {
    "hidden_layer_sizes": [(10,), (50,), (100,)],
    "learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
}
# The grid: 4 widths x 3 learning rates, exactly 60 epochs.
SYNTHETIC_GRID = {
    "hidden_layer_sizes": [(10,), (25,), (50,), (100,)],
    "learning_rate_init": [1e-3, 3e-3, 1e-2],
}
SIXTY_EPOCHS = {"max_iter": 60, "n_iter_no_change": 1000}
RANDOM_DISTRIBUTIONS = {
    "hidden_layer_sizes": [(w,) for w in (10, 25, 50, 100)],
    "learning_rate_init": [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2],
    "alpha": [1e-5, 1e-4, 1e-3],
}
GOALS = {"float64": 10.0, "float32": 15.0, "pipeline": 10.0, "other search": 5.0}


def datasets():
    moons = make_moons(1000, noise=0.07, random_state=42)
    X, y = load_digits(return_X_y=True)
    synthetic = make_classification(
        2000, 20, n_informative=10, n_classes=3, random_state=0
    )
    return {"moons": moons, "digits": (X / 16.0, y), "3-class synthetic": synthetic}


# Elementwise values read or written (see the module docstring): per unit per
# training row, per parameter per optimizer step, and per weight per step.
PER_UNIT_ROW, PER_PARAMETER_STEP, PER_WEIGHT_STEP = 6, 7, 3


def training_work(estimator):
    """(matrix-product FLOPs, elementwise bytes) of a fitted MLP's training."""
    if hasattr(estimator, "steps"):
        estimator = estimator[-1]
    coefs, rows = estimator.coefs_, estimator.t_
    per_row = sum((4 if layer == 0 else 6) * c.size for layer, c in enumerate(coefs))
    rows_per_epoch = rows / estimator.n_iter_
    batch = estimator.batch_size
    batch = min(200, rows_per_epoch) if batch == "auto" else batch
    steps = estimator.n_iter_ * math.ceil(rows_per_epoch / batch)
    weights = sum(c.size for c in coefs)
    parameters = weights + sum(b.size for b in estimator.intercepts_)
    values = rows * PER_UNIT_ROW * sum(c.shape[1] for c in coefs)
    values += steps * (PER_PARAMETER_STEP * parameters + PER_WEIGHT_STEP * weights)
    return float(rows * per_row), float(values * coefs[0].itemsize)


class WorkCountingAccuracy:
    """Accuracy, as a scorer; adds up the training work of each model it scores.

    Every fit of a search is scored once (on its test fold), so the sums are
    the search's; our search runs in this process.
    """

    def __init__(self):
        self.flops = self.bytes = 0.0

    def __call__(self, estimator, X, y):
        flops, nbytes = training_work(estimator)
        self.flops += flops
        self.bytes += nbytes
        return accuracy_score(y, estimator.predict(X))


def searches(quick):
    """Rows (data name, X, y, search label, goal kind, ours, sklearn's); the
    last two make a fresh search each."""
    data = datasets()
    if quick:
        data = {"moons": data["moons"]}
    rows = []
    for name, (X, y) in data.items():
        synthetic = name == "3-class synthetic"
        grid = SYNTHETIC_GRID if synthetic else WIDTHS_AND_RATES
        options = dict(random_state=0, **(SIXTY_EPOCHS if synthetic else {}))
        for dtype in ("float64", "float32"):
            rows.append(
                (
                    name,
                    X.astype(dtype),
                    y,
                    f"grid, {dtype}",
                    dtype,
                    lambda g=grid, o=options: BatchedGridSearchCV(
                        TorchMLPClassifier(**o), g, **_search_options()
                    ),
                    lambda n_jobs, g=grid, o=options: GridSearchCV(
                        MLPClassifier(**o), g, n_jobs=n_jobs, **_theirs()
                    ),
                )
            )
        if quick:
            continue
        step = {f"torchmlpclassifier__{k}": v for k, v in grid.items()}
        sk_step = {f"mlpclassifier__{k}": v for k, v in grid.items()}
        rows.append(
            (
                name,
                X,
                y,
                "Pipeline(StandardScaler, ours), grid, float64",
                "pipeline",
                lambda g=step, o=options: BatchedGridSearchCV(
                    make_pipeline(StandardScaler(), TorchMLPClassifier(**o)),
                    g,
                    **_search_options(),
                ),
                lambda n_jobs, g=sk_step, o=options: GridSearchCV(
                    make_pipeline(StandardScaler(), MLPClassifier(**o)),
                    g,
                    n_jobs=n_jobs,
                    **_theirs(),
                ),
            )
        )
        if synthetic:
            rows += [
                (
                    name,
                    X,
                    y,
                    "randomized, 20 candidates, float64",
                    "other search",
                    lambda o=options: BatchedRandomizedSearchCV(
                        TorchMLPClassifier(**o),
                        RANDOM_DISTRIBUTIONS,
                        n_iter=20,
                        random_state=0,
                        **_search_options(),
                    ),
                    lambda n_jobs, o=options: RandomizedSearchCV(
                        MLPClassifier(**o),
                        RANDOM_DISTRIBUTIONS,
                        n_iter=20,
                        random_state=0,
                        n_jobs=n_jobs,
                        **_theirs(),
                    ),
                ),
                (
                    name,
                    X,
                    y,
                    "halving grid, float64",
                    "other search",
                    lambda g=grid, o=options: BatchedHalvingGridSearchCV(
                        TorchMLPClassifier(**o), g, random_state=0, **_halving()
                    ),
                    lambda n_jobs, g=grid, o=options: HalvingGridSearchCV(
                        MLPClassifier(**o),
                        g,
                        random_state=0,
                        n_jobs=n_jobs,
                        **_theirs(_halving()),
                    ),
                ),
            ]
    return rows


def _search_options():
    # No refit: the timed work is the search's fits, each scored (and counted)
    # once.
    return dict(cv=5, scoring=WorkCountingAccuracy(), refit=False)


def _theirs(options=None):
    # scikit-learn's searches score with plain accuracy: at n_jobs=-1 their
    # fits run in other processes, where nothing would be counted.
    return dict(options or _search_options(), scoring="accuracy")


def _halving():
    return dict(_search_options(), factor=3, min_resources=200)


# torch.bmm (models, rows, inputs, units) of the searches' products: the
# digits forward and weight-gradient products and an output layer; torch.add
# over the stacked hidden activations of a width group and of the whole grid.
PRODUCT_SHAPES = [(60, 200, 64, 100), (60, 64, 200, 100), (60, 200, 100, 10)]
ELEMENTWISE_SHAPES = [(12, 200, 100), (60, 200, 100)]


@contextlib.contextmanager
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def best_rate(work, operation, repeats, calls=20):
    """``work`` per second of ``operation``: the best, over ``repeats``
    repetitions, of ``work`` / the median time of ``calls`` calls."""
    operation()  # warm-up: allocations, first-call dispatch
    best = 0.0
    for _ in range(repeats):
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            operation()
            times.append(time.perf_counter() - start)
        best = max(best, work / statistics.median(times))
    return best


def single_core_peaks(repeats):
    """``{dtype: (GFLOPS of torch.bmm, GB/s of torch.add)}`` on one core,
    the best over the searches' shapes."""
    peaks = {}
    with one_thread():
        for dtype in (torch.float64, torch.float32):
            gflops = gbps = 0.0
            for m, n, k, p in PRODUCT_SHAPES:
                a = torch.randn(m, n, k, dtype=dtype)
                b = torch.randn(m, k, p, dtype=dtype)
                work = 2 * m * n * k * p / 1e9
                gflops = max(gflops, best_rate(work, partial(torch.bmm, a, b), repeats))
            for shape in ELEMENTWISE_SHAPES:
                a, b, out = (torch.randn(shape, dtype=dtype) for _ in range(3))
                work = 3 * a.numel() * a.element_size() / 1e9  # read 2, write 1
                add = partial(torch.add, a, b, out=out)
                gbps = max(gbps, best_rate(work, add, repeats))
            peaks[str(dtype).removeprefix("torch.")] = (gflops, gbps)
    return peaks


def run(quick, repeats):
    threads = torch.get_num_threads()
    peaks = single_core_peaks(3 if quick else 7)
    print(f"single-core (GFLOPS, GB/s) {peaks}, x {threads}", file=sys.stderr)
    start_workers()
    results = []
    for name, X, y, label, kind, ours, theirs in searches(quick):
        times = {side: [] for side in SIDES}
        for _ in range(repeats):
            mine, one, every = ours(), theirs(1), theirs(-1)
            for side, search in zip(SIDES, (mine, one, every), strict=True):
                times[side].append(timed_fit(search, X, y))
        dtype = "float32" if X.dtype == np.float32 else "float64"
        gflops, gbps = peaks[dtype]
        row = {
            "data": name,
            "search": label,
            "kind": kind,
            **{side: statistics.median(t) for side, t in times.items()},
            # Speed-ups: medians of each turn's ratio.
            **{
                f"speed_up {side}": statistics.median(
                    a / b for a, b in zip(times[side], times["ours"], strict=True)
                )
                for side in SIDES[1:]
            },
            "gflop": mine.scoring.flops / 1e9,
            "gb": mine.scoring.bytes / 1e9,
            "products_limit": mine.scoring.flops / 1e9 / (gflops * threads),
            "elementwise_limit": mine.scoring.bytes / 1e9 / (gbps * threads),
            "best": (mine.best_score_, one.best_score_),
            "batched": (mine.n_batched_fits_, len(mine.cv_results_["params"])),
        }
        results.append(row)
        print(row, file=sys.stderr)
    return peaks, threads, results


def start_workers():
    """Start scikit-learn's worker processes, untimed: a process pays their
    start and imports in its first ``n_jobs=-1`` search, not in each."""
    X, y = make_moons(50, random_state=0)
    grid = {"alpha": [1e-4, 1e-3]}
    GridSearchCV(MLPClassifier(max_iter=2), grid, cv=2, n_jobs=-1).fit(X, y)


SIDES = ("ours", "sklearn n_jobs=1", "sklearn n_jobs=-1")


def report(peaks, threads, results, repeats):
    lines = [
        f"Command: `{command_line()}`",
        "",
        "### Batched-product peak and elementwise bandwidth, one core",
        "",
        "The best GFLOPS of torch.bmm over stacks of 200 x 64 by 64 x 100, 64 x "
        "200 by 200 x 100 and 200 x 100 by 100 x 10 products (60 each), and the "
        "best GB/s of torch.add over 12 and 60 stacked 200 x 100 activations "
        "(read 2, write 1), with torch.set_num_threads(1), each the best of "
        f"several repetitions. The limits below use them x {threads}, the torch "
        "threads a search may use.",
        "",
        "| dtype | GFLOPS, one core | GB/s, one core |",
        "|---|---|---|",
        *(
            f"| {dtype} | {gflops:.1f} | {gbps:.1f} |"
            for dtype, (gflops, gbps) in peaks.items()
        ),
        "",
        "### Batched searches against scikit-learn",
        "",
        f"Median of {repeats} turn(s) of ours and scikit-learn's search on "
        "MLPClassifier at n_jobs=1 and at n_jobs=-1; 5 folds, random_state=0. "
        "Moons and digits: 3 widths x 4 learning rates, max_iter=200 with "
        "tol-based stopping; the 3-class synthetic set (2000 x 20): 4 widths x 3 "
        "learning rates, 60 epochs. GFLOP counts our search's matrix products, "
        "GB its elementwise passes (activations, loss, penalty, Adam: see "
        "benchmarks/batched_search.py); each limit is that work at the peak "
        "above, and ours / limit compares our time with their sum. Goal, "
        "against n_jobs=1: 10x at float64, 15x at float32, 10x for a Pipeline, "
        "5x for randomized and halving searches, or within 1.5x of the limit "
        "where the limit forbids that speed-up.",
        "",
        "| data | search | ours s | sklearn n_jobs=1 s | sklearn n_jobs=-1 s "
        "| speed-up vs n_jobs=1 | speed-up vs n_jobs=-1 | products GFLOP "
        "| elementwise GB | products limit s | elementwise limit s | ours / limit "
        "| goal | best score (ours / sklearn) | batched fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        goal = GOALS[r["kind"]]
        limit = r["products_limit"] + r["elementwise_limit"]
        speed_up = r["speed_up sklearn n_jobs=1"]
        possible = r["sklearn n_jobs=1"] / limit >= goal
        met = speed_up >= goal if possible else r["ours"] <= 1.5 * limit
        cells = [
            r["data"],
            r["search"],
            *(f"{r[side]:.2f}" for side in SIDES),
            *(f"{r[f'speed_up {side}']:.1f}x" for side in SIDES[1:]),
            f"{r['gflop']:.1f}",
            f"{r['gb']:.1f}",
            f"{r['products_limit']:.2f}",
            f"{r['elementwise_limit']:.2f}",
            f"{r['ours'] / limit:.1f}",
            f"{f'{goal:g}x' if possible else '1.5x limit'}: "
            f"{'met' if met else 'not met'}",
            f"{r['best'][0]:.4f} / {r['best'][1]:.4f}",
            f"{r['batched'][0]} of {r['batched'][1] * 5}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def times_json(results):
    """Each search's median seconds, ours and scikit-learn's: ``--json``."""
    return {
        f"{r['data']}, {r['search']}": {side: r[side] for side in SIDES}
        for r in results
    }


def command_line():
    args = map(shlex.quote, sys.argv[1:])
    return " ".join(["python benchmarks/batched_search.py", *args])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="moons only, 1 turn")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write each search's seconds (ours, scikit-learn's) as JSON",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    repeats = 1 if args.quick else args.repeats
    peaks, threads, results = run(args.quick, repeats)
    text = "\n".join(
        [f"Machine: {machine()}.", "", *report(peaks, threads, results, repeats)]
    )
    print(text)
    output = args.output
    if output is None and args.quick:
        output = Path(tempfile.mkdtemp()) / "results_batched_search.md"
    output = output or HERE / "results_batched_search.md"
    output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    if args.json is not None:
        document = {"command": command_line(), "times": times_json(results)}
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if output.parent.resolve() == HERE.resolve():
        render_docs.main()


if __name__ == "__main__":
    main()
