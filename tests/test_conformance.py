"""Registry conformance: every entry of every registry keeps the same promises.

Each test below is parametrized over the registries' keys (``ids`` are the
entries' names), so a new solver, activation or target is tested the day it is
registered, without anyone adding it to a list:

1. state round-trips: pickle, ``skorchlite.save``/``load`` and ``deepcopy``
   keep everything training needs (a solver that forgets its optimizer's state,
   e.g. Adam's step counts, continues differently after a copy);
2. stacked fit = single fit: ``BatchedGridSearchCV`` trains every candidate of
   a stochastic solver batched, with ``GridSearchCV``'s scores; a solver
   without stacked update falls back with a reason naming it;
3. ONNX = predict: ``export_onnx`` run by onnxruntime gives ``predict`` and
   ``predict_proba``;
4. no heavy import (``torch._dynamo``, sympy) on the first fit of a process;
5. the docstrings' option lists are the registries' keys.

A target needs data of its kind: :data:`TARGET_CASES` holds one or more cases
per target, and :func:`test_every_target_has_a_case` fails, by name, for a
target that has none yet.

Tolerances are chosen per check and justified where they are used. Every fit
runs a few epochs only (``max_iter`` 3-4, ConvergenceWarning ignored), so no
test depends on the epoch at which an optimizer converges.
"""

import copy
import io
import json
import os
import pickle
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skorchlite
from skorchlite import TorchMLPClassifier, TorchMLPRegressor

# The registries: the one place that says where they live.
from skorchlite._base import fitted_target
from skorchlite._engine.activations import ACTIVATIONS
from skorchlite._engine.solvers import SOLVERS
from skorchlite._targets import TARGETS
from skorchlite.model_selection import BatchedGridSearchCV


def is_stochastic(solver):
    """Whether ``solver`` has ``partial_fit`` (lbfgs has not)."""
    return SOLVERS[solver].partial_fit_error() is None


def fitted_target_name(estimator):
    """The ``TARGETS`` key a fitted estimator trained for."""
    return fitted_target(estimator).name


# ----------------------------------------------------------------------------

pytestmark = pytest.mark.filterwarnings(
    # A few epochs on purpose: no test waits for an optimizer to converge.
    "ignore::sklearn.exceptions.ConvergenceWarning"
)

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = {"classifier": TorchMLPClassifier, "regressor": TorchMLPRegressor}
STOCHASTIC = [name for name in SOLVERS if is_stochastic(name)]
STACKABLE = [name for name in SOLVERS if SOLVERS[name].stack_error() is None]
FULL_BATCH = [name for name in SOLVERS if name not in STACKABLE]
# The entries the per-target tests pair every target with.
ONE_SOLVER = STOCHASTIC[0]
ONE_ACTIVATION = "relu" if "relu" in ACTIVATIONS else next(iter(ACTIVATIONS))

# Tiny fits: 48 rows, 4 features, one hidden layer of 4, 3 batches an epoch.
BASE = {
    "hidden_layer_sizes": (4,),
    "max_iter": 3,
    "batch_size": 16,
    "learning_rate_init": 0.01,
    "random_state": 0,
}


@dataclass
class Case:
    """Data of one kind of ``y``, and the estimator that fits it."""

    target: str  # a TARGETS key
    estimator: str  # an ESTIMATORS key
    X: np.ndarray
    y: np.ndarray
    params: dict = field(default_factory=dict)

    def make(self, **params):
        return ESTIMATORS[self.estimator](**{**BASE, **self.params, **params})


