"""Batched searches against scikit-learn's, with the machine's arithmetic limit.

Run ``python benchmarks/batched_search.py`` (``--quick``: one small grid, into
a temporary file). Each row times one search of ours and its scikit-learn
counterpart on ``MLPClassifier`` (``n_jobs=1``), in turns, and reports:

- the wall times and the speed-up (the median of each turn's ratio);
- the arithmetic of our search: the floating-point operations of its matrix
  products, counted from each fitted model (training rows seen x the products'
  FLOPs per row: forward 2, weight gradient 2 and, above the first layer, input
  gradient 2 per weight), its GFLOPS, and the fraction of the machine's
  measured batched-product peak;
- the limit: those FLOPs at that peak, the time no implementation of these
  products can beat here, and whether the goal (10x at float64, 15x at
  float32, 10x for a Pipeline, 5x for randomized and halving searches, or
  within 1.5x of the limit where the limit forbids the speed-up) is met;
- the best score of each search, which must agree.

The results go to ``benchmarks/results_batched_search.md`` and the docs'
fragment is rendered from it.
"""

import argparse
import shlex
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import render_docs
import torch
from run import HERE, bmm_gflops, machine, timed_fit
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


def product_flops(estimator):
    """FLOPs of the matrix products of a fitted MLP's training (see above)."""
    if hasattr(estimator, "steps"):
        estimator = estimator[-1]
    per_row = 0
    for layer, coef in enumerate(estimator.coefs_):
        per_row += (4 if layer == 0 else 6) * coef.size
    return float(estimator.t_ * per_row)


