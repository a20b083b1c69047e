"""TorchClassifier on a module of your own, against skorch's NeuralNetClassifier.

Run ``python benchmarks/own_module.py`` (about 2 minutes on a quiet 2-core
machine; ``--quick``: the tutorial data only, 2 x 2 grids, 2 turns, written
to a temporary directory, under a minute; ``--json PATH``: each
configuration's median seconds as JSON too; ``--repeats N``,
``--search-repeats N``: turns). Needs skorch (the ``bench`` extra).

The same module class and configuration go to both libraries: skorch's
tutorial module (``ClassifierModule``, 20 -> 10 -> 10 -> 2 with dropout 0.5,
returning logits here) on its data (``make_classification(1000, 20)``), the
same module on digits, and a small CNN on digits; Adam, the same learning
rate, batch size (128, skorch's default) and number of epochs, shuffled
batches, no validation split, no L2 penalty. Both start from the same
initial weights: the modules draw them from a ``torch.Generator`` seeded with
``init_seed``, whoever builds them (except the output layer of a binary
target: one logit and ``BCEWithLogitsLoss`` here, two logits and
``CrossEntropyLoss`` in skorch's). Batch order and dropout masks are seeded
(``random_state=0`` here, ``torch.manual_seed(0)`` before each of skorch's
fits) but come from different generators. Ours picks one torch thread for
these modules; skorch runs inside ``torch.set_num_threads(1)`` to match, and,
on the first data set, also on torch's default threads (what a skorch user
gets; on a busy shared machine those fits are the slowest and least steady).

Sections of the report (``benchmarks/results_own_module.md``; the docs'
fragment ``own_module.inc`` is rendered from its first three):

- single fits: wall time of ours and skorch's, in turns with the plain
  loops below (each turn's first fit one further along the list, ours before
  skorch's in half the turns), after one untimed fit of each; best, median
  and spread (slowest / fastest turn), the median of each turn's ratio, test
  accuracies, the goal (ours <= 0.2x skorch's time);
- time per step against the floor: a hand-written PyTorch loop on the same
  module (``torch.optim.Adam``, and ``Adam(fused=True)``, the kernel ours
  calls; the same batch size, ``torch.randperm`` batches, ours' loss and
  thread count), and, as a diagnostic only, ours with ``OwnRandomness`` (the
  ``TorchFunctionMode`` that routes the module's random draws to the fit's
  generator) replaced by a ``nullcontext``: what the interception costs;
- grid searches: ``BatchedGridSearchCV`` against ``GridSearchCV`` on skorch's
  net (``n_jobs=1``), ``module__num_units`` x learning rate x 3 folds, with
  and without dropout, with how many fits our search batched
  (``n_batched_fits_``) and why the others fell back (what it prints under
  ``verbose=1``); goal: 10x;
- diagnostics: our batched search split into its phases (by wrapping its
  functions, at torch's default threads and at one), cProfile of one of our
  single fits and of the batched search (top functions by own time, named
  totals, own time by area), and one forward of the tutorial module with and
  without ``OwnRandomness``.

Nothing here changes the library: the diagnostics patch it only inside
their own ``with`` blocks.
"""

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import re
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
from run import HERE, machine
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from torch import nn

import skorchlite._module
from skorchlite import BatchedGridSearchCV, TorchClassifier
from skorchlite._device import cpu_threads_for, torch_threads
from skorchlite._engine.randomness import OwnRandomness

try:
    from skorch import NeuralNetClassifier
except ImportError:  # pip install ".[bench]"
    NeuralNetClassifier = None

SINGLE_FIT_GOAL, SEARCH_GOAL = 0.2, 10.0
BATCH_SIZE = 128  # skorch's default


def draw_initial_weights(module, init_seed):
    """Redraw every parameter as torch's default initialization of ``Linear``
    and ``Conv2d`` does (uniform in +-1/sqrt(fan_in)), from a generator
    seeded with ``init_seed``: the same weights whoever builds the module."""
    if init_seed is None:
        return
    generator = torch.Generator().manual_seed(init_seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear | nn.Conv2d):
                bound = 1.0 / np.sqrt(layer.weight[0].numel())
                for p in (layer.weight, layer.bias):
                    p.uniform_(-bound, bound, generator=generator)