def _target_cases():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((48, 4))  # float64: the estimators train in float64
    scores = X @ rng.standard_normal((4, 3)) + 0.3 * rng.standard_normal((48, 3))
    # Labels that are not 0..K-1, as a user's are.
    binary = np.array(["no", "yes"])[(scores[:, 0] > 0).astype(int)]
    multiclass = np.array([3, 7, 11])[scores.argmax(axis=1)]
    multilabel = (scores > 0).astype(int)
    counts = rng.poisson(np.exp(0.5 * scores[:, 0])).astype(float)
    return {
        "binary": Case("binary", "classifier", X, binary),
        "multiclass": Case("multiclass", "classifier", X, multiclass),
        "multilabel-indicator": Case(
            "multilabel-indicator", "classifier", X, multilabel
        ),
        "continuous": Case("continuous", "regressor", X, scores[:, 0]),
        "continuous-multioutput": Case("continuous", "regressor", X, scores[:, :2]),
        "continuous-poisson": Case(
            "continuous", "regressor", X, counts, {"loss": "poisson"}
        ),
    }


#: Cases by name; each says which TARGETS key it exercises.
TARGET_CASES = _target_cases()
#: The case the per-solver and per-activation tests use.
SOLVER_CASE = "binary"
OTHER_CASES = [name for name in TARGET_CASES if name != SOLVER_CASE]


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_target_has_a_case(target):
    cases = [name for name, case in TARGET_CASES.items() if case.target == target]
    assert cases, (
        f"target {target!r} has no data in TARGET_CASES: add a case of its kind "
        "so that the conformance tests cover it"
    )


@pytest.mark.parametrize("case", list(TARGET_CASES))
def test_each_case_trains_the_target_it_names(case):
    case = TARGET_CASES[case]
    assert case.target in TARGETS, f"{case.target!r} is not a TARGETS key"
    estimator = _fit(case.make(), case.X, case.y)
    assert fitted_target_name(estimator) == case.target


# ------------------------------------------------------ 1. state round trips


def _copy(estimator, how):
    if how == "pickle":
        return pickle.loads(pickle.dumps(estimator))
    if how == "deepcopy":
        return copy.deepcopy(estimator)
    pytest.importorskip("skops.io", reason="skorchlite.save and load need skops")
    buffer = io.BytesIO()
    skorchlite.save(estimator, buffer)
    buffer.seek(0)
    return skorchlite.load(buffer)


COPIES = ["pickle", "skops", "deepcopy"]


def _assert_same_weights(copied, original, rtol):
    for name in ("coefs_", "intercepts_"):
        for i, (a, b) in enumerate(
            zip(getattr(copied, name), getattr(original, name), strict=True)
        ):
            assert a.dtype == b.dtype, f"{name}[{i}]"
            assert_allclose(a, b, rtol=rtol, atol=0, err_msg=f"{name}[{i}]")


STATE_CASES = [(solver, SOLVER_CASE) for solver in STOCHASTIC] + [
    (ONE_SOLVER, case) for case in OTHER_CASES
]


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize(
    "solver, case", STATE_CASES, ids=[f"{s}-{c}" for s, c in STATE_CASES]
)
def test_a_copy_continues_training_as_the_original(solver, case, how):
    case = TARGET_CASES[case]
    original = _fit(case.make(solver=solver), case.X, case.y)
    copied = _copy(original, how)
    assert copied is not original
    for estimator in (original, copied):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.partial_fit(case.X, case.y)
    # The copy and the original run the same arithmetic on the same state: the
    # results agree to the last bit, up to a BLAS kernel that may round
    # differently on a differently aligned buffer (1e-12). A state the copy
    # lost (Adam's step count restarting its bias correction, SGD's momentum
    # buffer) moves some weights by up to ~30% of themselves in that one
    # epoch (measured with the optimizer's state cleared on the copy).
    _assert_same_weights(copied, original, rtol=1e-12)
    assert copied.t_ == original.t_
    assert copied.n_iter_ == original.n_iter_
    assert_allclose(copied.loss_curve_, original.loss_curve_, rtol=1e-12, atol=0)
    assert len(copied.loss_curve_) == BASE["max_iter"] + 1


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("solver", FULL_BATCH)
def test_a_copy_of_a_full_batch_fit_predicts_as_the_original(solver, how):
    case = TARGET_CASES[SOLVER_CASE]
    original = _fit(case.make(solver=solver), case.X, case.y)
    copied = _copy(original, how)
    assert not hasattr(copied, "partial_fit")
    _assert_same_weights(copied, original, rtol=0)  # nothing computed: exact
    assert_array_equal(copied.predict(case.X), original.predict(case.X))
    assert_array_equal(copied.predict_proba(case.X), original.predict_proba(case.X))
    assert copied.loss_ == original.loss_
    assert copied.n_iter_ == original.n_iter_


