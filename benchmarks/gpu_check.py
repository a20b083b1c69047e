"""Everything a CUDA machine can tell us, in one command of under 5 minutes.

No GPU has run this project's CUDA paths yet, and one may be lent for minutes
only. From the repository root (no install needed: the script puts the
repository on the path, its own and its child processes')::

    python benchmarks/gpu_check.py --require-cuda --out DIR

With ``device="cuda"`` it checks, each check ending PASS, FAIL or SKIP with its
reason:

- CUDA itself: a product on the device, the GPU, CUDA and TF32 settings;
- fit / predict on CUDA for each solver, the classifier and the regressor,
  against the same float32 fit on the CPU;
- ``partial_fit`` and ``warm_start`` on CUDA (the optimizer's state stays
  there), sparse X, sample weights, early stopping, dropout from the fit's own
  CUDA generator (the global one untouched), float64, gradient clipping, GELU;
- pickle and ``skorchlite.save``/``load`` on the GPU machine (back on CUDA,
  bit-identical, ``partial_fit`` goes on where it stopped), a CPU-trained model
  moving to CUDA, and a CUDA-trained pickle and skops file loading in a child
  process that sees no GPU (``CUDA_VISIBLE_DEVICES=""``);
- ``BatchedGridSearchCV`` on CUDA against the same search on the CPU and
  against ordinary CUDA fits (``GridSearchCV``): equal scores within float32
  tolerance, every fit batched;
- the device tests of the suite (``DEVICE_TESTS``, in a pytest child process
  where ``device="auto"`` picks the GPU);
- a timing table: single fits and batched searches, CPU against CUDA, with
  scikit-learn's ``MLPClassifier`` / ``GridSearchCV`` beside them.

The report goes to ``DIR/gpu_check.md`` (``--out``; default ``$OUT`` if set,
else a new temporary directory), rewritten after every check so that a run cut
short still leaves what it found, with the pytest log beside it
(``device_tests.log``). The exit status is 1 if a check failed, else 0.

On a machine without CUDA every CUDA check is a SKIP with the reason, and the
exit status is 0 (``--require-cuda`` makes a missing GPU a failure: use it on
the GPU machine, so that a CPU-only torch there does not pass for a GPU run).
``--device cpu`` runs every check on the CPU instead, which tests this script
(``tests/test_gpu_check.py``). ``--quick`` makes everything small.

On the lent GPU machine (no package index reachable; its image has a CUDA
torch, numpy, scipy, scikit-learn, pytest, hypothesis, pandas and matplotlib),
fetch the missing wheels here first, into a folder git ignores::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 \\
        --platform manylinux_2_17_x86_64 -d .whl scikit-learn==1.9.1 \\
        skops==0.16.0 prettytable==3.19.0 wcwidth==0.9.4

and run there, carrying ``.whl``::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \\
        && PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 \\
        python3 benchmarks/gpu_check.py --require-cuda --out "$OUT"
"""

import argparse
import contextlib
import copy
import importlib
import json
import math
import os
import pickle
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# A copy of the repository runs without an install.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from run import BATCHED_GRID, bmm_gflops, machine, timed_fit  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_blobs,
    make_classification,
    make_moons,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import skorchlite  # noqa: E402
from skorchlite import (  # noqa: E402
    BatchedGridSearchCV,
    TorchClassifier,
    TorchMLPClassifier,
    TorchMLPRegressor,
)
from skorchlite._device import resolve_dtype  # noqa: E402

#: The suite's tests that exercise devices. With CUDA present, ``device="auto"``
#: (the default) trains on the GPU, so the round-trip property test and the
#: GPU example run there too.
DEVICE_TESTS = [
    "tests/test_classifier.py::test_cpu_devices",
    "tests/test_classifier.py::test_unavailable_cuda_is_a_clear_error",
    "tests/test_classifier.py::test_nonexistent_device_is_a_clear_error",
    "tests/test_classifier.py::test_cuda_training_and_cpu_pickle",
    "tests/test_classifier.py::test_auto_device_picks_cuda",
    "tests/test_classifier.py::test_fitting_leaves_the_cuda_rng_alone",
    "tests/test_inputs.py::test_nonexistent_device",
    "tests/test_persistence.py::test_device_that_is_missing_on_load_warns_and_stays_on_cpu",
    "tests/test_persistence.py::test_cuda_trained_pickle_loads_on_a_cpu_only_machine",
    "tests/test_properties.py::test_save_load_and_pickle_round_trips_are_bit_identical",
    "tests/test_onnx.py::test_export_leaves_the_estimator_alone",
    "tests/test_examples.py::test_example[plot_7_gpu.py]",
    "tests/test_docs.py::test_page_code_examples_run[user_guide/devices.rst]",
]

#: How far a float32 fit on the GPU may end from the same fit on the CPU after
#: a few dozen steps (other kernels, other rounding; see DESIGN.md on
#: trajectories).
FLOAT32_TOLERANCE = 1e-3
#: The same for float64 fits.
FLOAT64_TOLERANCE = 1e-7
#: How far one float32 model's predictions may be on two devices (or from
#: dense and sparse batches of the same rows).
PREDICTION_TOLERANCE = 1e-4