class ClassifierModule(nn.Module):
    """skorch's tutorial module (``ClassifierModule``), returning logits."""

    def __init__(
        self, n_features_in=20, n_outputs=2, num_units=10, dropout=0.5, init_seed=0
    ):
        super().__init__()
        self.dense0 = nn.Linear(n_features_in, num_units)
        self.nonlin = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.dense1 = nn.Linear(num_units, num_units)
        self.output = nn.Linear(num_units, n_outputs)
        draw_initial_weights(self, init_seed)

    def forward(self, X):
        X = self.nonlin(self.dense0(X))
        X = self.dropout(X)
        X = self.nonlin(self.dense1(X))
        return self.output(X)


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and max-pooling on the 8 x 8 digits, then a
    linear layer to the logits."""

    def __init__(self, n_outputs=10, channels=8, init_seed=0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.output = nn.Linear(2 * channels * 2 * 2, n_outputs)
        draw_initial_weights(self, init_seed)

    def forward(self, X):
        X = self.features(X.reshape(-1, 1, 8, 8))
        return self.output(X.flatten(1))


def tutorial_data():
    X, y = make_classification(1000, 20, n_informative=10, random_state=0)
    return X.astype(np.float32), y.astype(np.int64)


def digits_data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def cases(quick):
    """(name, module, module parameters, epochs, lr, data) of the single fits."""
    rows = [
        (
            "tutorial make_classification(1000, 20)",
            ClassifierModule,
            {"num_units": 10, "dropout": 0.5},
            20,
            0.01,
            tutorial_data(),
        )
    ]
    if not quick:
        rows += [
            (
                "digits (8 x 8, 10 classes)",
                ClassifierModule,
                {"num_units": 100, "dropout": 0.5},
                20,
                0.003,
                digits_data(),
            ),
            (
                "digits (8 x 8, 10 classes)",
                DigitsCNN,
                {"channels": 8},
                10,
                0.003,
                digits_data(),
            ),
        ]
    return rows


def describe(module, params):
    listed = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{module.__name__}({listed})"


def ours(module, params, epochs, lr):
    return TorchClassifier(
        module,
        solver="adam",
        learning_rate_init=lr,
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,  # exactly ``epochs`` epochs
        alpha=0.0,  # skorch adds no penalty
        shuffle=True,
        random_state=0,
        dtype="float32",
        device="cpu",
        **{f"module__{k}": v for k, v in params.items()},
    )


def skorch_net(module, params, epochs, lr, n_features, n_classes):
    sizes = {"n_outputs": n_classes}
    if module is ClassifierModule:
        sizes["n_features_in"] = n_features
    return NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
        device="cpu",
        **{f"module__{k}": v for k, v in {**sizes, **params}.items()},
    )


def timed(fit):
    start = time.perf_counter()
    fit()
    return time.perf_counter() - start


def in_turns(runners, repeats):
    """``{name: [seconds]}``: each turn runs every runner once, the turn's
    first one further along the list each time (with two, they alternate)."""
    names = list(runners)
    seconds = {name: [] for name in names}
    for turn in range(repeats):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(runners[name]())
    return seconds


def summary(seconds):
    return {
        "best": min(seconds),
        "median": statistics.median(seconds),
        "spread": max(seconds) / min(seconds),
        "all": list(seconds),
    }


def turn_ratio(a, b):
    """The median of each turn's ratio ``a / b``."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------ fits


class NoInterception(contextlib.nullcontext):
    """What ``OwnRandomness(seed)`` becomes in the diagnostic fits: nothing
    (the module's draws then come from torch's global generator)."""

    def __init__(self, seed):
        super().__init__()


@contextlib.contextmanager
def without_own_randomness():
    """Diagnostic only: ours with ``OwnRandomness`` a ``nullcontext``, around
    the module's construction and each forward."""
    saved = skorchlite._module.OwnRandomness
    skorchlite._module.OwnRandomness = NoInterception
    try:
        yield
    finally:
        skorchlite._module.OwnRandomness = saved


def plain_loop(module, params, epochs, lr, X, y, n_outputs, fused=False):
    """The floor: a hand-written PyTorch loop on the same module, with the
    loss ours uses (one logit and BCEWithLogitsLoss for binary targets) and
    the thread count ours picks; ``fused``: ``torch.optim.Adam(fused=True)``,
    the kernel ours calls."""
    torch.manual_seed(0)
    net = module(**sizes_of(module, X.shape[1], n_outputs), **params)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, fused=fused or None)
    X = torch.from_numpy(X)
    if n_outputs == 1:
        y, loss_fn = torch.from_numpy(y).float()[:, None], nn.BCEWithLogitsLoss()
    else:
        y, loss_fn = torch.from_numpy(y), nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    net.train()
    with torch_threads(cpu_threads_for(net, BATCH_SIZE, backward=True)):
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), BATCH_SIZE):
                rows = order[start : start + BATCH_SIZE]
                optimizer.zero_grad()
                loss_fn(net(X[rows]), y[rows]).backward()
                optimizer.step()
    return net


def sizes_of(module, n_features, n_outputs):
    """The sizes skorch's net and the plain loop pass (ours finds them)."""
    sizes = {"n_outputs": n_outputs}
    if module is ClassifierModule:
        sizes["n_features_in"] = n_features
    return sizes


