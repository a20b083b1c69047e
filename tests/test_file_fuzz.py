"""Property: a mutated model file loads and predicts, or raises ValueError.

Fitted models (a binary and a multiclass classifier, a regressor, and a
Pipeline of StandardScaler and a classifier) are saved with
:func:`skorchlite.save`; each example mutates one file: values of
``schema.json`` (replaced, copied over other nodes, fields deleted or swapped
between nodes, such as an array node made a JSON one), the schema's node
structure as an attacker would change it (a node's loader or type, among them
names reached through trusted modules; a node made a reference to another's
id; an array made a numpy scalar; a ``ConstructorFromReduceNode`` with
fuzzed arguments, among them a chain that runs a shell command; extra keys in
our estimator's state, method names among them), ``.npy`` members (bytes
overwritten, headers rewritten to claim other dtypes and shapes, huge ones and
huge unicode widths included), and the members themselves (swapped,
truncated, removed, added, compressed) or raw bytes of the archive.

Each file is loaded by one worker process that runs under an address-space
limit (``RLIMIT_AS``) of 512 MiB above what it uses once torch, skops and the
models are loaded, so an allocation the file's size does not justify fails
there. The worker reports one JSON line a file; a crash (a signal, a
``MemoryError``, any exception but ``ValueError``) fails the example and names
the mutation. A load must raise ``ValueError`` with a message, or give a model
whose ``predict`` (and ``predict_proba``) run with the right number of rows;
a mutated weight gives another valid model (or, if it overflows, a predict
that says so). When the loaded object's state equals the original's
(compared value by value), its predictions must be the original's.

Schema mutations target our estimator's subtree in three of four Pipeline
examples: what scikit-learn's own objects do with crafted values (a
StandardScaler's ``mean_`` of the wrong length) is scikit-learn's contract, and
errors they raise at predict are recorded (``sklearn-predict-error``) rather
than failed, provided they are ``ValueError``s.

``SKORCHLITE_HYPOTHESIS_SCALE=10`` runs ten times the examples; run with
``-s`` to print the outcomes per mutation kind.
"""

import collections
import copy
import io
import json
import os
import select
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format
from sklearn.datasets import make_blobs, make_moons, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skops_nodes import CHAIN_NAMES, command_node, json_node, reduce_node

from skorchlite import TorchMLPClassifier, TorchMLPRegressor, save

pytest.importorskip("skops.io", reason="save and load need skops")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the memory bound uses RLIMIT_AS"
)

SCALE = float(os.environ.get("SKORCHLITE_HYPOTHESIS_SCALE", "1"))
OUR_CLASSES = ("TorchMLPClassifier", "TorchMLPRegressor")
OUTCOMES = collections.Counter()

WORKER = textwrap.dedent(
    """
    import hashlib, json, resource, sys, traceback, warnings
    import numpy as np, torch
    import skorchlite

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    def digest(array):
        return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    def canonical(value):
        # Pickle's bytes depend on which equal strings are the same object.
        if isinstance(value, np.ndarray):
            items = value.tolist() if value.dtype.hasobject else value.tobytes()
            return ("ndarray", value.dtype.str, value.shape, canonical(items))
        if isinstance(value, dict):
            return ("dict", [(canonical(k), canonical(v)) for k, v in value.items()])
        if isinstance(value, list | tuple):
            return (type(value).__name__, [canonical(item) for item in value])
        if type(value).__module__.startswith(("sklearn", "skorchlite")):
            return (type(value).__qualname__, canonical(value.__getstate__()))
        return (type(value).__qualname__, repr(value))

    def run(path, x_path):
        try:
            model = skorchlite.load(path)
        except ValueError as exc:
            return {"status": "ValueError", "message": str(exc)}
        X = np.load(x_path)
        state = hashlib.sha256(repr(canonical(model)).encode()).hexdigest()
        reply = {"status": "ok", "state": state}
        for method in ("predict", "predict_proba"):
            if not hasattr(model, method):
                continue
            try:
                out = getattr(model, method)(X)
            except ValueError as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                ours = any("skorchlite" in frame.filename for frame in frames[1:])
                return {**reply, "status": "predict-ValueError", "message": str(exc),
                        "ours": ours}
            reply[method] = [list(np.shape(out)), digest(out)]
        return reply

    def size():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    limited = False
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = run(request["path"], request["X"])
        except BaseException as exc:
            reply = {"status": "crash", "type": type(exc).__name__, "message": str(exc)}
        if not limited:  # after torch, skops and a first load: the baseline
            limit = size() + 512 * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            reply["limit"], limited = limit, True
        print(json.dumps(reply), flush=True)
    """
)