# --------------------------------------------- 2. stacked fit = single fit


def _continuous_score(estimator, X, y):
    """Classifiers: minus the Brier score, which every probability moves
    (accuracy would hide small differences); regressors: R^2."""
    if not hasattr(estimator, "predict_proba"):
        return estimator.score(X, y)
    proba = estimator.predict_proba(X)
    if proba.shape != np.shape(y):  # binary / multiclass: one-hot y
        y = (np.asarray(y)[:, None] == estimator.classes_).astype(float)
    return -np.mean((proba - y) ** 2)


GRID = {"learning_rate_init": [0.01, 0.03]}
N_FITS = 2 * 2  # candidates x folds


def _searches(estimator, X, y, capsys):
    kwargs = dict(cv=2, refit=False, scoring=_continuous_score)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = GridSearchCV(clone(estimator), GRID, **kwargs).fit(X, y)
        capsys.readouterr()
        batched = BatchedGridSearchCV(clone(estimator), GRID, verbose=1, **kwargs)
        batched.fit(X, y)
    reasons = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("Ordinary fits")
    ]
    return plain, batched, reasons


def _assert_same_scores(plain, batched):
    # Both train in float64 through the same dozen steps; the stacked products
    # and updates only sum in another order: the scores differed by <= 2e-16
    # here. 1e-9 leaves room for other kernels' rounding, and is tighter than
    # 1e-6 on purpose: on these fits adamw's scores differ from adam's by only
    # ~5e-7 (alpha=1e-4), so 1e-6 would not see a stacked AdamW that forgot
    # its decoupled decay.
    assert batched.cv_results_["params"] == plain.cv_results_["params"]
    assert_allclose(
        batched.cv_results_["mean_test_score"],
        plain.cv_results_["mean_test_score"],
        rtol=1e-9,
        atol=1e-12,  # R^2 near 0
    )


STACKED_CASES = [
    (solver, activation, SOLVER_CASE)
    for solver in STACKABLE
    for activation in ACTIVATIONS
] + [(ONE_SOLVER, ONE_ACTIVATION, case) for case in OTHER_CASES]


@pytest.mark.parametrize(
    "solver, activation, case",
    STACKED_CASES,
    ids=["-".join(entries) for entries in STACKED_CASES],
)
def test_stacked_fit_equals_single_fit(solver, activation, case, capsys):
    case = TARGET_CASES[case]
    estimator = case.make(solver=solver, activation=activation)
    plain, batched, reasons = _searches(estimator, case.X, case.y, capsys)
    _assert_same_scores(plain, batched)
    # Every candidate trained stacked: an entry without a stacked update (or
    # closed-form derivative) fails here by name.
    assert batched.n_batched_fits_ == N_FITS, (
        f"solver={solver!r}, activation={activation!r} on {case.target!r}: "
        f"{batched.n_batched_fits_} of {N_FITS} fits batched; {reasons}"
    )
    assert not reasons


@pytest.mark.parametrize("solver", FULL_BATCH)
def test_full_batch_solvers_fall_back_with_a_reason(solver, capsys):
    case = TARGET_CASES[SOLVER_CASE]
    estimator = case.make(solver=solver)
    plain, batched, reasons = _searches(estimator, case.X, case.y, capsys)
    _assert_same_scores(plain, batched)
    assert batched.n_batched_fits_ == 0
    assert len(reasons) == 1, reasons
    assert f"solver={solver!r}" in reasons[0], reasons