#: The fits of each case, in the order of the rotation: over 6 turns, ours
#: comes before skorch's in 3 and after it in 3. ``--quick`` leaves out
#: skorch at torch's default threads (on a busy machine, its slowest fits).
FIT_SIDES = (
    "ours",
    "plain loop",
    "skorch, default threads",
    "skorch",
    "plain loop, fused Adam",
    "ours without OwnRandomness",
)


def case_fits(config, X, y, n_classes, fitted):
    """``{side: fit}`` of one case (``config``: module, its parameters,
    epochs, lr) on ``X, y``; ours and skorch's fitted models go to ``fitted``."""
    n_outputs = 1 if n_classes == 2 else n_classes

    def fit_ours():
        fitted["ours"] = ours(*config).fit(X, y)

    def fit_skorch():
        with torch_threads(1):  # the thread count ours picks for these modules
            torch.manual_seed(0)
            fitted["skorch"] = skorch_net(*config, X.shape[1], n_classes).fit(X, y)

    def fit_skorch_default_threads():
        torch.manual_seed(0)
        skorch_net(*config, X.shape[1], n_classes).fit(X, y)

    def fit_unrouted():
        with without_own_randomness():
            ours(*config).fit(X, y)

    def fit_plain(fused=False):
        plain_loop(*config, X, y, n_outputs, fused)

    return {
        "ours": fit_ours,
        "plain loop": fit_plain,
        "skorch": fit_skorch,
        "skorch, default threads": fit_skorch_default_threads,
        "plain loop, fused Adam": partial(fit_plain, fused=True),
        "ours without OwnRandomness": fit_unrouted,
    }


WARM_UP = (
    "ours",
    "skorch",
    "plain loop",
    "plain loop, fused Adam",
    "skorch, default threads",
    "ours without OwnRandomness",
)