class FlopCountingAccuracy:
    """Accuracy, as a scorer; counts the FLOPs of each model it scores.

    Every fit of a search is scored once (on its test fold), so the sum is
    the search's; both searches run in this process (n_jobs=1).
    """

    def __init__(self):
        self.flops = 0.0

    def __call__(self, estimator, X, y):
        self.flops += product_flops(estimator)
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
                    lambda g=grid, o=options: GridSearchCV(
                        MLPClassifier(**o), g, n_jobs=1, **_search_options()
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
                lambda g=sk_step, o=options: GridSearchCV(
                    make_pipeline(StandardScaler(), MLPClassifier(**o)),
                    g,
                    n_jobs=1,
                    **_search_options(),
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
                    lambda o=options: RandomizedSearchCV(
                        MLPClassifier(**o),
                        RANDOM_DISTRIBUTIONS,
                        n_iter=20,
                        random_state=0,
                        n_jobs=1,
                        **_search_options(),
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
                    lambda g=grid, o=options: HalvingGridSearchCV(
                        MLPClassifier(**o), g, random_state=0, n_jobs=1, **_halving()
                    ),
                ),
            ]
    return rows


def _search_options():
    # No refit: the timed work is the search's fits, each scored (and counted)
    # once.
    return dict(cv=5, scoring=FlopCountingAccuracy(), refit=False)


def _halving():
    return dict(_search_options(), factor=3, min_resources=200)


def measure_peak(repeats):
    """GFLOPS of torch.bmm at the searches' shapes and larger; the best of them."""
    shapes = [(60, 200, 64, 100), (20, 200, 65, 256), (16, 256, 256, 256)]
    return {
        str(dtype).removeprefix("torch."): max(
            bmm_gflops(shape, dtype, repeats * 50) for shape in shapes
        )
        for dtype in (torch.float64, torch.float32)
    }


def run(quick, repeats):
    peak = measure_peak(1 if quick else 3)
    print(f"peak GFLOPS {peak}", file=sys.stderr)
    results = []
    for name, X, y, label, kind, ours, theirs in searches(quick):
        times, ratios = {"ours": [], "sklearn": []}, []
        for _ in range(repeats):
            mine, base = ours(), theirs()
            t_ours, t_sklearn = timed_fit(mine, X, y), timed_fit(base, X, y)
            times["ours"].append(t_ours)
            times["sklearn"].append(t_sklearn)
            ratios.append(t_sklearn / t_ours)
        flops = mine.scoring.flops
        dtype = "float32" if X.dtype == np.float32 else "float64"
        row = {
            "data": name,
            "search": label,
            "kind": kind,
            "ours": statistics.median(times["ours"]),
            "sklearn": statistics.median(times["sklearn"]),
            "speed_up": statistics.median(ratios),
            "gflop": flops / 1e9,
            "peak": peak[dtype],
            "best": (mine.best_score_, base.best_score_),
            "batched": (mine.n_batched_fits_, len(mine.cv_results_["params"])),
        }
        results.append(row)
        print(row, file=sys.stderr)
    return peak, results


def report(peak, results, repeats):
    lines = [
        f"Command: `{command_line()}`",
        "",
        "### Batched-product peak",
        "",
        "The best GFLOPS of torch.bmm over stacks of 200 x 64 by 64 x 100, "
        "200 x 65 by 65 x 256 and 256 x 256 by 256 x 256 products, "
        f"{torch.get_num_threads()} torch threads: the peak the limits below use.",
        "",
        "| dtype | peak GFLOPS |",
        "|---|---|",
        *(f"| {dtype} | {value:.1f} |" for dtype, value in peak.items()),
        "",
        "### Batched searches against scikit-learn",
        "",
        f"Median of {repeats} turn(s) of ours and scikit-learn's search on "
        "MLPClassifier (n_jobs=1); 5 folds, random_state=0. Moons and digits: "
        "3 widths x 4 learning rates, max_iter=200 with tol-based stopping; the "
        "3-class synthetic set (2000 x 20): 4 widths x 3 learning rates, 60 "
        "epochs. GFLOP counts our search's matrix products (see "
        "benchmarks/batched_search.py); the limit is GFLOP / peak. Goal: "
        "10x at float64, 15x at float32, 10x for a Pipeline, 5x for randomized "
        "and halving searches, or within 1.5x of the limit where the limit "
        "forbids that speed-up.",
        "",
        "| data | search | ours s | scikit-learn s | speed-up | GFLOP | GFLOPS "
        "| of peak | limit s | goal | best score (ours / sklearn) | batched fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        goal = GOALS[r["kind"]]
        achieved = r["gflop"] / r["ours"]
        limit = r["gflop"] / r["peak"]
        possible = r["sklearn"] / limit >= goal
        met = r["speed_up"] >= goal if possible else r["ours"] <= 1.5 * limit
        arithmetic = [
            f"{r['gflop']:.1f}",
            f"{achieved:.1f}",
            f"{achieved / r['peak']:.0%}",
            f"{limit:.2f}",
        ]
        target = f"{goal:g}x" if possible else "1.5x limit"
        lines.append(
            f"| {r['data']} | {r['search']} | {r['ours']:.2f} | {r['sklearn']:.2f} "
            f"| {r['speed_up']:.1f}x | {' | '.join(arithmetic)} "
            f"| {target}: {'met' if met else 'not met'} "
            f"| {r['best'][0]:.4f} / {r['best'][1]:.4f} "
            f"| {r['batched'][0]} of {r['batched'][1] * 5} |"
        )
    return lines


def command_line():
    args = map(shlex.quote, sys.argv[1:])
    return " ".join(["python benchmarks/batched_search.py", *args])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="moons only, 1 turn")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    repeats = 1 if args.quick else args.repeats
    peak, results = run(args.quick, repeats)
    text = "\n".join([f"Machine: {machine()}.", "", *report(peak, results, repeats)])
    print(text)
    output = args.output
    if output is None and args.quick:
        output = Path(tempfile.mkdtemp()) / "results_batched_search.md"
    output = output or HERE / "results_batched_search.md"
    output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    if output.parent.resolve() == HERE.resolve():
        render_docs.main()


if __name__ == "__main__":
    main()
