"""Ctrl-C at any moment leaves a consistent estimator and a process that fits.

A first fit in a fresh process imports nothing lazily (an interrupt inside
torch's lazy imports used to leave ``torch._dynamo`` or sympy half imported,
and the process unable to fit again), and an interrupted early-stopping fit
keeps curves that agree with each other. Interrupt moments are random: each
test repeats (``trials``; many more with SKORCHLITE_SLOW_TESTS=1).
"""

import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons

from skorchlite import TorchMLPClassifier
from skorchlite._engine.stack import MLPStack

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh process: an interrupted first fit, then a fit that must work.
CHILD = """
import signal, sys, time, warnings
from sklearn.datasets import make_moons
from skorchlite import TorchMLPClassifier
from skorchlite._engine.stack import MLPStack

# Ctrl-C raises KeyboardInterrupt, as in a terminal, even when this process
# was started with SIGINT ignored (e.g. by a shell's background job).
signal.signal(signal.SIGINT, signal.default_int_handler)

params = eval(sys.argv[1])
X, y = make_moons(300, noise=0.2, random_state=0)
clf = TorchMLPClassifier((16,), max_iter=300, n_iter_no_change=1000, **params)
print("ready", flush=True)
started = time.perf_counter()
outcome = "not started"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        clf.fit(X, y)
        if any("interrupted" in str(w.message) for w in caught):
            outcome = "training interrupted"
        else:
            outcome = "after the fit"
            time.sleep(30)  # the interrupt is on its way: it lands here
            sys.exit("no interrupt arrived")
    except KeyboardInterrupt:
        if outcome != "after the fit":
            outcome = "fit interrupted"
outcome += f" (fit ran {time.perf_counter() - started:.3f} s)"
if hasattr(clf, "n_iter_"):
    if clf.solver != "lbfgs":
        assert len(clf.loss_curve_) == clf.n_iter_  # 0 if in the first epoch
    if clf.early_stopping:
        assert len(clf.validation_scores_) == clf.n_iter_
        assert len(clf.validation_loss_curve_) == clf.n_iter_
    clf.predict(X)
else:
    assert not hasattr(clf, "module_"), "a failed fit must leave no fitted state"
again = TorchMLPClassifier(
    (16,), max_iter=100, random_state=0, **{"learning_rate_init": 0.01, **params}
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    score = again.fit(X, y).score(X, y)
assert score > 0.8, score
again.predict_proba(X)
# Nothing on the fit or predict path imports these lazily (an interrupt
# inside such an import broke the process).
heavy = {"sympy", "mpmath", "torch._dynamo", "torch._inductor"} & set(sys.modules)
assert not heavy, heavy
print("OK", outcome, flush=True)
"""

CHILD_PARAMS = [
    {"solver": "adam"},
    {"solver": "sgd", "learning_rate_init": 0.05},
    {"solver": "adamw", "dropout": 0.2},
    {"solver": "lbfgs"},
    {"early_stopping": True, "dropout": 0.1},
]


def interrupted_child(params, delay):
    """Start a process, interrupt its first fit after ``delay`` s; its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, repr(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=120)
    finally:
        child.kill()
    return child.returncode, output


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_first_fits_interrupted_at_random_moments_then_fit_again(trials):
    # Each child takes seconds to import torch and sklearn, then its first
    # fit lasts 0.07-0.26 s here: the interrupts land in the fit or just after.
    rng = np.random.default_rng()
    offset = rng.integers(len(CHILD_PARAMS))
    cases = [
        (CHILD_PARAMS[(offset + i) % len(CHILD_PARAMS)], rng.uniform(0, 0.2))
        for i in range(trials(3, 40))
    ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: interrupted_child(*case), cases))
    for (params, delay), (returncode, output) in zip(cases, results, strict=True):
        context = f"{params}, interrupted after {delay:.3f} s:\n{output}"
        assert returncode == 0, context
        assert output.splitlines()[-1].startswith("OK"), context
    # Where the interrupts landed (shown with pytest -rA).
    print(Counter(output.splitlines()[-1].split(" (")[0] for _, output in results))


def interrupt_after(n):
    """A stack's ``forward`` that raises KeyboardInterrupt on its ``n``-th call."""
    forward = MLPStack.forward
    calls = [0]

    def counting_forward(stack, *args):
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        return forward(stack, *args)

    return counting_forward


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_interrupt_in_any_validation_pass_keeps_the_curves_consistent(
    monkeypatch, trials, dropout
):
    # Every forward pass of the stack, training or validation (several per
    # epoch: predict_batch_size rows each), may be the one interrupted.
    X, y = make_moons(120, noise=0.2, random_state=0)
    rng = np.random.default_rng()
    for n in rng.integers(1, 60, trials(6, 60)):
        clf = TorchMLPClassifier(
            (8,),
            early_stopping=True,
            n_iter_no_change=1000,
            max_iter=30,
            dropout=dropout,
            predict_batch_size=7,  # several forward passes per validation
            random_state=int(n),
        )
        monkeypatch.setattr(MLPStack, "forward", interrupt_after(n))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(X, y)
        monkeypatch.undo()
        assert any("interrupted" in str(w.message) for w in caught), n
        n_iter = clf.n_iter_
        assert n_iter == len(clf.loss_curve_)
        assert n_iter == len(clf.validation_scores_)
        assert n_iter == len(clf.validation_loss_curve_)
        assert clf.t_ == n_iter * 108  # the training rows, without validation
        if n_iter:
            assert clf.best_validation_score_ == max(clf.validation_scores_)
            assert clf.loss_ == clf.loss_curve_[-1]
        # And it trains on, keeping one history.
        clf.set_params(warm_start=True, max_iter=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        assert len(clf.loss_curve_) == len(clf.validation_scores_) == n_iter + 2