# The CPU-only process: loads the files written on the GPU machine and checks
# what a user without a GPU gets.
CPU_ONLY_CHILD = """
import json, pickle, sys, warnings
from pathlib import Path

import numpy as np
import torch

import skorchlite

folder = Path(sys.argv[1])
X, y = np.load(folder / "X.npy"), np.load(folder / "y.npy")
expected = np.load(folder / "proba.npy")
report = {"cuda_available": torch.cuda.is_available()}


def check(load):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load()
    proba = model.predict_proba(X)
    entry = {
        "warnings": [str(w.message) for w in caught],
        "device": str(model.device),
        "devices": sorted({p.device.type for p in model.module_.parameters()}),
        "max_diff": float(np.abs(proba - expected).max()),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y)
    entry["partial_fit_loss"] = float(model.loss_)
    entry["devices_after"] = sorted(
        {p.device.type for p in model.module_.parameters()}
    )
    return entry


with open(folder / "model.pkl", "rb") as file:
    report["pickle"] = check(lambda: pickle.load(file))
if (folder / "model.skops").exists():
    report["skops"] = check(lambda: skorchlite.load(folder / "model.skops"))
print(json.dumps(report))
"""


class Skip(Exception):
    """Raised by a check that cannot run here; its message says why."""


@dataclass
class Result:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str
    seconds: float
    trace: str = ""


@dataclass
class Context:
    """What the checks share: the device, sizes, folders and findings."""

    device: str
    quick: bool
    out: Path
    work: Path
    tests: list
    budget: float
    started: float = field(default_factory=time.perf_counter)
    results: list = field(default_factory=list)
    timings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    files_written: bool = False

    @property
    def on_cuda(self):
        return torch.device(self.device).type == "cuda"

    def left(self):
        return self.budget - (time.perf_counter() - self.started)


# ------------------------------------------------------------------ helpers


def cuda_missing():
    """Why CUDA cannot be used here, or None if it can."""
    if torch.version.cuda is None:
        return (
            f"CUDA is not available: torch {torch.__version__} was built without "
            "CUDA (torch.version.cuda is None)"
        )
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return (
            "CUDA is not available: torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"CUDA_VISIBLE_DEVICES={visible!r})"
        )
    return None


def cuda_description():
    """A line about the GPU and CUDA, or why there is none."""
    missing = cuda_missing()
    if missing:
        return missing
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return (
        f"{props.name} (cuda:{index} of {torch.cuda.device_count()}, compute "
        f"capability {props.major}.{props.minor}, {props.total_memory / 2**30:.0f} "
        f"GiB, {props.multi_processor_count} SMs); torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
        f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32} "
        f"(float32 matmul precision {torch.get_float32_matmul_precision()!r})"
    )


def nvidia_smi():
    try:
        done = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def child_env(**extra):
    """The environment of a child process: this repository importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def devices_of(tensors):
    return sorted({t.device.type for t in tensors})


def param_devices(estimator):
    return devices_of(estimator.module_.parameters())


def optimizer_devices(estimator):
    tensors = estimator._solver_state.tensors.values()
    return devices_of(tensor for entry in tensors for tensor in entry)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def relative_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def scaled(X, dtype=np.float32):
    return StandardScaler().fit_transform(X).astype(dtype)


def moons(n=400):
    X, y = make_moons(n, noise=0.2, random_state=0)
    return scaled(X), y


# ------------------------------------------------------------------- checks


def check_cuda(ctx):
    """A product on the device; ``device="cuda"`` and ``"auto"`` resolve to it."""
    from skorchlite._device import resolve_device

    a = torch.full((512, 512), 0.5, device=ctx.device)
    value = (a @ a).sum().item()
    synchronize(ctx.device)
    expect(math.isfinite(value), f"a product on {ctx.device} gave {value}")
    resolved = resolve_device(ctx.device)
    expect(resolved.type == torch.device(ctx.device).type, f"resolved to {resolved}")
    auto = resolve_device("auto")
    if ctx.on_cuda:
        expect(auto.type == "cuda", f'device="auto" resolved to {auto}, not CUDA')
        return cuda_description()
    return f"{ctx.device} (dry run: the checks below run on the CPU)"


def _require(module):
    """Skip the check unless ``module`` imports."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{module.split('.')[0]} is not installed ({exc})") from None