def bench_fits(quick, repeats):
    """Each case's fits, in rotation: ours, skorch's, the plain loops and
    ours without OwnRandomness; one row per case."""
    rows = []
    for number, (name, module, params, epochs, lr, (X, y)) in enumerate(cases(quick)):
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.2, random_state=0, stratify=y
        )
        n_classes = len(np.unique(y))
        config = (module, params, epochs, lr)
        fitted = {}
        fits = case_fits(config, X_train, y_train, n_classes, fitted)
        # skorch at torch's default threads: the first case only (on a busy
        # machine its fits take seconds each), and not with --quick.
        default_threads = number == 0 and not quick
        sides = [s for s in FIT_SIDES if default_threads or not s.endswith("threads")]
        runners = {side: partial(timed, fits[side]) for side in sides}
        # One untimed fit of each, ours and skorch's first; in the first case,
        # the first fits in this process.
        first = {side: runners[side]() for side in sorted(runners, key=WARM_UP.index)}
        seconds = in_turns(runners, repeats)
        accuracy = {
            side: float(np.mean(est.predict(X_test) == y_test))
            for side, est in fitted.items()
        }
        print(f"  {name}, {module.__name__}: {json.dumps(seconds)}", file=sys.stderr)
        rows.append(
            {
                "data": name,
                "module": describe(module, params),
                "rows": len(X_train),
                "epochs": epochs,
                "steps": epochs * -(-len(X_train) // BATCH_SIZE),
                "lr": lr,
                "first": first if number == 0 else None,
                "seconds": {side: summary(s) for side, s in seconds.items()},
                "ratio": turn_ratio(seconds["ours"], seconds["skorch"]),
                "ratio default threads": (
                    turn_ratio(seconds["ours"], seconds["skorch, default threads"])
                    if "skorch, default threads" in seconds
                    else None
                ),
                "accuracy": accuracy,
                "ratios": {
                    "ours / plain": turn_ratio(seconds["ours"], seconds["plain loop"]),
                    "ours / fused": turn_ratio(
                        seconds["ours"], seconds["plain loop, fused Adam"]
                    ),
                    "plain / skorch": turn_ratio(
                        seconds["plain loop"], seconds["skorch"]
                    ),
                    "fused / skorch": turn_ratio(
                        seconds["plain loop, fused Adam"], seconds["skorch"]
                    ),
                    "without / with": turn_ratio(
                        seconds["ours without OwnRandomness"], seconds["ours"]
                    ),
                },
            }
        )
    return rows


# -------------------------------------------------------------- searches


def grids(quick):
    """(label, module parameters held fixed, grid of ours, grid of skorch's)."""
    units = [10, 20] if quick else [10, 20, 50]
    rates = [0.003, 0.01]
    ours_grid = {"module__num_units": units, "learning_rate_init": rates}
    skorch_grid = {"module__num_units": units, "lr": rates}
    return [
        (f"dropout {d}", {"dropout": d}, ours_grid, skorch_grid) for d in (0.5, 0.0)
    ]


def batching_report(printed):
    """What our search printed under ``verbose=1``: (batched, total,
    [(fits, reason)]), from its summary lines."""
    batched = total = None
    reasons = []
    for line in printed.splitlines():
        found = re.match(r"Trained (\d+) fits in \d+ batched group\(s\); (\d+)", line)
        if found:
            batched = (batched or 0) + int(found.group(1))
            total = (total or 0) + int(found.group(1)) + int(found.group(2))
        found = re.match(r"Ordinary fits \((\d+)\) of candidates [\d, ]+: (.+)", line)
        if found:
            reasons.append((int(found.group(1)), found.group(2)))
    return batched, total, reasons


def bench_searches(quick, repeats, epochs=20):
    X, y = tutorial_data()
    rows = []
    for label, fixed, ours_grid, skorch_grid in grids(quick):
        found = {}

        def run_ours(found=found, fixed=fixed, grid=ours_grid):
            estimator = ours(ClassifierModule, fixed, epochs, 0.01)
            search = BatchedGridSearchCV(estimator, grid, cv=3, refit=False, verbose=1)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                seconds = timed(lambda: search.fit(X, y))
            found["ours"], found["printed"] = search, printed.getvalue()
            return seconds

        def run_skorch(found=found, fixed=fixed, grid=skorch_grid):
            net = skorch_net(ClassifierModule, fixed, epochs, 0.01, X.shape[1], 2)
            search = GridSearchCV(net, grid, cv=3, refit=False, n_jobs=1)
            torch.manual_seed(0)
            with torch_threads(1):
                seconds = timed(lambda: search.fit(X, y))
            found["skorch"] = search
            return seconds

        times = in_turns({"ours": run_ours, "skorch": run_skorch}, repeats)
        batched, total, reasons = batching_report(found["printed"])
        mine = found["ours"]
        row = {
            "grid": label,
            "candidates": len(mine.cv_results_["params"]),
            "seconds": {side: summary(s) for side, s in times.items()},
            "speed_up": turn_ratio(times["skorch"], times["ours"]),
            "best_score": {
                side: float(found[side].best_score_) for side in ("ours", "skorch")
            },
            "best_params": {
                side: found[side].best_params_ for side in ("ours", "skorch")
            },
            # Whatever the search exposes: its attribute, else what it printed.
            "batched": getattr(mine, "n_batched_fits_", batched),
            "fits": total or 3 * len(mine.cv_results_["params"]),
            "fallback": reasons,
        }
        print(f"  search {label}: {json.dumps(times)}", file=sys.stderr)
        rows.append(row)
    return rows


# The batched search's phases, timed in the diagnostic below where the
# search still has them: (module, class or None, function, label).
SEARCH_PHASES = (
    (None, "_prepare_all", "prepare"),
    (None, "train_groups", "batched training"),
    (None, "_score_job", "scoring"),
)


@contextlib.contextmanager
def phase_timers():
    """Diagnostic only: the seconds spent in each phase of our search that
    exists under its name (``{label: seconds}``, filled while inside)."""
    import skorchlite.model_selection as search_module

    totals, saved = {}, []
    for owner_name, function, label in SEARCH_PHASES:
        owner = search_module
        if owner_name is not None:
            owner = getattr(search_module, owner_name, None)
        original = getattr(owner, function, None)
        if original is None:
            continue

        def timed_call(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] = totals.get(_label, 0.0) + time.perf_counter() - start

        saved.append((owner, function, original))
        setattr(owner, function, timed_call)
    try:
        yield totals
    finally:
        for owner, function, original in saved:
            setattr(owner, function, original)


def search_phases(quick, repeats, epochs=20):
    """Our batched search (dropout 0) split into its phases, at torch's
    default threads and at ``torch.set_num_threads(1)``, in turns."""
    X, y = tutorial_data()
    _, fixed, grid, _ = grids(quick)[-1]
    settings = {
        f"torch's default ({torch.get_num_threads()})": contextlib.nullcontext,
        "1 (torch.set_num_threads(1))": partial(torch_threads, 1),
    }
    found = {name: [] for name in settings}

    def run(name):
        estimator = ours(ClassifierModule, fixed, epochs, 0.01)
        search = BatchedGridSearchCV(estimator, grid, cv=3, refit=False)
        with settings[name](), phase_timers() as totals:
            seconds = timed(lambda: search.fit(X, y))
        found[name].append({"total": seconds, **totals})
        return seconds

    in_turns({name: partial(run, name) for name in settings}, repeats)
    return {
        name: {
            phase: statistics.median(turn.get(phase, float("nan")) for turn in turns)
            for phase in turns[0]
        }
        for name, turns in found.items()
    }


# ------------------------------------------------------------- profile


def short_name(key):
    """A cProfile entry as ``package/file.py:line(function)``."""
    path, line, function = key
    if path == "~":
        return function
    for marker in ("skorchlite/", "torch/", "sklearn/", "benchmarks/"):
        if marker in path:
            path = marker + path.split(marker, 1)[1]
            break
    else:
        path = Path(path).name
    return f"{path}:{line}({function})"


NAMED_TOTALS = {
    "ModuleStack.gradients (forward, loss, backward)": ("stack.py", "gradients"),
    "the module's forward (under OwnRandomness)": ("own_module.py", "forward"),
    "OwnRandomness.__torch_function__": ("randomness.py", "__torch_function__"),
    "autograd backward (run_backward)": ("~", "run_backward"),
    "Adam update (the solver's fused kernel)": ("solvers.py", "_kernel"),
    "batches (data.py)": ("data.py", "batches"),
}


def forward_costs(calls=300, repeats=5):
    """``{dropout: (µs plain, µs under OwnRandomness)}``: one training-mode
    forward of the tutorial module on a batch of 128 rows, the best over
    ``repeats`` of the median of ``calls`` calls (alternating the two)."""
    X = torch.from_numpy(tutorial_data()[0][:BATCH_SIZE])
    costs = {}
    for dropout in (0.5, 0.0):
        net = ClassifierModule(20, 1, num_units=10, dropout=dropout).train()
        mode = OwnRandomness(0)

        def routed(net=net, mode=mode):
            with mode:
                net(X)

        best = {"plain": float("inf"), "routed": float("inf")}
        with torch.enable_grad(), torch_threads(1):
            for _ in range(repeats):
                for name, call in (
                    ("plain", lambda net=net: net(X)),
                    ("routed", routed),
                ):
                    call()
                    seconds = []
                    for _ in range(calls):
                        start = time.perf_counter()
                        call()
                        seconds.append(time.perf_counter() - start)
                    best[name] = min(best[name], statistics.median(seconds))
        costs[dropout] = (best["plain"] * 1e6, best["routed"] * 1e6)
    return costs


#: Where a profile entry's own time goes, by its file: the first match.
AREAS = (
    ("~", "C++ calls (torch kernels, autograd engine, builtins)"),
    ("skorchlite/_engine/randomness", "OwnRandomness (Python)"),
    ("skorchlite/", "skorchlite, other Python"),
    ("torch/_functorch", "torch.func (Python)"),
    ("torch/utils/_pytree", "torch pytree (Python)"),
    ("torch/nn/", "torch.nn modules and functions (Python)"),
    ("torch/autograd", "torch.autograd (Python)"),
    ("torch/overrides", "torch.overrides (Python)"),
    ("torch/", "torch, other Python"),
    ("sklearn/", "scikit-learn"),
    ("", "other Python (this script, the standard library)"),
)


def by_area(stats):
    """``{area: own seconds}`` of a profile's entries."""
    found = dict.fromkeys([label for _, label in AREAS], 0.0)
    for (path, _, _), entry in stats.items():
        label = next(label for marker, label in AREAS if marker in path)
        found[label] += entry[2]
    return found


def top_entries(profiler, top):
    """``(total own seconds, stats, the top entries by own time)``."""
    stats = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values())
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    entries = [
        (short_name(key), calls, own, cumulative)
        for key, (_, calls, own, cumulative, _) in ranked[:top]
    ]
    return total, stats, entries