class Worker:
    """One process loading files under the memory bound, restarted after a crash."""

    def __init__(self, directory):
        self.directory, self.process, self.count = directory, None, 0

    def load(self, data, X_path):
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
        self.count += 1
        path = self.directory / f"mutated-{self.count}.skops"
        path.write_bytes(data)
        request = json.dumps({"path": str(path), "X": str(X_path)})
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()
            code = self.process.wait()
            return {"status": "crash", "type": f"exit {code}", "message": str(path)}
        path.unlink()
        return json.loads(line)

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def _models():
    moons, labels = make_moons(40, noise=0.2, random_state=0)
    blobs, classes = make_blobs(40, n_features=3, centers=3, random_state=0)
    X, y = make_regression(40, n_features=3, n_targets=2, random_state=0)
    clf = TorchMLPClassifier((4,), max_iter=3, random_state=0)
    return {
        "binary": (_fit(clf, moons, np.array(["no", "yes"])[labels]), moons),
        "multiclass": (_fit(copy.deepcopy(clf), blobs, classes), blobs),
        "regressor": (
            _fit(TorchMLPRegressor(hidden_layer_sizes=(4,), max_iter=3), X, y / 100),
            X,
        ),
        "pipeline": (
            _fit(make_pipeline(StandardScaler(), copy.deepcopy(clf)), blobs, classes),
            blobs,
        ),
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    worker = Worker(directory)
    files = {}
    for name, (model, X) in _models().items():
        buffer = io.BytesIO()
        save(model, buffer)
        X_path = directory / f"{name}-X.npy"
        np.save(X_path, X)
        reference = worker.load(buffer.getvalue(), X_path)
        assert reference["status"] == "ok", reference
        files[name] = (buffer.getvalue(), X_path, len(X), reference)
    yield worker, files
    worker.close()
    if OUTCOMES:
        print("\nmutated files, outcome per kind:")
        for (kind, outcome), count in sorted(OUTCOMES.items()):
            print(f"  {kind:18} {outcome:22} {count}")


# ------------------------------------------------------------------ mutations

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=5,
)
DTYPES = ["<f8", "<f4", "<f2", "<i8", "|i1", "|b1", "<c16", "<U3", "|S2", "|V8"]
HUGE_DTYPES = ["<U1000000000", "|S4000000000", "|V1000000000", "<U0", "|O"]
SIDES = st.integers(0, 6) | st.sampled_from([2**31, 2**40, 2**62])
SHAPES = st.lists(SIDES, max_size=3).map(tuple)
NAMES = ["x.npy", "x.npz", "x.bin", "x.pkl", "skorchlite.json", "schema.json"]


def _nodes(node, found=None):
    """Every dict and list in the schema, depth first."""
    found = [] if found is None else found
    if isinstance(node, dict | list):
        found.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _nodes(child, found)
    return found


def _slots(node):
    """(container, key) of every value held in a dict or list of the tree."""
    return [
        (parent, key)
        for parent in _nodes(node)
        for key in (parent if isinstance(parent, dict) else range(len(parent)))
    ]