def check_device_tests(ctx):
    """The suite's device tests, in a pytest child process."""
    _require("pytest")
    if not ctx.tests:
        raise Skip("no device tests selected (--tests)")
    missing = [t for t in ctx.tests if not (ROOT / t.split("::")[0]).exists()]
    if missing:
        raise Skip(f"not in this copy of the repository: {missing}")
    junit = ctx.work / "device_tests.xml"
    log = ctx.out / "device_tests.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        *ctx.tests,
        # The project's addopts ask for pytest-xdist and doctests: neither here.
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        f"--junitxml={junit}",
    ]
    timeout = max(30.0, min(180.0, ctx.left() - 45))
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or ""
        output = (
            output.decode(errors="replace") if isinstance(output, bytes) else output
        )
        log.write_text(f"$ {shlex.join(command)}\n{output}\nTIMED OUT\n")
        raise AssertionError(
            f"pytest ran past {timeout:.0f} s; see {log.name}"
        ) from None
    log.write_text(f"$ {shlex.join(command)}\n{output}")
    if not junit.exists():
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise AssertionError(f"pytest wrote no report (exit {done.returncode}): {tail}")
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None]
    errors = [c for c in cases if c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = len(cases) - len(failed) - len(errors) - len(skipped)
    summary = (
        f"{passed} passed, {len(failed)} failed, {len(errors)} errors, "
        f"{len(skipped)} skipped in {time.perf_counter() - started:.0f} s "
        f"(exit {done.returncode}; log: {log.name})"
    )
    for case in skipped:
        reason = case.find("skipped").get("message", "")
        ctx.notes.append(f"device test skipped: {case.get('name')}: {reason}")
    bad = [c.get("name") for c in failed + errors]
    expect(not bad, f"{summary}; failing: {', '.join(bad)}")
    expect(done.returncode in (0, 5) or not cases, summary)
    if ctx.on_cuda:
        # With a GPU present, the tests that need one must have run.
        needs_gpu = [
            c.get("name")
            for c in skipped
            if "CUDA" in c.find("skipped").get("message", "")
            and "this machine has CUDA" not in c.find("skipped").get("message", "")
        ]
        expect(not needs_gpu, f"{summary}; skipped despite the GPU: {needs_gpu}")
    return summary


def _fit_pair(make, X, y, device, **fit_params):
    """The same estimator fitted on ``device`` and on the CPU in float32."""
    with quiet():
        here = make(device=device).fit(X, y, **fit_params)
        cpu = make(device="cpu", dtype="float32").fit(X, y, **fit_params)
    return here, cpu


def check_fit_predict(ctx):
    """Each solver, the classifier and the regressor, on the device and the CPU."""
    X, y = moons(300 if ctx.quick else 600)
    lines = []
    for solver in ("adam", "sgd", "adamw", "lbfgs"):
        # L-BFGS's line search magnifies rounding: a few iterations only.
        max_iter = 8 if solver == "lbfgs" else (5 if ctx.quick else 20)

        def make(solver=solver, max_iter=max_iter, **params):
            return TorchMLPClassifier(
                hidden_layer_sizes=(32,),
                solver=solver,
                max_iter=max_iter,
                random_state=0,
                **params,
            )

        here, cpu = _fit_pair(make, X, y, ctx.device)
        expect(
            param_devices(here) == [torch.device(ctx.device).type],
            f"{solver}: parameters on {param_devices(here)}",
        )
        # dtype=None: float32 on a GPU; a CPU dry run trains lbfgs in float64
        # (scipy's L-BFGS-B), as MLPClassifier does.
        wanted = resolve_dtype(
            None,
            np.dtype(np.float64 if solver == "lbfgs" else X.dtype),
            torch.device(ctx.device),
        )
        expect(here.module_[0].weight.dtype == wanted, f"{solver}: not {wanted}")
        proba = here.predict_proba(X)
        expect(
            isinstance(proba, np.ndarray) and proba.shape == (len(X), 2),
            f"{solver}: predict_proba gave {type(proba).__name__} {proba.shape}",
        )
        expect(np.allclose(proba.sum(axis=1), 1.0), f"{solver}: rows do not sum to 1")
        np.testing.assert_array_equal(
            here.predict(X), here.classes_[proba.argmax(axis=1)]
        )
        expect(
            all(isinstance(c, np.ndarray) for c in here.coefs_),
            f"{solver}: coefs_ are not numpy arrays",
        )
        d_proba = max_diff(proba, cpu.predict_proba(X))
        d_loss = relative_diff(here.loss_, cpu.loss_)
        expect(
            d_proba < FLOAT32_TOLERANCE and d_loss < FLOAT32_TOLERANCE,
            f"{solver}: {ctx.device} and CPU float32 differ by {d_proba:.2g} in "
            f"predict_proba, {d_loss:.2g} in loss_",
        )
        lines.append(f"{solver} Δproba {d_proba:.1g} Δloss {d_loss:.1g}")

    X3, y3 = make_blobs(300, n_features=5, centers=3, random_state=0)
    X3 = scaled(X3)
    here, cpu = _fit_pair(
        lambda **p: TorchMLPClassifier(
            hidden_layer_sizes=(16,), max_iter=10, random_state=0, **p
        ),
        X3,
        y3,
        ctx.device,
    )
    d = max_diff(here.predict_proba(X3), cpu.predict_proba(X3))
    expect(d < FLOAT32_TOLERANCE, f"3 classes: Δproba {d:.2g}")
    lines.append(f"3 classes Δproba {d:.1g}")

    Xr, yr = make_regression(300, n_features=6, noise=1.0, random_state=0)
    Xr, yr = scaled(Xr), (yr - yr.mean()) / yr.std()
    here, cpu = _fit_pair(
        lambda **p: TorchMLPRegressor(
            hidden_layer_sizes=(16,), max_iter=10, random_state=0, **p
        ),
        Xr,
        yr,
        ctx.device,
    )
    prediction = here.predict(Xr)
    expect(prediction.shape == (len(Xr),), f"regressor predicted {prediction.shape}")
    d = max_diff(prediction, cpu.predict(Xr))
    expect(d < FLOAT32_TOLERANCE, f"regressor: Δpredict {d:.2g}")
    lines.append(f"regressor Δpredict {d:.1g}")
    return "; ".join(lines)


def check_partial_fit(ctx):
    """partial_fit and warm_start on the device keep the model and Adam there."""
    X, y = moons(300)
    kind = torch.device(ctx.device).type

    def make(**params):
        return TorchMLPClassifier(hidden_layer_sizes=(32,), random_state=0, **params)

    here, cpu = make(device=ctx.device), make(device="cpu", dtype="float32")
    for _ in range(3):
        here.partial_fit(X, y, classes=[0, 1])
        cpu.partial_fit(X, y, classes=[0, 1])
    expect(here.n_iter_ == 1 and here.t_ == 3 * len(X), f"n_iter_ {here.n_iter_}")
    expect(len(here.loss_curve_) == 3, f"loss_curve_ {here.loss_curve_}")
    expect(param_devices(here) == [kind], f"parameters on {param_devices(here)}")
    expect(
        optimizer_devices(here) == [kind],
        f"Adam's state on {optimizer_devices(here)}",
    )
    d = relative_diff(here.loss_curve_, cpu.loss_curve_)
    expect(d < FLOAT32_TOLERANCE, f"loss curves differ from the CPU's by {d:.2g}")
    with quiet():
        here.set_params(warm_start=True, max_iter=3).fit(X, y)
    expect(len(here.loss_curve_) == 6, f"warm start: loss_curve_ {here.loss_curve_}")
    expect(param_devices(here) == [kind], "warm start moved the parameters")
    return f"3 partial_fit + warm-start fit on {kind}, Δloss curve {d:.1g}"


def check_training_options(ctx):
    """Sparse X, weights, early stopping, dropout, float64, clipping, GELU."""
    X, y = moons(400)
    kind = torch.device(ctx.device).type
    lines = []

    def make(**params):
        fixed = dict(
            hidden_layer_sizes=(32,), max_iter=5 if ctx.quick else 10, random_state=0
        )
        return TorchMLPClassifier(**{**fixed, **params})

    with quiet():
        dense = make(device=ctx.device).fit(X, y)
        sparse = make(device=ctx.device).fit(sp.csr_matrix(X), y)
    d = max_diff(dense.predict_proba(X), sparse.predict_proba(sp.csr_matrix(X)))
    expect(d < PREDICTION_TOLERANCE, f"sparse and dense fits differ by {d:.2g}")
    lines.append(f"sparse Δ {d:.1g}")

    weights = np.random.default_rng(0).integers(1, 4, len(X)).astype(float)
    here, cpu = _fit_pair(make, X, y, ctx.device, sample_weight=weights)
    d = max_diff(here.predict_proba(X), cpu.predict_proba(X))
    expect(d < FLOAT32_TOLERANCE, f"weighted fit differs from the CPU's by {d:.2g}")
    lines.append(f"weights Δ {d:.1g}")

    with quiet():
        early = make(device=ctx.device, early_stopping=True, max_iter=30).fit(X, y)
    expect(
        len(early.validation_scores_) == early.n_iter_,
        f"early stopping: {len(early.validation_scores_)} scores, {early.n_iter_} "
        "epochs",
    )
    lines.append(f"early stopping {early.n_iter_} epochs")

    rng_before = torch.cuda.get_rng_state_all() if ctx.on_cuda else None
    with quiet():
        first = make(device=ctx.device, dropout=0.2).fit(X, y)
        second = make(device=ctx.device, dropout=0.2).fit(X, y)
    np.testing.assert_array_equal(
        first.predict_proba(X),
        second.predict_proba(X),
        err_msg="two dropout fits with one random_state differ",
    )
    expect(
        max_diff(first.predict_proba(X), dense.predict_proba(X)) > 0,
        "dropout changed nothing",
    )
    if ctx.on_cuda:
        after = torch.cuda.get_rng_state_all()
        expect(
            all(torch.equal(a, b) for a, b in zip(after, rng_before, strict=True)),
            "a fit moved torch's global CUDA generator",
        )
    lines.append("dropout reproducible, global RNG untouched")

    X64 = X.astype(np.float64)
    with quiet():
        here = make(device=ctx.device, dtype="float64").fit(X64, y)
        cpu = make(device="cpu", dtype="float64").fit(X64, y)
    expect(here.module_[0].weight.dtype == torch.float64, "dtype='float64' ignored")
    d = max_diff(here.predict_proba(X64), cpu.predict_proba(X64))
    expect(d < FLOAT64_TOLERANCE, f"float64 fit differs from the CPU's by {d:.2g}")
    lines.append(f"float64 Δ {d:.1g}")

    for name, params in [
        ("max_grad_norm", {"max_grad_norm": 0.5}),
        ("gelu", {"activation": "gelu"}),
        ("batched predict", {"predict_batch_size": 64}),
    ]:
        here, cpu = _fit_pair(lambda p=params, **q: make(**p, **q), X, y, ctx.device)
        expect(param_devices(here) == [kind], f"{name}: {param_devices(here)}")
        d = max_diff(here.predict_proba(X), cpu.predict_proba(X))
        expect(d < FLOAT32_TOLERANCE, f"{name}: differs from the CPU's by {d:.2g}")
        lines.append(f"{name} Δ {d:.1g}")
    return "; ".join(lines)


def _same_model(a, b, X, what):
    """Raise unless ``b`` predicts as ``a`` (bit for bit) on the same device."""
    expect(param_devices(b) == param_devices(a), f"{what}: on {param_devices(b)}")
    np.testing.assert_array_equal(
        a.predict_proba(X), b.predict_proba(X), err_msg=f"{what}: predictions"
    )


def _continues(original, loaded, X, y, what):
    """``partial_fit`` on ``loaded`` goes on as on ``original`` (which trains)."""
    with quiet():
        original.partial_fit(X, y)
        loaded.partial_fit(X, y)
    d = relative_diff(loaded.loss_, original.loss_)
    expect(d < 1e-6, f"{what}: partial_fit after loading: loss differs by {d:.2g}")
    kind = param_devices(original)
    expect(param_devices(loaded) == kind, f"{what}: trained on {param_devices(loaded)}")
    if getattr(loaded, "_solver_state", None) is not None:
        expect(optimizer_devices(loaded) == kind, f"{what}: Adam state elsewhere")


def check_persistence(ctx):
    """pickle round trips on the device, and a CPU model moving to it."""
    X, y = moons(300)
    kind = torch.device(ctx.device).type
    with quiet():
        clf = TorchMLPClassifier(
            hidden_layer_sizes=(32,), max_iter=8, random_state=0, device=ctx.device
        )
        clf.fit(X, y)
    blob = pickle.dumps(clf)
    expect(param_devices(clf) == [kind], "pickling moved the live estimator")
    # Files for the skops check and the CPU-only process.
    with open(ctx.work / "model.pkl", "wb") as file:
        file.write(blob)
    np.save(ctx.work / "X.npy", X)
    np.save(ctx.work / "y.npy", y)
    np.save(ctx.work / "proba.npy", clf.predict_proba(X))
    ctx.files_written = True
    back = pickle.loads(blob)
    _same_model(clf, back, X, "pickle")
    _continues(clf, back, X, y, "pickle")
    lines = [f"pickle: back on {kind}, bit-identical, partial_fit goes on"]

    # Trained on a CPU, asked to go to the device when loaded.
    X64 = X.astype(np.float64)
    with quiet():
        cpu = TorchMLPClassifier(
            hidden_layer_sizes=(32,), max_iter=8, random_state=0, device="cpu"
        )
        cpu.fit(X64, y)
    moved = pickle.loads(pickle.dumps(clone_with_device(cpu, ctx.device)))
    expect(
        param_devices(moved) == [kind], f"CPU model loaded on {param_devices(moved)}"
    )
    expect(moved.module_[0].weight.dtype == torch.float64, "lost its float64")
    d = max_diff(moved.predict_proba(X64), cpu.predict_proba(X64))
    expect(d < FLOAT64_TOLERANCE, f"CPU model on {kind} predicts {d:.2g} apart")
    with quiet():
        moved.partial_fit(X64, y)
    expect(optimizer_devices(moved) == [kind], "Adam's state did not move")
    lines.append(f"CPU-trained float64 model → {kind}: Δ {d:.1g}, partial_fit runs")

    return "; ".join(lines)


class OwnNet(torch.nn.Module):
    """A user's module: a skip connection, optional dropout."""

    def __init__(self, n_features_in, n_outputs, width=32, p=0.0):
        super().__init__()
        self.inner = torch.nn.Linear(n_features_in, width)
        self.block = torch.nn.Linear(width, width)
        self.out = torch.nn.Linear(width, n_outputs)
        self.dropout = torch.nn.Dropout(p)

    def forward(self, X):
        h = torch.relu(self.inner(X))
        return self.out(self.dropout(h + torch.relu(self.block(h))))


def check_own_module(ctx):
    """A user's module on the device: seeded, off the global generators,
    pickled to plain arrays, batched through torch.func."""
    X, y = moons(300)
    kind = torch.device(ctx.device).type

    def make(**params):
        return TorchClassifier(
            OwnNet, max_iter=6, random_state=0, device=ctx.device, **params
        )

    cuda_state = torch.cuda.get_rng_state_all() if ctx.on_cuda else None
    cpu_state = torch.random.get_rng_state()
    with quiet():
        first, again = make(module__p=0.2).fit(X, y), make(module__p=0.2).fit(X, y)
    expect(param_devices(first) == [kind], f"trained on {param_devices(first)}")
    d = max_diff(first.predict_proba(X), again.predict_proba(X))
    expect(d == 0, f"two seeded fits with dropout differ by {d:.2g}")
    expect(
        torch.equal(cpu_state, torch.random.get_rng_state()),
        "a fit moved torch's global CPU generator",
    )
    if cuda_state is not None:
        after = torch.cuda.get_rng_state_all()
        expect(
            all(torch.equal(a, b) for a, b in zip(cuda_state, after, strict=True)),
            "a fit moved torch's global CUDA generator",
        )
    back = pickle.loads(pickle.dumps(first))
    _same_model(first, back, X, "pickle of a user module")
    grid = {"module__width": [16, 32], "learning_rate_init": [0.003, 0.01]}
    with quiet():
        batched = BatchedGridSearchCV(make(), grid, cv=2, refit=False).fit(X, y)
        ordinary = GridSearchCV(make(), grid, cv=2, refit=False).fit(X, y)
    expect(batched.n_batched_fits_ == 8, f"{batched.n_batched_fits_} of 8 batched")
    d_score = max_diff(
        batched.cv_results_["mean_test_score"], ordinary.cv_results_["mean_test_score"]
    )
    expect(d_score <= 2.5 / 150, f"batched scores differ by {d_score:.2g}")
    return (
        f"dropout fits identical, global generators untouched, pickle back on "
        f"{kind}; 8 fits in {batched.n_batch_groups_} torch.func group(s), "
        f"scores within {d_score:.2g} of GridSearchCV"
    )


def clone_with_device(estimator, device):
    """A copy of fitted ``estimator`` whose ``device`` parameter is ``device``."""
    other = copy.deepcopy(estimator)
    other.set_params(device=device)
    return other


def check_skops(ctx):
    """skorchlite.save / load on the device."""
    _require("skops.io")
    if not ctx.files_written:
        raise Skip("needs the model of the persistence check, which failed")
    X, y = np.load(ctx.work / "X.npy"), np.load(ctx.work / "y.npy")
    with open(ctx.work / "model.pkl", "rb") as file:
        clf = pickle.load(file)
    path = ctx.work / "model.skops"
    skorchlite.save(clf, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same device: no warning
        back = skorchlite.load(path)
    _same_model(clf, back, X, "skops")
    _continues(clf, back, X, y, "skops")
    return (
        f"{path.stat().st_size:,} bytes, back on {param_devices(back)[0]}, "
        "bit-identical, partial_fit goes on"
    )


def check_cpu_only_load(ctx):
    """The device-trained pickle and skops file in a process without a GPU."""
    if not ctx.files_written:
        raise Skip("needs the files of the persistence check, which failed")
    done = subprocess.run(
        [sys.executable, "-c", CPU_ONLY_CHILD, str(ctx.work)],
        cwd=ROOT,
        env=child_env(CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=max(30.0, min(120.0, ctx.left())),
    )
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise AssertionError(f"the CPU-only process failed:\n{tail}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expect(not report["cuda_available"], "the child process still sees CUDA")
    lines = []
    for name in ("pickle", "skops"):
        if name not in report:
            lines.append(f"{name}: no file (skops not installed)")
            continue
        entry = report[name]
        expect(entry["devices"] == ["cpu"], f"{name}: loaded on {entry['devices']}")
        expect(entry["devices_after"] == ["cpu"], f"{name}: partial_fit moved it")
        expect(entry["device"] == ctx.device, f"{name}: device is {entry['device']}")
        warned = [w for w in entry["warnings"] if "stays on the CPU" in w]
        if ctx.on_cuda:
            expect(warned, f"{name}: no 'stays on the CPU' warning: {entry}")
        else:
            expect(not entry["warnings"], f"{name}: warnings {entry['warnings']}")
        expect(
            entry["max_diff"] < PREDICTION_TOLERANCE,
            f"{name}: predicts {entry['max_diff']:.2g} from the saved model",
        )
        expect(math.isfinite(entry["partial_fit_loss"]), f"{name}: partial_fit loss")
        lines.append(f"{name}: on cpu, Δproba {entry['max_diff']:.1g}, partial_fit ok")
    if ctx.on_cuda and "pickle" in report:
        warned = [w for w in report["pickle"]["warnings"] if "stays on the CPU" in w]
        lines.append(f"warning: {warned[0]!r}")
    return "; ".join(lines)


def search_problem(quick):
    """(name, X, y, grid, epochs) of the batched-search comparison."""
    if quick:
        X, y = moons(300)
        grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-3, 1e-2]}
        return "moons 300 x 2", X, y, grid, 5
    X, y = load_digits(return_X_y=True)
    return "digits 1797 x 64", (X / 16.0).astype(np.float32), y, BATCHED_GRID, 30


def fixed_epochs(epochs):
    # No tol-based stop: a model stopping one epoch apart on two devices would
    # be no disagreement of the arithmetic.
    return dict(max_iter=epochs, n_iter_no_change=epochs + 1, random_state=0)


def check_batched_search(ctx):
    """BatchedGridSearchCV on the device against the CPU and ordinary fits."""
    name, X, y, grid, epochs = search_problem(ctx.quick)
    cv = 2 if ctx.quick else 3
    scoring = {"neg_log_loss": "neg_log_loss", "accuracy": "accuracy"}

    def search(kind, device, **params):
        estimator = TorchMLPClassifier(device=device, **fixed_epochs(epochs), **params)
        options = dict(cv=cv, scoring=scoring, refit=False)
        return kind(estimator, grid, **options)

    with quiet():
        here = search(BatchedGridSearchCV, ctx.device).fit(X, y)
        cpu = search(BatchedGridSearchCV, "cpu", dtype="float32").fit(X, y)
        single = search(GridSearchCV, ctx.device).fit(X, y)
    n_fits = len(here.cv_results_["params"]) * cv
    expect(
        here.n_batched_fits_ == n_fits,
        f"{here.n_batched_fits_} of {n_fits} fits batched on {ctx.device}",
    )
    fold = len(X) // cv
    lines = [f"{name}, {n_fits} fits in {here.n_batch_groups_} group(s)"]
    for label, other in (("CPU batched", cpu), (f"{ctx.device} ordinary", single)):
        d_loss = relative_diff(
            here.cv_results_["mean_test_neg_log_loss"],
            other.cv_results_["mean_test_neg_log_loss"],
        )
        d_acc = max(
            max_diff(
                here.cv_results_[f"split{k}_test_accuracy"],
                other.cv_results_[f"split{k}_test_accuracy"],
            )
            for k in range(cv)
        )
        expect(
            d_loss < FLOAT32_TOLERANCE,
            f"against {label}: log-loss differs by {d_loss:.2g}",
        )
        # A float32 rounding may flip a prediction or two near the boundary.
        expect(
            d_acc <= 2.5 / fold,
            f"against {label}: accuracy differs by {d_acc:.3g} (> 2 test rows)",
        )
        lines.append(f"vs {label}: Δlog-loss {d_loss:.1g}, Δaccuracy {d_acc:.2g}")
    return "; ".join(lines)


# ------------------------------------------------------------------- timing


def _median_time(make, X, y, repeats, device):
    """Median of ``repeats`` fits; fewer once they took 10 s (the budget)."""
    times = []
    for _ in range(repeats):
        estimator = make()
        synchronize(device)  # fit ends on reads of the loss: no wait after
        with quiet():
            times.append(timed_fit(estimator, X, y))
        if sum(times) > 10:
            break
    return statistics.median(times)


def timing_rows(quick):
    """(label, X, y, make(library, device), sklearn's name, kind) of the table."""
    rows = []
    n_moons = 200 if quick else 1000
    X, y = make_moons(n_moons, noise=0.2, random_state=0)
    n_big = 400 if quick else 50_000
    Xb, yb = make_classification(
        n_big, 50, n_informative=20, n_classes=5, random_state=0
    )
    epochs = 3 if quick else 50
    big_epochs = 1 if quick else 5

    def mlp(hidden, batch, epochs):
        fixed = dict(
            hidden_layer_sizes=hidden,
            solver="adam",
            learning_rate_init=1e-3,
            batch_size=batch,
            **fixed_epochs(epochs),
        )

        def make(library, device):
            if library == "sklearn":
                return MLPClassifier(**fixed)
            return TorchMLPClassifier(device=device, **fixed)

        return make

    rows.append(
        (
            f"fit: moons {n_moons} x 2, 1x100, batch 200, {epochs} epochs",
            scaled(X),
            y,
            mlp((100,), 200, epochs),
            "MLPClassifier",
        )
    )
    rows.append(
        (
            f"fit: {n_big:,} x 50, 5 classes, 1x100, batch 200, {big_epochs} epochs",
            scaled(Xb),
            yb,
            mlp((100,), 200, big_epochs),
            "MLPClassifier",
        )
    )
    wide, wide_batch = ((16, 16), 200) if quick else ((512, 512), 1000)
    rows.append(
        (
            f"fit: {n_big:,} x 50, 5 classes, {wide[0]}x{wide[1]}, batch "
            f"{wide_batch}, {big_epochs} epochs",
            scaled(Xb),
            yb,
            mlp(wide, wide_batch, big_epochs),
            "MLPClassifier",
        )
    )
    name, Xs, ys, grid, search_epochs = search_problem(quick)
    cv = 2 if quick else 3
    n_candidates = math.prod(len(v) for v in grid.values())

    def make_search(library, device, n_jobs=1):
        options = dict(cv=cv, refit=False)
        if library == "sklearn":
            estimator = MLPClassifier(**fixed_epochs(search_epochs))
            return GridSearchCV(estimator, grid, n_jobs=n_jobs, **options)
        estimator = TorchMLPClassifier(device=device, **fixed_epochs(search_epochs))
        return BatchedGridSearchCV(estimator, grid, **options)

    rows.append(
        (
            f"search: {name}, {n_candidates} candidates x {cv} folds, "
            f"{search_epochs} epochs",
            Xs,
            ys,
            make_search,
            "GridSearchCV(n_jobs=1)",
        )
    )
    return rows


def check_timing(ctx):
    """Single fits and batched searches, CPU against CUDA, beside scikit-learn."""
    repeats = 1 if ctx.quick else 3
    cuda = cuda_missing() if ctx.on_cuda else f"this run's device is {ctx.device}"
    lines = []
    if cuda is None:
        # The first CUDA fit pays for the context, cuBLAS and kernel loads.
        X, y = moons(200)
        started = time.perf_counter()
        with quiet():
            TorchMLPClassifier(
                hidden_layer_sizes=(8,), max_iter=2, device=ctx.device
            ).fit(X, y)
        lines.append(f"first CUDA fit (warm-up) {time.perf_counter() - started:.2f} s")
    for label, X, y, make, sklearn_name in timing_rows(ctx.quick):
        if ctx.left() < 20:
            ctx.timings.append((label, None, None, None, "time budget spent"))
            continue
        # A search is long enough to time once.
        n = 1 if label.startswith("search") else repeats
        cpu = _median_time(lambda m=make: m("skorchlite", "cpu"), X, y, n, "cpu")
        gpu = None
        if cuda is None:
            gpu = _median_time(
                lambda m=make: m("skorchlite", ctx.device), X, y, n, ctx.device
            )
        theirs = _median_time(lambda m=make: m("sklearn", None), X, y, n, "cpu")
        extra = ""
        if label.startswith("search") and not ctx.quick:
            parallel = _median_time(
                lambda m=make: m("sklearn", None, n_jobs=-1), X, y, 1, "cpu"
            )
            extra = f"; GridSearchCV(n_jobs=-1) {parallel:.2f} s"
        ctx.timings.append((label, cpu, gpu, theirs, f"{sklearn_name}{extra}"))
    shape = (60, 200, 64, 100)  # the batched digits search's first layer
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).removeprefix("torch.")
        iterations, warmup = (2, 1) if ctx.quick else (100, 10)
        flops = {"CPU": bmm_gflops(shape, dtype, iterations, warmup)}
        if cuda is None:
            flops["CUDA"] = bmm_gflops(shape, dtype, 100, device=ctx.device)
        lines.append(
            f"bmm {shape} {name}: "
            + ", ".join(f"{k} {v:.0f} GFLOPS" for k, v in flops.items())
        )
    ctx.notes.extend(lines)
    done = [t for t in ctx.timings if t[1] is not None]
    suffix = "" if cuda is None else f"; CUDA column skipped: {cuda}"
    return f"{len(done)} of {len(ctx.timings)} rows timed{suffix}"


# ------------------------------------------------------------------ running

# The quick in-process checks first, then the suite's tests, then timing, each
# within what is left of the budget.
CHECKS = [
    ("cuda", check_cuda),
    ("fit/predict", check_fit_predict),
    ("partial_fit", check_partial_fit),
    ("training options", check_training_options),
    ("pickle", check_persistence),
    ("skops", check_skops),
    ("CPU-only load", check_cpu_only_load),
    ("batched search", check_batched_search),
    ("own module", check_own_module),
    ("device tests", check_device_tests),
    ("timing", check_timing),
]
#: Checks that run without the device (their device parts skip).
WITHOUT_DEVICE = {"timing"}


def run_check(ctx, name, function, missing):
    started = time.perf_counter()
    trace = ""
    if missing and name not in WITHOUT_DEVICE:
        status, detail = "SKIP", missing
    elif ctx.left() < 10:
        status, detail = "SKIP", f"the time budget ({ctx.budget:.0f} s) is spent"
    else:
        try:
            status, detail = "PASS", function(ctx)
        except Skip as exc:
            status, detail = "SKIP", str(exc)
        except Exception as exc:
            status = "FAIL"
            detail = f"{type(exc).__name__}: {exc}".strip()
            trace = traceback.format_exc()
    record(ctx, Result(name, status, detail, time.perf_counter() - started, trace))


def record(ctx, result):
    """Keep ``result`` and print its line."""
    ctx.results.append(result)
    first = result.detail.splitlines()[0] if result.detail else ""
    print(f"{result.status}  {result.name}: {first} ({result.seconds:.1f} s)")
    sys.stdout.flush()


def report(ctx, command):
    """The markdown report of what has run so far."""
    lines = [
        "# GPU check",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}.",
        "",
        f"GPU: {cuda_description()}.",
    ]
    smi = nvidia_smi()
    if smi:
        lines += ["", f"nvidia-smi: {smi}"]
    lines += [
        "",
        f"Device of this run: `{ctx.device}`; {time.perf_counter() - ctx.started:.0f}"
        f" s so far, budget {ctx.budget:.0f} s.",
        "",
        "| check | result | seconds | detail |",
        "|---|---|---|---|",
    ]
    for r in ctx.results:
        detail = " ".join(r.detail.split()).replace("|", "\\|")
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {detail} |")
    if ctx.timings:
        lines += [
            "",
            "## Timing",
            "",
            "Median wall seconds of fits (or of a whole search) in this process, "
            "after a warm-up fit on CUDA; float32 data, Adam; `-` where not run.",
            "",
            "| work | skorchlite CPU | skorchlite CUDA | CUDA speed-up "
            "| scikit-learn | scikit-learn runs |",
            "|---|---|---|---|---|---|",
        ]
        for label, cpu, gpu, theirs, what in ctx.timings:

            def cell(value):
                return "-" if value is None else f"{value:.2f}"

            ratio = "-" if cpu is None or gpu is None else f"{cpu / gpu:.1f}x"
            lines.append(
                f"| {label} | {cell(cpu)} | {cell(gpu)} | {ratio} | {cell(theirs)} "
                f"| {what} |"
            )
    if ctx.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in ctx.notes)]
    failures = [r for r in ctx.results if r.trace]
    if failures:
        lines += ["", "## Failures"]
        for r in failures:
            lines += ["", f"### {r.name}", "", "```", r.trace.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="default: cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument(
        "--require-cuda",
        action="store_true",
        help="a missing GPU is a failure (exit 1), not a skip",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of the report (default: $OUT, else a new temporary folder)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=270.0,
        help="seconds; checks that would start later are skipped (default 270)",
    )
    parser.add_argument(
        "--tests",
        nargs="*",
        default=None,
        help="pytest node ids of the device tests (default: DEVICE_TESTS)",
    )
    args = parser.parse_args(argv)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    out = out or Path(tempfile.mkdtemp(prefix="skorchlite-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/gpu_check.py", *argv])
    print(f"GPU: {cuda_description()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="skorchlite-gpu-work-") as work:
        ctx = Context(
            device=args.device,
            quick=args.quick,
            out=out,
            work=Path(work),
            tests=DEVICE_TESTS if args.tests is None else args.tests,
            budget=args.budget,
        )
        missing = cuda_missing() if ctx.on_cuda else None
        if missing and args.require_cuda:
            record(ctx, Result("cuda", "FAIL", f"--require-cuda: {missing}", 0.0))
        path = out / "gpu_check.md"
        for name, function in CHECKS:
            if missing and args.require_cuda and name == "cuda":
                continue
            run_check(ctx, name, function, missing)
            path.write_text(report(ctx, command), encoding="utf-8")
    counts = {s: sum(r.status == s for r in ctx.results) for s in ("PASS", "FAIL")}
    counts["SKIP"] = sum(r.status == "SKIP" for r in ctx.results)
    print()
    print(report(ctx, command).split("\n## Failures")[0])
    print(
        f"gpu_check: {counts['PASS']} PASS, {counts['FAIL']} FAIL, "
        f"{counts['SKIP']} SKIP in {time.perf_counter() - ctx.started:.0f} s; "
        f"report: {path}",
        flush=True,
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
