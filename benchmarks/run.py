"""Side-by-side benchmark: TorchMLPClassifier, sklearn's MLPClassifier, skorch.

Run ``python benchmarks/run.py`` (``--quick`` for a smoke run). Every figure is
the median of ``--repeats`` runs in this one process, after one untimed
warm-up fit of each library; ratios are taken run by run, so a machine that
drifts affects both sides alike. The first fit in a fresh process is reported
on its own line. The markdown report is printed and written to
``benchmarks/results.md``; ``--quick`` writes into a temporary directory
instead (``--output`` chooses the file), so a smoke run leaves the repository
as it was. ``--json PATH`` also writes each configuration's seconds, ours and
the other libraries', as JSON (what ``compare.py`` reads).

``--machine-facts`` measures the machine facts the docs quote
(``results_machine.md``); ``batched_search.py`` compares the batched searches
with scikit-learn's (``results_batched_search.md``); ``compare.py`` times two
revisions of the package with these scripts (``results_compare.md``). A full run that
writes into ``benchmarks/`` also renders the documentation's tables from the
results files (``--docs`` renders them alone; see ``render_docs.py``).
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import render_docs
import sklearn
import torch
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    make_blobs,
    make_circles,
    make_classification,
    make_moons,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import BatchedGridSearchCV, TorchMLPClassifier

try:
    from skorch import NeuralNetClassifier
except ImportError:  # skorch is optional: pip install ".[bench]"
    NeuralNetClassifier = None

HERE = Path(__file__).parent
# Other processes on a shared machine slow every figure down: say how busy it
# was when the run started.
LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def spirals(n_per_class=100, n_classes=3, seed=42):
    """The CS231n spiral data set."""
    rng = np.random.RandomState(seed)
    X, y = [], []
    for label in range(n_classes):
        radius = np.linspace(0.0, 1, n_per_class)
        theta = np.linspace(label * 4, (label + 1) * 4, n_per_class)
        theta += rng.randn(n_per_class) * 0.2
        X.append(np.c_[radius * np.sin(theta), radius * np.cos(theta)])
        y.append(np.full(n_per_class, label))
    return np.vstack(X), np.concatenate(y)


def datasets(quick):
    n_big = 20_000 if quick else 100_000
    return {
        "moons": make_moons(1000, noise=0.07, random_state=42),
        "circles": make_circles(1000, noise=0.03, random_state=42),
        "blobs (4 classes)": make_blobs(
            1000, n_features=2, centers=4, cluster_std=1.5, random_state=42
        ),
        "spirals (3 classes)": spirals(),
        "digits": load_digits(return_X_y=True),
        "breast cancer": load_breast_cancer(return_X_y=True),
        f"synthetic {n_big:,} x 50, 5 classes": make_classification(
            n_big, 50, n_informative=20, n_classes=5, random_state=42
        ),
    }


class SkorchMLP(torch.nn.Module):
    """The same network as the two others: one hidden ReLU layer of 100,
    initialized like MLPClassifier (Glorot uniform, biases too)."""

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(n_features, 100),
            torch.nn.ReLU(),
            torch.nn.Linear(100, n_classes),
        )
        with torch.no_grad():
            for layer in (self.layers[0], self.layers[2]):
                bound = (6.0 / (layer.in_features + layer.out_features)) ** 0.5
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)

    def forward(self, X):
        return self.layers(X)


ALPHA, BATCH_SIZE = 1e-4, 200  # MLPClassifier's default L2 penalty; the batch


def same_config(library, n_features, n_classes, epochs):
    """One hidden layer of 100, Adam 1e-3, batch 200, exactly ``epochs`` epochs,
    shuffled batches, L2 penalty ``alpha=1e-4`` on the weights."""
    fixed = dict(
        hidden_layer_sizes=(100,),
        solver="adam",
        learning_rate_init=1e-3,
        alpha=ALPHA,
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        early_stopping=False,
        shuffle=True,
        random_state=0,
    )
    if library == "skorchlite":
        return TorchMLPClassifier(**fixed)
    if library == "sklearn":
        return MLPClassifier(**fixed)
    # MLPClassifier's penalty is 0.5 * alpha * ||W||^2 / batch rows, whose
    # gradient alpha / batch rows * W is Adam's (coupled) weight decay.
    return NeuralNetClassifier(
        SkorchMLP,
        module__n_features=n_features,
        module__n_classes=n_classes,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        optimizer__param_groups=[("*.weight", {"weight_decay": ALPHA / BATCH_SIZE})],
        lr=1e-3,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        iterator_train__shuffle=True,
        train_split=None,
        verbose=0,
    )


SAME_CONFIG_NOTE = (
    "One hidden layer of 100 (ReLU), Glorot-uniform initialization, Adam 1e-3, "
    "batch 200, shuffled, L2 penalty alpha=1e-4 on the weights, no early "
    "stopping; standardized float32 X. What still differs for skorch: the "
    "penalty is Adam's weight decay alpha/200, where the two others divide by "
    "the rows of each batch (a last, shorter batch is penalized more there); "
    "binary targets get two logits and cross-entropy instead of one logit and "
    "log-loss; skorch is seeded with torch.manual_seed(0) before each fit, the "
    "others by random_state=0."
)


def default_config(library, n_features, n_classes):
    if library == "skorchlite":
        return TorchMLPClassifier(random_state=0)
    if library == "sklearn":
        return MLPClassifier(random_state=0)
    return NeuralNetClassifier(
        SkorchMLP,
        module__n_features=n_features,
        module__n_classes=n_classes,
        criterion=torch.nn.CrossEntropyLoss,
        verbose=0,
    )


def libraries():
    return ["skorchlite", "sklearn"] + (["skorch"] if NeuralNetClassifier else [])


def seed_library(library):
    """skorch has no random_state: its initialization and batch order come
    from torch's global generator."""
    if library == "skorch":
        torch.manual_seed(0)