def profile_search(top):
    """cProfile of our dropout-0 search inside torch.set_num_threads(1),
    where its groups train one after the other in this thread (with more
    threads they train in worker threads, which cProfile does not see)."""
    X, y = tutorial_data()
    _, fixed, grid, _ = grids(quick=False)[-1]

    def search():
        estimator = ours(ClassifierModule, fixed, 20, 0.01)
        return BatchedGridSearchCV(estimator, grid, cv=3, refit=False)

    with torch_threads(1):
        search().fit(X, y)  # warm
        profiler = cProfile.Profile()
        profiler.enable()
        fitted = search().fit(X, y)
        profiler.disable()
    total, stats, entries = top_entries(profiler, top)
    groups = getattr(fitted, "n_batch_groups_", None)
    return {
        "total": total,
        "top": entries,
        "groups": groups,
        "areas": by_area(stats),
    }


def profile_fit(top):
    """cProfile of one of our tutorial fits: the total, the ``top`` entries
    by own time, and the cumulative time of the named entries."""
    X, y = tutorial_data()
    estimator = ours(ClassifierModule, {"num_units": 10, "dropout": 0.5}, 20, 0.01)
    estimator.fit(X, y)  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    estimator.fit(X, y)
    profiler.disable()
    total, stats, entries = top_entries(profiler, top)
    named = {}
    for label, (path, function) in NAMED_TOTALS.items():
        matches = [
            (entry[1], entry[3])
            for key, entry in stats.items()
            if key[0].endswith(path) and function in key[2]
        ]
        if matches:
            calls, cumulative = max(matches, key=lambda m: m[1])
            named[label] = (calls, cumulative)
    steps = estimator.n_iter_ * int(np.ceil(len(X) / BATCH_SIZE))
    return {
        "total": total,
        "steps": steps,
        "top": entries,
        "named": named,
        "areas": by_area(stats),
        "forward": forward_costs(),
        "search": profile_search(top),
    }