# ------------------------------------------------------- 3. ONNX = predict


ONNX_CASES = [(activation, SOLVER_CASE) for activation in ACTIVATIONS] + [
    (ONE_ACTIVATION, case) for case in OTHER_CASES
]


@pytest.mark.parametrize(
    "activation, case", ONNX_CASES, ids=[f"{a}-{c}" for a, c in ONNX_CASES]
)
def test_onnx_outputs_equal_predict(activation, case):
    pytest.importorskip("onnx", reason="export_onnx needs the onnx extra")
    pytest.importorskip("skl2onnx", reason="export_onnx needs the onnx extra")
    ort = pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime")
    case = TARGET_CASES[case]
    estimator = _fit(case.make(activation=activation), case.X, case.y)
    session = ort.InferenceSession(
        skorchlite.export_onnx(estimator).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    X32 = case.X.astype(np.float32)
    outputs = {
        meta.name: value
        for meta, value in zip(
            session.get_outputs(), session.run(None, {"X": X32}), strict=True
        )
    }
    # The graph computes in float32: values agree to float32's rounding over a
    # few layers (~1e-6); 1e-5 as in tests/test_onnx.py.
    if case.estimator == "regressor":
        predicted = estimator.predict(case.X)
        assert outputs["predictions"].shape == predicted.shape
        assert_allclose(outputs["predictions"], predicted, rtol=1e-5, atol=1e-5)
        return
    proba = estimator.predict_proba(case.X)
    assert outputs["probabilities"].shape == proba.shape
    assert_allclose(outputs["probabilities"], proba, rtol=0, atol=1e-5)
    # float32 may flip a label whose probabilities (nearly) tie; the others
    # must be predict's.
    if case.target == "multilabel-indicator":
        clear = (np.abs(proba - 0.5) > 1e-4).all(axis=1)
    else:
        top = np.sort(proba, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-4
    predicted = estimator.predict(case.X)
    assert outputs["label"].shape == predicted.shape
    assert clear.sum() > len(clear) // 2
    assert_array_equal(outputs["label"][clear], predicted[clear])


# ------------------------------------------ 4. no heavy import on a first fit

HEAVY = ("sympy", "mpmath", "torch._dynamo", "torch._inductor")

# Imports skorchlite once, then forks one child per entry: each child makes the
# first fit of a process that imported skorchlite and nothing else, so an entry
# that pulls in torch._dynamo is neither hidden behind, nor blamed for, another
# (forking before torch computes anything is safe: no OpenMP threads yet).
# Where there is no fork (Windows), the entries run one after the other in the
# process: a later entry then also reports what an earlier one imported (never
# a false pass). Writes {entry: [heavy modules loaded after its first fit]}.
FIRST_FIT_CHILD = r"""
import json, os, sys, traceback, warnings

entries, heavy, path = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]

def first_fit(entry):
    from skorchlite import TorchMLPClassifier, TorchMLPRegressor
    import numpy as np

    make = {"classifier": TorchMLPClassifier, "regressor": TorchMLPRegressor}
    X, y = np.array(entry["X"]), np.array(entry["y"])
    warnings.simplefilter("ignore")
    estimator = make[entry["estimator"]](**entry["params"]).fit(X, y)
    estimator.predict(X)
    return sorted(set(heavy) & set(sys.modules))

def forked(entry):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = first_fit(entry)
        except BaseException as exc:
            result = f"the fit raised {type(exc).__name__}: {exc}"
        with os.fdopen(write, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as source:
        text = source.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else "the child process died"

try:
    import skorchlite
    report = {"import skorchlite": sorted(set(heavy) & set(sys.modules))}
    for name, entry in entries.items():
        report[name] = forked(entry) if hasattr(os, "fork") else first_fit(entry)
except BaseException:
    report = {"child failed": traceback.format_exc()}
with open(path + ".tmp", "w") as out:
    json.dump(report, out)
os.replace(path + ".tmp", path)
"""


def _first_fit_entries():
    entries = {}

    def add(name, case, **params):
        case = TARGET_CASES[case]
        entries[name] = {
            "estimator": case.estimator,
            "params": {**BASE, **case.params, "device": "cpu", **params},
            "X": case.X.tolist(),
            "y": case.y.tolist(),
        }

    for solver in SOLVERS:
        add(f"solver-{solver}", SOLVER_CASE, solver=solver)
    for activation in ACTIVATIONS:
        add(f"activation-{activation}", SOLVER_CASE, activation=activation)
    for case in OTHER_CASES:
        add(f"target-{case}", case)
    return entries


FIRST_FIT_ENTRIES = _first_fit_entries()


@pytest.fixture(scope="module", autouse=True)
def _first_fit_child(request, tmp_path_factory):
    """Start the first-fit child when this module's first test runs, so that
    it (~5 s, most of it importing torch) overlaps the other tests instead of
    a worker waiting for it. Under pytest-xdist the first worker here starts
    it, and the others read its report from the run's shared temporary
    directory. Yields the report's path and the child (or None)."""
    items = request.session.items
    if not any("first_fits" in getattr(item, "fixturenames", ()) for item in items):
        yield None, None  # no first-fit test selected
        return
    if hasattr(request.config, "workerinput"):  # an xdist worker
        folder = tmp_path_factory.getbasetemp().parent
    else:
        folder = tmp_path_factory.mktemp("first_fits")
    report = folder / "conformance_first_fits.json"
    try:
        claim = os.open(folder / "conformance_first_fits.claim", os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        yield report, None  # another worker runs it
        return
    os.close(claim)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    arguments = [json.dumps(FIRST_FIT_ENTRIES), json.dumps(HEAVY), str(report)]
    child = subprocess.Popen(
        [sys.executable, "-c", FIRST_FIT_CHILD, *arguments],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    yield report, child
    try:
        child.wait(timeout=300)  # leave nothing running
    except subprocess.TimeoutExpired:
        child.kill()
        raise


@pytest.fixture(scope="module")
def first_fits(_first_fit_child):
    """{entry: heavy modules in sys.modules after a process's first fit}."""
    path, child = _first_fit_child
    if child is not None:
        child.wait(timeout=300)
    deadline = time.monotonic() + 300
    while not path.is_file():
        assert time.monotonic() < deadline, "the first-fit child wrote no report"
        time.sleep(0.05)
    report = json.loads(path.read_text())
    assert "child failed" not in report, report["child failed"]
    return report


@pytest.mark.parametrize("entry", list(FIRST_FIT_ENTRIES))
def test_first_fit_imports_nothing_heavy(entry, first_fits):
    assert first_fits["import skorchlite"] == [], "import skorchlite itself"
    # [] is the only pass: a string is a fit that raised, or a child that died.
    assert first_fits[entry] == [], (
        f"the first fit of {entry} imports {first_fits[entry]} (1-2 s, and an "
        "interrupt there breaks the process)"
    )


# ------------------------------------------- 5. docstrings' option lists


def _documented_options(doc, parameter):
    """The quoted names of ``parameter : {...}`` in a numpydoc docstring (the
    braces may wrap onto further lines)."""
    match = re.search(rf"^\s*{parameter} : \{{([^}}]*)\}}", doc, re.MULTILINE)
    assert match, f"no '{parameter} : {{...}}' line"
    return re.findall(r'"([^"]+)"', match.group(1))


REGISTRIES = {"solver": SOLVERS, "activation": ACTIVATIONS}


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("parameter", list(REGISTRIES))
def test_documented_options_are_the_registry(parameter, estimator):
    documented = _documented_options(ESTIMATORS[estimator].__doc__, parameter)
    assert len(documented) == len(set(documented)), documented
    assert set(documented) == set(REGISTRIES[parameter])