def timed_fit(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def warm_up(X, y):
    """One untimed fit per library, so that no timed fit pays a first call's
    lazy imports and allocations (the cold fit is measured apart)."""
    for lib in libraries():
        same_config(lib, X.shape[1], len(np.unique(y)), 2).fit(X, y)


COLD_FIT_SCRIPT = """
import sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {benchmarks!r})
import run  # imports torch, scikit-learn, skorch and skorchlite
X, _, y, _ = run.prepare(*run.make_moons(1000, noise=0.07, random_state=42))
seconds = []
for _ in range(2):
    estimator = run.same_config({lib!r}, X.shape[1], 2, {epochs})
    run.seed_library({lib!r})
    seconds.append(run.timed_fit(estimator, X, y))
print(*seconds)
"""


def bench_cold_fit(repeats, epochs):
    """First and second fit of each library in a fresh process (imports done)."""
    results = {}
    for lib in libraries():
        runs = []
        for _ in range(repeats):
            script = COLD_FIT_SCRIPT.format(
                benchmarks=str(HERE), lib=lib, epochs=epochs
            )
            output = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append([float(v) for v in output.stdout.split()[-2:]])
        results[lib] = {
            "first": statistics.median(first for first, _ in runs),
            "second": statistics.median(second for _, second in runs),
        }
    return results


def prepare(X, y):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=42, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    # float32 for skorch's sake; the two others get the same arrays.
    X_train = scaler.transform(X_train).astype(np.float32)
    X_test = scaler.transform(X_test).astype(np.float32)
    return X_train, X_test, y_train.astype(np.int64), y_test.astype(np.int64)


def bench_fits(data, make, repeats):
    """Median fit seconds and test accuracy per library, ratios per run."""
    rows = []
    for name, (X, y) in data.items():
        X_train, X_test, y_train, y_test = prepare(X, y)
        n_classes = len(np.unique(y))
        seconds = {lib: [] for lib in libraries()}
        accuracy = {}
        for _ in range(repeats):
            for lib in libraries():
                estimator = make(lib, X_train.shape, n_classes)
                seed_library(lib)
                seconds[lib].append(timed_fit(estimator, X_train, y_train))
                accuracy[lib] = float(np.mean(estimator.predict(X_test) == y_test))
        rows.append(
            {
                "dataset": name,
                "rows": len(X_train),
                "seconds": {lib: statistics.median(s) for lib, s in seconds.items()},
                "accuracy": accuracy,
                "ratio": {
                    lib: statistics.median(
                        a / b for a, b in zip(seconds["skorchlite"], s, strict=True)
                    )
                    for lib, s in seconds.items()
                    if lib != "skorchlite"
                },
            }
        )
        print(f"  {name}: {json.dumps(rows[-1]['seconds'])}", file=sys.stderr)
    return rows


def bench_predict(repeats, n_rows):
    """Single-row latency, throughput on ``n_rows`` rows, and peak memory."""
    X, y = make_classification(5000, 50, n_informative=20, n_classes=5, random_state=0)
    X = X.astype(np.float32)
    fitted = {
        "skorchlite": same_config("skorchlite", 50, 5, 5).fit(X, y),
        "sklearn": same_config("sklearn", 50, 5, 5).fit(X, y),
    }
    big = np.random.default_rng(0).standard_normal((n_rows, 50), dtype=np.float32)
    results = {}
    for lib, estimator in fitted.items():
        row = X[:1]
        for _ in range(50):
            estimator.predict(row)
        latencies = []
        for _ in range(repeats * 200):
            start = time.perf_counter()
            estimator.predict(row)
            latencies.append(time.perf_counter() - start)
        throughput = [timed_predict(estimator, big) for _ in range(repeats)]
        results[lib] = {
            "latency_us": statistics.median(latencies) * 1e6,
            "rows_per_s": n_rows / statistics.median(throughput),
            "peak_mb": predict_peak_memory(lib, n_rows),
        }
    return results


def timed_predict(estimator, X):
    start = time.perf_counter()
    estimator.predict(X)
    return time.perf_counter() - start


PEAK_MEMORY_SCRIPT = """
import sys, numpy as np, warnings
warnings.simplefilter("ignore")
from sklearn.datasets import make_classification
sys.path.insert(0, {benchmarks!r})
from run import same_config
X, y = make_classification(5000, 50, n_informative=20, n_classes=5, random_state=0)
est = same_config({lib!r}, 50, 5, 2).fit(X.astype(np.float32), y)
big = np.empty(({n_rows}, 50), dtype=np.float32)
rng = np.random.default_rng(0)
for start in range(0, {n_rows}, 10_000):  # no full-size temporary
    big[start : start + 10_000] = rng.standard_normal((10_000, 50), dtype=np.float32)[
        : {n_rows} - start
    ]
est.predict(big[:1000])
def peak_rss_kb():
    # VmHWM belongs to this program's own address space; ru_maxrss would
    # include the (larger) benchmark process this one was forked from.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = peak_rss_kb()
est.predict(big)
print((peak_rss_kb() - before) / 1024)
"""


def predict_peak_memory(lib, n_rows):
    """MB by which predict on ``n_rows`` raised the peak RSS of a fresh process."""
    script = PEAK_MEMORY_SCRIPT.format(benchmarks=str(HERE), lib=lib, n_rows=n_rows)
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return float(output.stdout.strip().splitlines()[-1])


def bench_grid_search(repeats):
    """GridSearchCV(n_jobs=2), 3 sizes x 3 learning rates x 5 folds, on moons."""
    X, y = make_moons(1000, noise=0.07, random_state=42)
    grid = {
        "mlp__hidden_layer_sizes": [(10,), (50,), (100,)],
        "mlp__learning_rate_init": [1e-3, 3e-3, 1e-2],
    }
    results = {}
    for lib, estimator in [
        ("skorchlite", TorchMLPClassifier(random_state=0)),
        ("sklearn", MLPClassifier(random_state=0)),
    ]:
        pipeline = Pipeline([("scale", StandardScaler()), ("mlp", estimator)])
        times, scores = [], []
        for _ in range(repeats):
            search = GridSearchCV(pipeline, grid, cv=5, n_jobs=2)
            times.append(timed_fit(search, X, y))
            scores.append(search.best_score_)
        results[lib] = {
            "seconds": statistics.median(times),
            "best_score": statistics.median(scores),
        }
    return results


BATCHED_GRID = {
    "hidden_layer_sizes": [(10,), (50,), (100,)],
    "learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
}


PRODUCT_SCRIPT = """
import statistics, sys, time, torch
torch.set_num_threads({threads})
a = torch.randn(200, 50, dtype=torch.float64)
b = torch.randn(50, 100, dtype=torch.float64)
for _ in range(200):
    a @ b
times = []
stop = time.perf_counter() + {seconds}
while time.perf_counter() < stop:
    start = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def bench_oversubscription(seconds):
    """Median time of one small product (200 x 50 by 50 x 100, float64, the
    first layer of a batch), alone or with a second process doing the same."""
    results = {}
    for processes, threads in [(1, 1), (1, 2), (2, 1), (2, 2)]:
        script = PRODUCT_SCRIPT.format(threads=threads, seconds=seconds)
        running = [
            subprocess.Popen(
                [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
            )
            for _ in range(processes)
        ]
        medians = [float(proc.communicate()[0]) for proc in running]
        results[processes, threads] = max(medians)
    return results


def bmm_gflops(shape, dtype, iterations, warmup=10, device="cpu"):
    """Median GFLOPS of torch.bmm on ``m`` stacked ``n x k`` by ``k x p``
    products, ``shape = (m, n, k, p)``, on ``device``."""
    m, n, k, p = shape
    a = torch.randn(m, n, k, dtype=dtype, device=device)
    b = torch.randn(m, k, p, dtype=dtype, device=device)

    def sync():  # a GPU runs the product after the call returns: wait for it
        if a.is_cuda:
            torch.cuda.synchronize(a.device)

    for _ in range(warmup):
        torch.bmm(a, b)
    sync()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        torch.bmm(a, b)
        sync()
        times.append(time.perf_counter() - start)
    return 2 * m * n * k * p / statistics.median(times) / 1e9


def bench_batched_products(repeats):
    """GFLOPS of stacked products of the digits search's shape: 60 models, a
    batch of 200 rows of 64 features, 100 hidden units."""
    return {
        str(dtype).removeprefix("torch."): bmm_gflops(
            (60, 200, 64, 100), dtype, repeats * 100, warmup=20
        )
        for dtype in (torch.float64, torch.float32)
    }


def digits_search_gflop():
    """Floating-point operations of the 60 models' products in the batched
    digits search: 6 x rows x weights per epoch (2 forward, 4 backward),
    without the zero padding of narrower models."""
    X, y = load_digits(return_X_y=True)
    search = BatchedGridSearchCV(
        TorchMLPClassifier(random_state=0),
        BATCHED_GRID,
        cv=5,
        scoring={"accuracy": "accuracy", "epochs": lambda est, X, y: est.n_iter_},
        refit=False,
    ).fit(X / 16.0, y)
    results = search.cv_results_
    n_features, n_classes = X.shape[1], len(np.unique(y))
    total = 0.0
    # cv=5 on a classifier: StratifiedKFold(5), as in the search.
    for k, (train, _) in enumerate(StratifiedKFold(5).split(X, y)):
        for params, epochs in zip(
            results["params"], results[f"split{k}_test_epochs"], strict=True
        ):
            (width,) = params["hidden_layer_sizes"]
            weights = n_features * width + width * n_classes
            total += 6 * len(train) * weights * epochs
    return total / 1e9, search.n_batched_fits_


COMPILE_SCRIPT = """
import statistics, time, torch
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)
).double()
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
X = torch.randn(200, 64, dtype=torch.float64)
y = torch.randint(0, 10, (200,))
loss_fn = torch.nn.CrossEntropyLoss()