def _mutate_schema(draw, schema, kind):
    root = schema
    ours = [n for n in _nodes(schema) if n.__class__ is dict and n.get("__class__")]
    ours = [n for n in ours if n["__class__"] in OUR_CLASSES]
    if ours[0] is not schema and draw(st.integers(0, 3)) > 0:
        root = ours[0]  # mostly our estimator's state: see the module docstring
    if kind == "json-value":
        leaves = [n for n in _nodes(root) if isinstance(n, dict) and "is_json" in n]
        node = draw(st.sampled_from(leaves))
        node["content"] = json.dumps(draw(JSON_VALUES))
    elif kind == "node-field":
        node = draw(st.sampled_from([n for n in _nodes(root) if isinstance(n, dict)]))
        key = draw(st.sampled_from(sorted(node)))
        if draw(st.booleans()):
            del node[key]
        else:
            nodes = [n for n in _nodes(schema) if isinstance(n, dict)]
            others = [n[key] for n in nodes if key in n]
            node[key] = draw(st.sampled_from(others) | JSON_VALUES)
    elif kind == "subtree-copy":
        parent, key = draw(st.sampled_from(_slots(root)))
        parent[key] = copy.deepcopy(draw(st.sampled_from(_nodes(schema))))
    elif kind == "node-type":
        node = draw(st.sampled_from(_typed(root)))
        field = draw(st.sampled_from(["__loader__", "type"]))
        if field == "__loader__" or draw(st.booleans()):
            node["__loader__"] = draw(st.sampled_from(LOADERS))
        module, name = draw(st.sampled_from(NAMES_TO_TRY)).rsplit(".", 1)
        node.update(__module__=module, __class__=name)
    elif kind == "reference-id":
        node, other = (draw(st.sampled_from(_typed(schema))) for _ in range(2))
        if draw(st.booleans()):
            node["__id__"] = other.get("__id__", draw(st.integers(0, 2**63)))
        else:  # the short reference an attacker would write
            node.clear()
            node["__id__"] = other.get("__id__", 1)
    elif kind == "scalar-node":
        arrays = [n for n in _typed(root) if n["__loader__"] == "NdArrayNode"]
        node = draw(st.sampled_from(arrays or _typed(root)))
        scalar = draw(st.sampled_from(["float64", "int64", "bytes_", "str_", "bool_"]))
        node.update(__module__="numpy", __class__=scalar)
    elif kind == "reduce-arguments":
        parent, key = draw(st.sampled_from(_slots(root)))
        parent[key] = draw(REDUCE_NODES)
    else:  # "extra-state-key"
        ours[0]["content"]["content"][draw(EXTRA_KEYS)] = copy.deepcopy(
            draw(st.sampled_from(_typed(schema)))
        )
        key_types = ours[0]["content"]["key_types"]["content"]
        key_types.append(copy.deepcopy(key_types[0]))
    return json.dumps(schema).encode()


def _typed(node):
    """The schema's nodes (dicts naming a loader)."""
    return [n for n in _nodes(node) if isinstance(n, dict) and "__loader__" in n]


LOADERS = [
    "ObjectNode",
    "TypeNode",
    "FunctionNode",
    "ConstructorFromReduceNode",
    "MethodNode",
    "PartialNode",
    "CachedNode",
    "OperatorFuncNode",
    "RandomStateNode",
    "RandomGeneratorNode",
    "NdArrayNode",
    "DTypeNode",
    "BytesNode",
    "SparseMatrixNode",
    "JsonNode",
    "DictNode",
    "ListNode",
]
NAMES_TO_TRY = [
    "builtins.eval",
    "builtins.list",
    "builtins.str",
    "os.system",
    "numpy.negative",
    "numpy.bytes_",
    "numpy.float64",
    "numpy.random.mtrand.RandomState",
    "sklearn.model_selection._split.np",
    "sklearn.metrics._scorer._check_response_method",
    "sklearn.pipeline.Pipeline",
    "skorchlite._classifier.TorchMLPClassifier",
    "torch.device",
]
MARKER = f"/tmp/skorchlite-fuzz-command-ran-{os.getpid()}"
REDUCE_NODES = st.one_of(
    st.lists(JSON_VALUES, max_size=3).map(
        lambda args: reduce_node("torch", "device", *map(json_node, args))
    ),
    st.just(None).map(lambda _: command_node(f"touch {MARKER}")),
)
EXTRA_KEYS = st.sampled_from(
    ["predict", "predict_proba", "_validate_params", "__class__", "fit", "coefs_"]
) | st.text(max_size=8)


def _rewrite_npy(draw, content, kind):
    stream = io.BytesIO(content)
    npy_format.read_magic(stream)
    shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
    body = bytearray(content[stream.tell() :])
    if kind == "npy-bytes":
        fill = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f\xf0", b"\x7f\xf8"]))
        for _ in range(draw(st.integers(1, 4))):
            if body:
                start = draw(st.integers(0, len(body) - 1))
                body[start : start + len(fill)] = fill
        return content[: stream.tell()] + bytes(body)
    header = {"descr": dtype.str, "fortran_order": fortran, "shape": shape}
    if draw(st.booleans()):
        header["descr"] = draw(st.sampled_from(DTYPES) | st.sampled_from(HUGE_DTYPES))
    if draw(st.booleans()):
        header["shape"] = draw(SHAPES)
    if draw(st.integers(0, 4)) == 0:
        header["fortran_order"] = not fortran
    out = io.BytesIO()
    npy_format.write_array_header_1_0(out, header)
    return out.getvalue() + bytes(body)


