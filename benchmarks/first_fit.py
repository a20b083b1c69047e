"""First fit in a fresh process minus a warm fit (issue 14).

Run ``python benchmarks/first_fit.py`` from the repository root (``--processes
N`` per configuration).
Each configuration is timed in fresh processes, after ``import skorchlite``:
the first ``fit`` + ``predict_proba`` of a tiny model, then the same again
(the median of 3); the overhead is their difference, the median over
processes. The goal is at most 0.1 s: no lazy import (``torch._dynamo``,
sympy) on the fit or predict path. sklearn's MLPClassifier is the reference.
The markdown table is printed and written to
``benchmarks/results_first_fit.md``.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

CHILD = """
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
from sklearn.datasets import make_moons
from sklearn.neural_network import MLPClassifier
from skorchlite import TorchMLPClassifier

params = json.loads(sys.argv[1])
make = MLPClassifier if params.pop("sklearn", False) else TorchMLPClassifier
if make is TorchMLPClassifier:
    params["device"] = "cpu"
X, y = make_moons(100, noise=0.2, random_state=0)

def fit():
    started = time.perf_counter()
    make((5,), max_iter=2, random_state=0, **params).fit(X, y).predict_proba(X)
    return time.perf_counter() - started

before = set(sys.modules)
first = fit()
heavy = sorted(
    name for name in set(sys.modules) - before
    if name in ("sympy", "mpmath", "torch._dynamo", "torch._inductor")
)
warm = statistics.median(fit() for _ in range(3))
print(json.dumps({"first": first, "warm": warm, "heavy": heavy}))
"""

CONFIGS = {
    "adam (defaults)": {},
    "sgd": {"solver": "sgd"},
    "lbfgs": {"solver": "lbfgs"},
    "adamw, dropout, early stopping": {
        "solver": "adamw",
        "dropout": 0.2,
        "early_stopping": True,
    },
    "sklearn MLPClassifier (reference)": {"sklearn": True},
}


def measure(params):
    output = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(params)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "results_first_fit.md")
    args = parser.parse_args()
    lines = [
        "### First fit in a fresh process minus a warm fit",
        "",
        f"Command: `python benchmarks/first_fit.py --processes {args.processes}` "
        "(medians over processes). A tiny fit: moons, 100 rows, (5,), 2 "
        "epochs, then predict_proba. Goal: overhead <= 0.1 s.",
        "",
        f"Machine: {platform.platform()}, {platform.processor() or 'CPU'}.",
        "",
        "| configuration | first fit s | warm fit s | overhead s | heavy imports |",
        "|---|---|---|---|---|",
    ]
    for name, params in CONFIGS.items():
        runs = [measure(dict(params)) for _ in range(args.processes)]
        first = statistics.median(run["first"] for run in runs)
        warm = statistics.median(run["warm"] for run in runs)
        overhead = statistics.median(run["first"] - run["warm"] for run in runs)
        heavy = sorted({module for run in runs for module in run["heavy"]})
        lines.append(
            f"| {name} | {first:.3f} | {warm:.3f} | {overhead:.3f} | "
            f"{', '.join(heavy) or 'none'} |"
        )
        print(lines[-1], file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