def step():
    optimizer.zero_grad()
    loss = loss_fn(net(X), y)
    loss.backward()
    optimizer.step()
    return loss

def median_step(fn):
    times = []
    for _ in range(300):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

for _ in range(20):
    step()
eager = median_step(step)
compiled = torch.compile(step)
start = time.perf_counter()
compiled()
first = time.perf_counter() - start
print(first, eager, median_step(compiled))
"""


def bench_compile():
    """torch.compile of one training step (digits-sized MLP, Adam) in a fresh
    process with an empty compile cache: the first call, and the median step
    eager and compiled."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        output = subprocess.run(
            [sys.executable, "-c", COMPILE_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    first, eager, compiled = map(float, output.stdout.split()[-3:])
    return {
        "compile_s": first,
        "eager_step_us": eager * 1e6,
        "compiled_step_us": compiled * 1e6,
    }


def machine_facts_report(quick):
    seconds = 0.5 if quick else 3.0
    print("oversubscription", file=sys.stderr)
    products = bench_oversubscription(seconds)
    print("batched products", file=sys.stderr)
    gflops = bench_batched_products(1 if quick else 3)
    print("digits search FLOPs", file=sys.stderr)
    gflop, n_batched = digits_search_gflop()
    print("cold first fit", file=sys.stderr)
    cold = bench_cold_fit(1 if quick else 3, epochs=10)
    lines = [
        f"Command: `{command_line()}`",
        "",
        *cold_fit_table(cold, epochs=10, repeats=1 if quick else 3),
        "",
        "### Small products with and without a second process",
        "",
        "Median time of one 200 x 50 by 50 x 100 float64 product (the first layer "
        f"of a batch), measured for {seconds:g} s in each process; with two "
        "processes, the slower one.",
        "",
        "| processes | torch threads each | product µs |",
        "|---|---|---|",
    ]
    for (processes, threads), median in products.items():
        lines.append(f"| {processes} | {threads} | {median * 1e6:.1f} |")
    lines += [
        "",
        "### Batched products",
        "",
        "torch.bmm of 60 stacked 200 x 64 by 64 x 100 products (the digits "
        f"search's first layer), {torch.get_num_threads()} torch threads.",
        "",
        "| dtype | GFLOPS |",
        "|---|---|",
    ]
    lines += [f"| {dtype} | {value:.1f} |" for dtype, value in gflops.items()]
    lines += [
        "",
        "### Arithmetic of the batched digits search",
        "",
        "BatchedGridSearchCV(TorchMLPClassifier(random_state=0)) on digits / 16, 3 "
        "hidden sizes x 4 learning rates x 5 folds: 6 x training rows x weights "
        "per epoch, summed over each model's epochs (padding not counted).",
        "",
        "| batched fits | GFLOP | seconds at the float64 GFLOPS above |",
        "|---|---|---|",
        f"| {n_batched} | {gflop:.0f} | {gflop / gflops['float64']:.1f} |",
    ]
    if not quick:
        print("torch.compile", file=sys.stderr)
        compiled = bench_compile()
        lines += [
            "",
            "### torch.compile of a training step",
            "",
            "One Adam step of a 64 -> 100 -> 10 float64 MLP on 200 rows, in a fresh "
            "process with an empty compile cache.",
            "",
            "| first call (compile) s | eager step µs | compiled step µs |",
            "|---|---|---|",
            f"| {compiled['compile_s']:.1f} | {compiled['eager_step_us']:.0f} | "
            f"{compiled['compiled_step_us']:.0f} |",
        ]
    return lines


def command_line():
    """This run's command, as typed from the repository root."""
    return " ".join(["python benchmarks/run.py", *map(shlex.quote, sys.argv[1:])])


def machine():
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.platform()}, {cpu}, {os.cpu_count()} logical cores; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, "
        f"skorch {'not installed' if NeuralNetClassifier is None else 'installed'}"
        + (
            ""
            if LOAD_AT_START is None
            else f"; load average {LOAD_AT_START:.1f} at start"
        )
    )