KINDS = [
    "json-value",
    "node-field",
    "subtree-copy",
    "node-type",
    "reference-id",
    "scalar-node",
    "reduce-arguments",
    "extra-state-key",
    "npy-bytes",
    "npy-header",
    "npy-header",  # twice: the headers are where memory is claimed
    "member-swap",
    "member-truncate",
    "member-remove",
    "member-add",
    "raw-bytes",
    "recompress",
]


SCHEMA_KINDS = KINDS[:8]


def _mutate(draw, data):
    """One mutation of the archive ``data``: its kind and the new bytes."""
    kind = draw(st.sampled_from(KINDS))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    names = [name for name, _ in members]
    arrays = [i for i, name in enumerate(names) if name.endswith(".npy")]
    index = draw(st.sampled_from(range(len(members))))
    name, content = members[index]
    if kind in SCHEMA_KINDS:
        index = names.index("schema.json")
        schema = json.loads(members[index][1])
        members[index] = ("schema.json", _mutate_schema(draw, schema, kind))
    elif kind in ("npy-bytes", "npy-header"):
        index = draw(st.sampled_from(arrays))
        name, content = members[index]
        members[index] = (name, _rewrite_npy(draw, content, kind))
    elif kind == "member-swap":
        other = draw(st.sampled_from(range(len(members))))
        members[index] = (name, members[other][1])
        members[other] = (members[other][0], content)
    elif kind == "member-truncate":
        members[index] = (name, content[: draw(st.integers(0, len(content)))])
    elif kind == "member-remove":
        del members[index]
    elif kind == "member-add":
        new = draw(st.sampled_from([*NAMES, name]))
        members.append((new, draw(st.binary(max_size=64) | st.just(content))))
    elif kind == "raw-bytes":
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return kind, bytes(raw)
    compression = zipfile.ZIP_DEFLATED if kind == "recompress" else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate member names
        with zipfile.ZipFile(buffer, "w", compression) as zf:
            for member, content in members:
                zf.writestr(member, content)
    return kind, buffer.getvalue()


# ---------------------------------------------------------------------- test


@pytest.mark.parametrize("model", ["binary", "multiclass", "regressor", "pipeline"])
@settings(
    max_examples=max(1, int(40 * SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_mutated_file_loads_and_predicts_or_raises_value_error(setup, model, data):
    worker, files = setup
    original, X_path, n_samples, reference = files[model]
    kind, mutated = _mutate(data.draw, original)
    reply = worker.load(mutated, X_path)
    assert not os.path.exists(MARKER), (kind, "a command from the file ran")
    outcome = reply["status"]
    if outcome == "predict-ValueError" and not reply["ours"]:
        outcome = "sklearn-predict-error"
    elif outcome == "predict-ValueError" and "overflow" in reply["message"]:
        outcome = "predict-overflow"  # weights of 1e307: predict says so
    elif outcome == "predict-ValueError" and "Input X contains" in reply["message"]:
        outcome = "predict-bad-input"  # a crafted scaler's NaN, refused by us
    if outcome == "ok" and reply["state"] == reference["state"]:
        outcome = "ok-unchanged"
    OUTCOMES[kind, outcome] += 1
    event(f"{kind}: {outcome}")
    allowed = {"ValueError", "ok", "ok-unchanged", "sklearn-predict-error"}
    assert outcome in allowed | {"predict-overflow", "predict-bad-input"}, (
        kind,
        reply,
    )
    if outcome == "ValueError":
        assert len(reply["message"]) > 20, reply
    if outcome.startswith("ok"):
        for method in ("predict", "predict_proba"):
            if method in reference:
                shape, _ = reply[method]
                assert shape[0] == n_samples and len(shape) <= 2, (kind, reply)
    if outcome == "ok-unchanged":
        for method in ("predict", "predict_proba"):
            if method in reference:
                assert reply[method] == reference[method], (kind, reply)


def test_the_command_the_fuzz_plants_would_run(tmp_path):
    """The fuzz's shell-command node is live: skops trusting the names the
    old load trusted runs it, so the marker check above means something."""
    import skops.io

    marker = tmp_path / "ran"
    schema = {**command_node(f"touch {marker}"), "protocol": 2}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    skops.io.loads(buffer.getvalue(), trusted=CHAIN_NAMES)
    assert marker.exists()
