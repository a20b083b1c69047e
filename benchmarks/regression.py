"""TorchMLPRegressor against scikit-learn's MLPRegressor, same configuration.

Run ``python benchmarks/regression.py`` (``--quick`` for a smoke run, written
to a temporary directory). Both estimators get the same network (one hidden
ReLU layer of 100), Adam 1e-3, batch 200, shuffled batches, L2 ``alpha=1e-4``,
exactly ``--epochs`` epochs (``--big-epochs`` on 100k rows), the same
standardized float64 data and target; both start from the same initial
weights (``random_state=0``). Every figure is the median of ``--repeats`` runs
after one untimed warm-up fit of each; ratios are taken run by run. The report
goes to ``benchmarks/results_regression.md``.
"""

import argparse
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from run import HERE, machine
from sklearn.datasets import load_diabetes, make_friedman1, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from skorchlite import TorchMLPRegressor


def datasets(quick):
    n_big = 20_000 if quick else 100_000
    return {
        "diabetes": load_diabetes(return_X_y=True),
        "friedman1 2,000 x 10": make_friedman1(2000, noise=1.0, random_state=0),
        "linear 5,000 x 20": make_regression(
            5000, 20, n_informative=10, noise=10.0, random_state=0
        ),
        f"synthetic {n_big:,} x 50": make_regression(
            n_big, 50, n_informative=20, noise=10.0, random_state=0
        ),
    }


def prepare(X, y):
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    x_scaler, y_scaler = StandardScaler().fit(X_train), StandardScaler()
    y_train = y_scaler.fit_transform(y_train[:, None])[:, 0]
    y_test = y_scaler.transform(y_test[:, None])[:, 0]
    return x_scaler.transform(X_train), x_scaler.transform(X_test), y_train, y_test


def same_config(cls, epochs):
    return cls(
        hidden_layer_sizes=(100,),
        solver="adam",
        learning_rate_init=1e-3,
        alpha=1e-4,
        batch_size=200,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        shuffle=True,
        random_state=0,
    )


LIBRARIES = {"skorchlite": TorchMLPRegressor, "sklearn": MLPRegressor}


def bench(data, repeats, epochs, big_epochs):
    rows = []
    for name, (X, y) in data.items():
        X_train, X_test, y_train, y_test = prepare(X, y)
        n_epochs = big_epochs if len(X_train) > 10_000 else epochs
        seconds = {lib: [] for lib in LIBRARIES}
        r2 = {}
        for _ in range(repeats):
            for lib, cls in LIBRARIES.items():
                estimator = same_config(cls, n_epochs)
                start = time.perf_counter()
                estimator.fit(X_train, y_train)
                seconds[lib].append(time.perf_counter() - start)
                r2[lib] = estimator.score(X_test, y_test)
        ratios = [a / b for a, b in zip(*seconds.values(), strict=True)]
        rows.append(
            f"| {name} | {len(X_train)} | {n_epochs} | "
            f"{statistics.median(seconds['skorchlite']):.3f} | "
            f"{statistics.median(seconds['sklearn']):.3f} | "
            f"{statistics.median(ratios):.2f} | "
            f"{r2['skorchlite']:.3f} | {r2['sklearn']:.3f} |"
        )
        print(rows[-1], file=sys.stderr)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, faster run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--big-epochs", type=int, default=5)
    parser.add_argument("--output", type=Path, help="where to write the report")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs, args.big_epochs = 1, 10, 2
    if args.output is None:
        folder = (
            Path(tempfile.mkdtemp(prefix="skorchlite-bench-")) if args.quick else HERE
        )
        args.output = folder / "results_regression.md"
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = datasets(args.quick)
    warm = prepare(*data["diabetes"])
    for cls in LIBRARIES.values():  # untimed: lazy imports, first allocations
        same_config(cls, 2).fit(warm[0], warm[2])
    rows = bench(data, args.repeats, args.epochs, args.big_epochs)
    command = " ".join(
        ["python benchmarks/regression.py", *map(shlex.quote, sys.argv[1:])]
    )
    text = "\n".join(
        [
            "# Regression benchmark",
            "",
            f"Machine: {machine()}.",
            "",
            f"Command: `{command}`",
            "",
            "### TorchMLPRegressor against MLPRegressor",
            "",
            "One hidden ReLU layer of 100, Adam 1e-3, batch 200, shuffled, L2 "
            "alpha=1e-4, no early stopping, standardized float64 X and y, the same "
            f"initial weights; medians of {args.repeats} run(s) after a warm-up "
            "fit of each.",
            "",
            "| dataset | train rows | epochs | skorchlite fit s | sklearn fit s "
            "| ours/sklearn | skorchlite test R² | sklearn test R² |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    args.output.write_text(text + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