# -------------------------------------------------------------- report


def spread_cells(s):
    return [f"{s['best']:.3f}", f"{s['median']:.3f}", f"{s['spread']:.2f}"]


def fits_section(rows, repeats):
    first = rows[0]["first"]
    lines = [
        "### TorchClassifier against skorch, single fits",
        "",
        f"Wall time of one fit, {repeats} turn(s) of ours, skorch's "
        "NeuralNetClassifier and the plain loops below, in rotation (each turn "
        "starts one further along), after one untimed fit of each. Same module "
        "class and initial weights, Adam, batch 128, shuffled, no validation "
        "split, no penalty, float32; ours random_state=0, skorch "
        "torch.manual_seed(0) before each fit; ours picks its torch threads "
        "(one for these modules) and skorch runs inside "
        "torch.set_num_threads(1) to match; skorch, default threads: skorch on "
        f"torch's default ({torch.get_num_threads()}), what a skorch user gets "
        "(on a shared machine, the slowest and least steady fits: a thread pool "
        "whose threads wait for each other), timed on the first data set only. "
        "Binary "
        "targets: ours one logit and BCEWithLogitsLoss, skorch two logits and "
        "CrossEntropyLoss. Spread: slowest / fastest turn. ours / skorch: the "
        "median of each turn's ratio, against skorch on one thread; goal: ours <= "
        f"{SINGLE_FIT_GOAL:g}x skorch's time. Accuracy on a stratified 20% test "
        "split. The first fits in this process (untimed, in this order): ours "
        f"{first['ours']:.3f} s, skorch {first['skorch']:.3f} s (its first "
        "torch.optim optimizer imports torch._dynamo; ours does not), plain "
        f"loop {first['plain loop']:.3f} s.",
        "",
        "| data | module | train rows | epochs | lr | ours best s | ours median s "
        "| ours spread | skorch best s | skorch median s | skorch spread "
        "| ours / skorch | goal | skorch, default threads median s "
        "| skorch, default threads spread | ours / skorch, default threads "
        "| ours acc "
        "| skorch acc |",
        "|" + "---|" * 18,
    ]
    for r in rows:
        ratio = r["ratio"]
        met = "met" if ratio <= SINGLE_FIT_GOAL else "not met"
        cells = [
            r["data"],
            r["module"],
            str(r["rows"]),
            str(r["epochs"]),
            f"{r['lr']:g}",
            *spread_cells(r["seconds"]["ours"]),
            *spread_cells(r["seconds"]["skorch"]),
            f"{ratio:.2f}",
            f"{SINGLE_FIT_GOAL:g}x: {met}",
            *default_threads_cells(r),
            f"{r['accuracy']['ours']:.3f}",
            f"{r['accuracy']['skorch']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def default_threads_cells(row):
    found = row["seconds"].get("skorch, default threads")
    if found is None:  # --quick, and the cases after the first
        return ["not run"] * 3
    ratio = row["ratio default threads"]
    return [f"{found['median']:.3f}", f"{found['spread']:.2f}", f"{ratio:.2f}"]


def epoch_section(rows, repeats):
    lines = [
        "### Time per step against a plain PyTorch loop",
        "",
        "The same turns: median fit seconds / optimizer steps (setup included). "
        "Plain loop: the same module and initial weights, torch.optim.Adam "
        "(torch's default, for-loop implementation on the CPU) or "
        "Adam(fused=True) (the kernel ours calls), the same batch size, "
        "torch.randperm batches, ours' loss and thread count: the floor; "
        "skorch on one thread, as above. Ours "
        "without OwnRandomness is a diagnostic only (OwnRandomness replaced by a "
        "nullcontext: the module's draws then come from torch's global "
        "generator, dropout from torch's own kernel). Ratios: medians of each "
        "turn's ratio; spread: slowest / fastest turn.",
        "",
        "| data | module | steps | plain loop µs | plain loop, fused Adam µs "
        "| ours µs | ours without OwnRandomness µs | skorch µs | ours / plain "
        "| ours / plain fused | plain / skorch | plain fused / skorch "
        "| without / with OwnRandomness | spread |",
        "|" + "---|" * 14,
    ]
    order = (
        "plain loop",
        "plain loop, fused Adam",
        "ours",
        "ours without OwnRandomness",
        "skorch",
    )
    for r in rows:
        ratios = r["ratios"]
        spread = ", ".join(
            f"{side} {r['seconds'][side]['spread']:.2f}" for side in order
        )
        cells = [
            r["data"],
            r["module"],
            str(r["steps"]),
            *(
                f"{r['seconds'][side]['median'] / r['steps'] * 1e6:.0f}"
                for side in order
            ),
            *(
                f"{ratios[key]:.2f}"
                for key in (
                    "ours / plain",
                    "ours / fused",
                    "plain / skorch",
                    "fused / skorch",
                    "without / with",
                )
            ),
            spread,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def search_section(rows, repeats, quick):
    units = "10, 20" if quick else "10, 20, 50"
    rates = "0.003, 0.01"
    lines = [
        "### BatchedGridSearchCV against GridSearchCV on skorch",
        "",
        "BatchedGridSearchCV(TorchClassifier(ClassifierModule)) against "
        "GridSearchCV(NeuralNetClassifier(ClassifierModule), n_jobs=1) inside "
        "torch.set_num_threads(1) (ours at torch's default) on the "
        f"tutorial data: module__num_units in ({units}) x learning rate in "
        f"({rates}), 3 folds, 20 epochs, refit=False, the configuration of the "
        f"single fits; {repeats} turn(s), alternating. Speed-up: skorch's time / "
        f"ours, the median of each turn's ratio; goal {SEARCH_GOAL:g}x. Batched "
        "fits: how many (candidate, fold) fits our search trained in batches "
        "(its ``n_batched_fits_``); the others fell back to ordinary fits, for the "
        "reason it prints under verbose=1.",
        "",
        "| grid | candidates | ours best s | ours median s | ours spread "
        "| skorch best s | skorch median s | skorch spread | speed-up | goal "
        "| best score ours / skorch | best params ours | best params skorch "
        "| batched fits | fallback reason |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        met = "met" if r["speed_up"] >= SEARCH_GOAL else "not met"
        reasons = "; ".join(f"{n} fits: {why}" for n, why in r["fallback"])
        cells = [
            r["grid"],
            str(r["candidates"]),
            *spread_cells(r["seconds"]["ours"]),
            *spread_cells(r["seconds"]["skorch"]),
            f"{r['speed_up']:.1f}x",
            f"{SEARCH_GOAL:g}x: {met}",
            f"{r['best_score']['ours']:.4f} / {r['best_score']['skorch']:.4f}",
            params_cell(r["best_params"]["ours"]),
            params_cell(r["best_params"]["skorch"]),
            f"{r['batched']} of {r['fits']}",
            reasons or "none",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def params_cell(params):
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in params.items()) + "}"


def profile_section(profile):
    total, steps = profile["total"], profile["steps"]
    lines = [
        "### Where our time goes",
        "",
        "cProfile of one of our tutorial fits (ClassifierModule(num_units=10, "
        f"dropout=0.5), 20 epochs, {steps} steps), warm; the profiler slows "
        f"Python calls down, so the shares matter, not the seconds. Total "
        f"{total:.3f} s profiled, {total / steps * 1e6:.0f} µs per step.",
        "",
        "| entry | calls | cumulative s | share of the fit | µs per step |",
        "|---|---|---|---|---|",
    ]
    for label, (calls, cumulative) in profile["named"].items():
        lines.append(
            f"| {label} | {calls} | {cumulative:.3f} | {cumulative / total:.0%} "
            f"| {cumulative / steps * 1e6:.0f} |"
        )
    lines += [
        "",
        "### One forward with and without OwnRandomness",
        "",
        "A training-mode forward of the tutorial module (20 -> 10 -> 10 -> 1) on "
        "128 rows with gradients enabled, one thread: called directly, and "
        "inside OwnRandomness, as ours runs it (every torch call in the forward "
        "goes through its __torch_function__; F.dropout becomes bernoulli_, "
        "div_ and mul). Best of 5 medians of 300 calls.",
        "",
        "| dropout | plain µs | under OwnRandomness µs | difference µs | ratio |",
        "|---|---|---|---|---|",
    ]
    for dropout, (plain, routed) in profile["forward"].items():
        lines.append(
            f"| {dropout:g} | {plain:.1f} | {routed:.1f} | {routed - plain:.1f} "
            f"| {routed / plain:.2f} |"
        )
    lines += [
        "",
        "### Top functions by own time",
        "",
        "The same profile, the entries with the most time spent in themselves.",
        "",
    ]
    lines += top_table(profile["top"], total)
    search = profile["search"]
    lines += [
        "",
        "### Top functions of the batched search by own time",
        "",
        "cProfile of the dropout-0 search of the table above (every fit "
        f"batched, in {search['groups']} group(s)), warm, inside "
        "torch.set_num_threads(1) so that its groups train in this thread. "
        f"Total {search['total']:.3f} s profiled.",
        "",
        *top_table(search["top"], search["total"]),
        "",
        "### Own time by area",
        "",
        "Both profiles' own time, summed by the file of each entry: C++ calls "
        "are torch's operators, its autograd engine's backward and Python's "
        "builtins; the others are Python code.",
        "",
        "| area | single fit s | single fit share | batched search s "
        "| batched search share |",
        "|---|---|---|---|---|",
    ]
    for label, seconds in profile["areas"].items():
        other = search["areas"][label]
        if seconds or other:
            lines.append(
                f"| {label} | {seconds:.3f} | {seconds / total:.0%} | {other:.3f} "
                f"| {other / search['total']:.0%} |"
            )
    return lines


def top_table(entries, total):
    lines = [
        "| function | calls | own s | share | cumulative s |",
        "|---|---|---|---|---|",
    ]
    for name, calls, own, cumulative in entries:
        lines.append(
            f"| `{name}` | {calls} | {own:.4f} | {own / total:.0%} | {cumulative:.4f} |"
        )
    return lines


def phases_section(phases, repeats):
    labels = [label for _, _, label in SEARCH_PHASES]
    lines = [
        "### Where the batched search's time goes",
        "",
        "The dropout-0 search above (every fit batched), its phases timed by "
        "wrapping the search's own functions (a diagnostic): prepare (per fit: "
        "clone, validate, build and check the module, the torch.func stacking "
        "check), batched training, scoring; other: the rest. Medians of "
        f"{repeats} turn(s), at torch's default thread count and at one thread.",
        "",
        "| torch threads | total s | "
        + " | ".join(f"{x} s" for x in labels)
        + " | other s |",
        "|" + "---|" * (len(labels) + 3),
    ]
    for name, found in phases.items():
        known = [found.get(label, float("nan")) for label in labels]
        other = found["total"] - sum(v for v in known if v == v)
        cells = [name, f"{found['total']:.3f}", *(f"{v:.3f}" for v in known)]
        lines.append("| " + " | ".join([*cells, f"{other:.3f}"]) + " |")
    return lines


def command_line():
    args = map(shlex.quote, sys.argv[1:])
    return " ".join(["python benchmarks/own_module.py", *args])


def report(fits, searches, phases, profile, repeats, quick):
    lines = [
        f"Command: `{command_line()}`",
        "",
        f"Machine: {machine()}.",
        "",
        *fits_section(fits, repeats["fits"]),
        "",
        *epoch_section(fits, repeats["fits"]),
        "",
        *search_section(searches, repeats["search"], quick),
        "",
        *phases_section(phases, repeats["phases"]),
        "",
        *profile_section(profile),
    ]
    return "\n".join(lines) + "\n"


def times_json(fits, searches):
    """``{configuration: {side: median seconds}}``: ``--json``."""
    times = {}
    for r in fits:
        key = f"{r['data']}, {r['module']}"
        times[f"fit, {key}"] = {side: s["median"] for side, s in r["seconds"].items()}
    for r in searches:
        times[f"grid search, {r['grid']}"] = {
            side: s["median"] for side, s in r["seconds"].items()
        }
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tutorial data, 2 x 2 grids, 2 turns of the fits and 1 of the "
        "searches, into a temporary file",
    )
    parser.add_argument("--repeats", type=int, default=6, help="turns of the fits")
    parser.add_argument(
        "--search-repeats", type=int, default=3, help="turns of the searches"
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write each configuration's median seconds (ours, skorch's, "
        "the plain loops') as JSON",
    )
    args = parser.parse_args()
    if NeuralNetClassifier is None:
        sys.exit('skorch is not installed: pip install ".[bench]"')
    warnings.simplefilter("ignore", ConvergenceWarning)
    repeats = {
        "fits": 2 if args.quick else args.repeats,
        "search": 1 if args.quick else args.search_repeats,
    }
    print("single fits", file=sys.stderr)
    fits = bench_fits(args.quick, repeats["fits"])
    print("grid searches", file=sys.stderr)
    searches = bench_searches(args.quick, repeats["search"])
    print("batched search phases", file=sys.stderr)
    repeats["phases"] = max(repeats["search"] - 1, 1)
    phases = search_phases(args.quick, repeats["phases"])
    print("profile", file=sys.stderr)
    profile = profile_fit(top=12)
    text = report(fits, searches, phases, profile, repeats, args.quick)
    print(text)
    output = args.output
    if output is None:
        folder = Path(tempfile.mkdtemp()) if args.quick else HERE
        output = folder / "results_own_module.md"
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    if args.json is not None:
        document = {"command": command_line(), "times": times_json(fits, searches)}
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if output.resolve().parent == HERE.resolve() and not args.quick:
        for path in render_docs.main():
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