def fmt_row(row, libs):
    cells = [row["dataset"], str(row["rows"])]
    cells += [f"{row['seconds'][lib]:.3f}" for lib in libs]
    cells += [f"{row['ratio'][lib]:.2f}" for lib in libs if lib != "skorchlite"]
    cells += [f"{row['accuracy'][lib]:.3f}" for lib in libs]
    return "| " + " | ".join(cells) + " |"


def fit_table(rows, title, epochs_note):
    libs = libraries()
    others = [lib for lib in libs if lib != "skorchlite"]
    header = (
        ["dataset", "train rows"]
        + [f"{lib} fit s" for lib in libs]
        + [f"ours/{lib}" for lib in others]
        + [f"{lib} acc" for lib in libs]
    )
    lines = [f"### {title}", "", epochs_note, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [fmt_row(row, libs) for row in rows]
    return lines


def cold_fit_table(cold, epochs, repeats):
    lines = [
        "### First fit in a fresh process",
        "",
        f"The same configuration as in the comparison (results.md), moons, {epochs} "
        "epochs, in a new Python process that has imported the libraries: its "
        f"first fit, then a second one; medians of {repeats} process(es).",
        "",
        "| library | first fit s | second fit s |",
        "|---|---|---|",
    ]
    for lib, r in cold.items():
        lines.append(f"| {lib} | {r['first']:.3f} | {r['second']:.3f} |")
    return lines


def report(args, cold, same, defaults, predict, search):
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command_line()}` ({args.repeats} repeats, medians; ratios "
        "are medians of per-run ratios; each library warmed up by one untimed fit "
        "before the timed ones).",
        "",
        f"Machine: {machine()}.",
        "",
        *cold_fit_table(cold, args.cold_epochs, args.repeats),
        "",
    ]
    lines += fit_table(
        same,
        "Same configuration",
        f"{SAME_CONFIG_NOTE} {args.epochs} epochs on the small sets and "
        f"{args.big_epochs} on the synthetic one. Seconds per epoch = fit seconds "
        "/ epochs.",
    )
    lines += [""]
    lines += fit_table(
        defaults,
        "Each library's defaults",
        "skorch's defaults: SGD lr 0.01, 10 epochs, batches in a fixed order, no "
        "penalty (the module is the same MLP); seeded with torch.manual_seed(0).",
    )
    lines += ["", "### Predict", ""]
    lines += [
        "| library | single-row latency (µs) | rows/s on "
        f"{args.predict_rows:,} rows | peak memory of that predict (MB) |",
        "|---|---|---|---|",
    ]
    for lib, r in predict.items():
        lines.append(
            f"| {lib} | {r['latency_us']:.0f} | {r['rows_per_s']:,.0f} | "
            f"{r['peak_mb']:.0f} |"
        )
    lines += ["", "### GridSearchCV(n_jobs=2) on moons, 3 x 3 grid, 5 folds", ""]
    lines += ["| library | wall s | best score |", "|---|---|---|"]
    for lib, r in search.items():
        lines.append(f"| {lib} | {r['seconds']:.2f} | {r['best_score']:.3f} |")
    return "\n".join(lines) + "\n"


def times_json(cold, same, defaults, predict, search, n_predict_rows):
    """``{configuration: {library: seconds}}``, ours named "ours": ``--json``."""

    def side(lib):
        return "ours" if lib == "skorchlite" else lib

    times = {}
    for which in ("first", "second"):
        times[f"{which} fit in a fresh process"] = {
            side(lib): r[which] for lib, r in cold.items()
        }
    for title, rows in [("same configuration", same), ("defaults", defaults)]:
        for row in rows:
            times[f"{title}, {row['dataset']}"] = {
                side(lib): seconds for lib, seconds in row["seconds"].items()
            }
    times["predict, one row"] = {
        side(lib): r["latency_us"] / 1e6 for lib, r in predict.items()
    }
    times[f"predict, {n_predict_rows:,} rows"] = {
        side(lib): n_predict_rows / r["rows_per_s"] for lib, r in predict.items()
    }
    times["GridSearchCV(n_jobs=2), moons"] = {
        side(lib): r["seconds"] for lib, r in search.items()
    }
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, faster run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--big-epochs", type=int, default=5)
    parser.add_argument("--cold-epochs", type=int, default=10)
    parser.add_argument("--predict-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: benchmarks/results.md or "
        "results_machine.md; with --quick, a file in a new temporary directory)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="also write each configuration's seconds (ours and the other "
        "libraries') to this JSON file",
    )
    parser.add_argument(
        "--machine-facts",
        action="store_true",
        help="only the measurements the docs quote about this machine (thread "
        "oversubscription, batched product throughput, torch.compile); writes "
        "benchmarks/results_machine.md",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="only render the documentation's tables from the results files",
    )
    args = parser.parse_args()
    if args.docs:
        render_docs.main()
        return
    name = "results_machine.md" if args.machine_facts else "results.md"
    if args.output is None:
        folder = (
            Path(tempfile.mkdtemp(prefix="skorchlite-bench-")) if args.quick else HERE
        )
        args.output = folder / name
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.machine_facts and args.json:
        parser.error("--json writes the comparison's times, not the machine facts")
    if args.machine_facts:
        lines = machine_facts_report(args.quick)
        text = "\n".join([f"Machine: {machine()}.", "", *lines]) + "\n"
        finish(args, text)
        return
    if args.quick:
        args.repeats, args.epochs, args.big_epochs = 1, 10, 2
        args.predict_rows = 100_000

    data = datasets(args.quick)
    print("cold first fit", file=sys.stderr)
    cold = bench_cold_fit(args.repeats, args.cold_epochs)
    first_X, first_y = next(iter(data.values()))
    warm_up(*prepare(first_X, first_y)[::2])
    print("same configuration", file=sys.stderr)
    same = bench_fits(
        data,
        lambda lib, shape, k: same_config(
            lib, shape[1], k, args.big_epochs if shape[0] > 10_000 else args.epochs
        ),
        args.repeats,
    )
    print("defaults", file=sys.stderr)
    tutorial = {k: v for k, v in data.items() if not k.startswith("synthetic")}
    defaults = bench_fits(
        tutorial,
        lambda lib, shape, k: default_config(lib, shape[1], k),
        args.repeats,
    )
    print("predict", file=sys.stderr)
    predict = bench_predict(args.repeats, args.predict_rows)
    print("grid search", file=sys.stderr)
    search = bench_grid_search(args.repeats)
    text = report(args, cold, same, defaults, predict, search)
    finish(args, text)
    if args.json:
        times = times_json(cold, same, defaults, predict, search, args.predict_rows)
        document = {"command": command_line(), "times": times}
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    print(
        f"peak RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        file=sys.stderr,
    )


def finish(args, text):
    """Print and write the report; re-render the docs' tables from the results
    files when it went into benchmarks/."""
    print(text)
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    if args.output.resolve().parent == HERE.resolve() and not args.quick:
        for path in render_docs.main():
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
