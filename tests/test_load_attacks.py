"""Files crafted against the skops format, as an attacker would write them.

Each crafted file is loaded in a child process forked from one worker (torch
and skops imported once), under an address-space limit, with its peak
resident memory measured from a reset high-water mark. A load must raise
``ValueError`` naming the problem, or give a model that predicts as the
original; no command may run, nothing may crash, and memory stays within
``MEMORY_MULTIPLE`` times the file's bytes plus ``MEMORY_SLACK``.
"""

import copy
import importlib
import inspect
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skops_nodes import (
    CHAIN_NAMES,
    json_node,
    list_node,
    node,
    os_system_node,
    tuple_node,
)

from skorchlite import TorchMLPClassifier, save
from skorchlite._schema import TRUSTED, scorer_functions

sio = pytest.importorskip("skops.io", reason="save and load need skops")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self"
)

CLASSIFIER = "skorchlite._classifier.TorchMLPClassifier"
#: The bound on a load's peak memory: this times the file's bytes, plus slack.
MEMORY_MULTIPLE = 32
MEMORY_SLACK = 64 * 2**20

WORKER = textwrap.dedent(
    """
    import json, os, resource, sys, warnings
    import numpy as np, torch, skops.io as sio
    import skorchlite

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    def status(field):
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    def load(request):
        with open(request["path"], "rb") as file:
            data = file.read()
        if request["how"] == "skorchlite":
            model = skorchlite.load(io_bytes(data))
        else:  # skops.io.load, trusting what the request names
            model = sio.loads(data, trusted=request["trusted"])
        X = np.load(request["X"])
        reply = {"status": "ok"}
        if hasattr(model, "predict_proba"):
            reply["proba"] = model.predict_proba(X).tolist()
        return reply

    def io_bytes(data):
        import io
        return io.BytesIO(data)

    def child(request, write):
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak resident memory starts from here
        before = status("VmHWM")
        limit = status("VmSize") + 1024 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            reply = load(request)
        except ValueError as exc:
            reply = {"status": "ValueError", "message": str(exc)}
        except BaseException as exc:
            reply = {"status": "crash", "message": f"{type(exc).__name__}: {exc}"}
        reply["peak"] = status("VmHWM") - before
        os.write(write, json.dumps(reply).encode())
        os._exit(0)

    for line in sys.stdin:
        request = json.loads(line)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            child(request, write)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 1 << 20):
            chunks.append(chunk)
        os.close(read)
        _, code = os.waitpid(pid, 0)
        reply = json.loads(b"".join(chunks)) if chunks else {
            "status": "crash", "message": f"exit status {code}"}
        print(json.dumps(reply), flush=True)
    """
)


class _Worker:
    def __init__(self, directory):
        self.directory, self.count = directory, 0
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    def load(self, data, X, how="skorchlite", trusted=()):
        self.count += 1
        path = self.directory / f"crafted-{self.count}.skops"
        path.write_bytes(data)
        X_path = self.directory / f"X-{self.count}.npy"
        np.save(X_path, X)
        request = {"path": str(path), "X": str(X_path), "how": how}
        self.process.stdin.write(json.dumps({**request, "trusted": list(trusted)}))
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        assert reply["status"] != "crash", reply
        assert reply["peak"] <= MEMORY_MULTIPLE * len(data) + MEMORY_SLACK, reply
        return reply

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    worker = _Worker(tmp_path_factory.mktemp("crafted"))
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def model():
    X, y = make_classification(60, 4, random_state=0)
    clf = TorchMLPClassifier(
        (4,),
        max_iter=3,
        random_state=np.random.RandomState(0),
        class_weight={0: 1.0, 1: 2.0},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    return clf, X


# --------------------------------------------------------------- crafting


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _archive(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def _craft(obj, edit):
    """``obj``'s skops file, its schema changed by ``edit(schema)``."""
    members = _members(sio.dumps(obj))
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    return _archive(members), members


def _state(schema):
    """The attribute nodes of the estimator at the schema's root."""
    return schema["content"]["content"]


def _arrays(schema):
    """The weight and bias nodes of the estimator at the schema's root."""
    return _state(schema)["_module_state"]["content"]["arrays"]["content"]


def _assert_refused(reply, *words):
    assert reply["status"] == "ValueError", reply
    for word in words:
        assert word in reply["message"], reply


# ------------------------------------------------------------ code execution


def test_a_command_built_from_trusted_modules_does_not_run(worker, model, tmp_path):
    clf, X = model
    marker = tmp_path / "ran"

    def edit(schema):
        weights = _state(schema)["class_weight"]
        weights["key_types"]["content"][0] = os_system_node()
        # skops pairs the first key with the first key type: os.system(key).
        first, *others = weights["content"].items()
        weights["content"] = {f"touch {marker}": first[1], **dict(others)}

    data, _ = _craft(clf, edit)
    # The command works: skops trusting the modules the old load trusted runs it.
    worker.load(data, X, how="skops", trusted=[*CHAIN_NAMES, CLASSIFIER])
    assert marker.exists()
    marker.unlink()
    _assert_refused(worker.load(data, X))
    assert not marker.exists()


@pytest.fixture(scope="module")
def search(model):
    """A fitted GridSearchCV of our classifier, scored by f1 (a _Scorer)."""
    clf, X = model
    search = GridSearchCV(clone(clf), {"alpha": [1e-4]}, cv=2, scoring="f1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return search.fit(X, clf.predict(X))


def test_a_scorer_whose_metric_is_a_shell_command_is_refused(worker, model, search):
    X = model[1]

    def edit(schema):
        scorer = _state(schema)["scorer_"]["content"]["content"]
        scorer["_score_func"].update(__module__="os", __class__="system")

    data, _ = _craft(search, edit)
    _assert_refused(worker.load(data, X), "os.system")


def test_a_scorer_calling_another_method_is_refused(worker, model, search):
    X = model[1]

    def edit(schema):
        scorer = _state(schema)["scorer_"]["content"]["content"]
        scorer["_response_method"] = json_node("fit")  # estimator.fit(X) on scoring

    data, _ = _craft(search, edit)
    _assert_refused(worker.load(data, X), "_response_method")


@pytest.mark.parametrize(
    "node",
    [
        node("TypeNode", "sklearn.model_selection._split", "np"),
        node("FunctionNode", "sklearn.model_selection._split", "np"),
        node("FunctionNode", "builtins", "eval"),
        node("TypeNode", "builtins", "list"),
        node("ObjectNode", "sklearn.model_selection", "np", content=None),
        node("MethodNode", "builtins", "object", content={}),
        node("PartialNode", "functools", "partial", content={}),
        node("CachedNode", None, None, __id__=1),
        node("OperatorFuncNode", "operator", "attrgetter", attrs=tuple_node()),
        node("BytesNode", "builtins", "bytes", file="x.bin"),
    ],
    ids=lambda node: f"{node['__loader__']}-{node['__class__']}",
)
def test_names_from_modules_and_node_kinds_we_do_not_write_are_refused(
    worker, model, node
):
    clf, X = model

    def edit(schema):
        _state(schema)["verbose"] = copy.deepcopy(node)

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X))


# ------------------------------------------------ default-trusted values


def test_a_random_state_reading_out_of_bounds_is_refused(worker, model):
    clf, X = model

    def edit(schema):
        state = _state(schema)["random_state"]["content"]["content"]
        state["state"]["content"]["pos"] = json_node(10**6)

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X), "RandomState")
    # skops itself builds it; our estimator refuses it.
    reply = worker.load(data, X, how="skops", trusted=[CLASSIFIER])
    _assert_refused(reply, "random_state")


def test_a_numpy_scalar_of_another_dtype_is_refused(worker, model):
    clf, X = model
    scalar = "numpy.bytes_"  # numpy.bytes_(array(10**9)): a gigabyte

    def edit(schema):
        node = _arrays(schema)[0]
        module, name = scalar.rsplit(".", 1)
        node.update(__module__=module, __class__=name)

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X), scalar)

    def as_float(schema):
        _arrays(schema)[0].update(__class__="float64")  # a 2-d array

    data, _ = _craft(clf, as_float)
    _assert_refused(worker.load(data, X), "0-d array")


def test_references_that_expand_are_refused(worker, model):
    """Nested lists referring to each other by id: a few KB for 10**12 leaves."""
    clf, X = model
    levels = [list_node([json_node(0.0)] * 10, __id__=10**9)]
    for level in range(1, 12):
        refs = [{"__id__": 10**9 + level - 1}] * 9
        levels.append(list_node([levels[-1], *refs], __id__=10**9 + level))

    def edit(schema):
        _state(schema)["loss_curve_"] = node(
            "NdArrayNode",
            "numpy",
            "ndarray",
            type="json",
            content=[levels[-1]],
            shape=tuple_node(json_node(1)),
        )

    data, _ = _craft(clf, edit)
    assert len(data) < 200_000
    _assert_refused(worker.load(data, X), "two different nodes")


def test_thousands_of_distinct_names_cost_nothing(worker, model):
    clf, X = model

    def edit(schema):
        names = [node("TypeNode", f"m{i}", f"T{i}") for i in range(20_000)]
        _state(schema)["loss_curve_"] = list_node(names)

    data, _ = _craft(clf, edit)
    reply = worker.load(data, X)
    _assert_refused(reply, "m0.T0")
    assert reply["peak"] < 4 * len(data) + MEMORY_SLACK


@pytest.mark.parametrize("loader", ["JsonNode", "ObjectNode", "TypeNode"])
def test_memory_of_the_largest_files_we_accept_is_bounded(worker, model, loader):
    """The most nodes of each kind a schema may hold (MAX_NODES, 16 MiB)."""
    clf, X = model
    dict_node = node(
        "DictNode", "builtins", "dict", content={}, key_types=list_node([])
    )
    item = {
        "JsonNode": json_node(0.5),
        "ObjectNode": node(
            "ObjectNode", "sklearn.model_selection._split", "KFold", content=dict_node
        ),
        "TypeNode": node("TypeNode", "builtins", "str"),
    }[loader]
    count = 90_000 if loader != "ObjectNode" else 30_000

    def edit(schema):
        _state(schema)["loss_curve_"] = list_node([item] * count)

    data, _ = _craft(clf, edit)
    reply = worker.load(data, X)  # the peak memory bound is in worker.load
    assert reply["status"] in ("ok", "ValueError")


# ------------------------------------------------------ the state's keys


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("predict", node("FunctionNode", "numpy", "negative")),
        ("_validate_params", node("TypeNode", "builtins", "list")),
        ("_check_finite_weights", json_node(None)),
        ("no_such_attribute_", json_node(1)),
    ],
)
def test_state_keys_that_would_replace_methods_are_refused(worker, model, key, value):
    clf, X = model

    def edit(schema):
        state = _state(schema)
        state[key] = copy.deepcopy(value)
        state_keys = schema["content"]["key_types"]["content"]
        state_keys.append(copy.deepcopy(state_keys[0]))

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X))
    # skops.io.load with the documented list builds numpy.negative and
    # builtins.list (trusted by default); our __setstate__ refuses the key.
    reply = worker.load(data, X, how="skops", trusted=[CLASSIFIER])
    _assert_refused(reply, key)


def test_a_pipeline_state_replacing_a_method_is_refused(worker, model):
    clf, X = model
    pipe = make_pipeline(StandardScaler(), clone(clf))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, model[0].predict(X))

    def edit(schema):
        state = _state(schema)
        state["predict"] = node("TypeNode", "builtins", "str")
        state_keys = schema["content"]["key_types"]["content"]
        state_keys.append(copy.deepcopy(state_keys[0]))

    data, _ = _craft(pipe, edit)
    _assert_refused(worker.load(data, X), "predict")


def test_unknown_state_keys_are_refused_by_pickle_too(model):
    clf, _ = model
    state = clf.__getstate__()
    for key in ("predict", "_validate_params", "__class__", 3):
        clone = TorchMLPClassifier.__new__(TorchMLPClassifier)
        with pytest.raises(ValueError, match="unknown entries"):
            clone.__setstate__({**state, key: np.negative})


# ------------------------------------------------------- smaller holes


def test_weights_that_overflow_make_predict_raise(worker, model):
    clf, X = model
    members = _members(sio.dumps(clf))
    schema = json.loads(members["schema.json"])
    member = _arrays(schema)[0]["file"]
    weight = np.load(io.BytesIO(members[member]))
    buffer = io.BytesIO()
    np.save(buffer, np.full_like(weight, 1e308))
    members[member] = buffer.getvalue()
    data = _archive(members)
    with pytest.raises(ValueError, match="overflow"):
        sio.loads(data, trusted=[CLASSIFIER]).predict_proba(X)
    _assert_refused(worker.load(data, X), "overflow")


def test_masked_classes_are_refused_naming_classes(worker, model):
    clf, X = model

    def edit(schema):
        classes = _state(schema)["classes_"]
        _state(schema)["classes_"] = node(
            "MaskedArrayNode",
            "numpy.ma",
            "MaskedArray",
            content={"data": classes, "mask": copy.deepcopy(classes)},
        )

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X), "classes_")


@pytest.mark.parametrize("args", [("nonsense",), ("cpu", -1), ("cuda", 2**40), (3,)])
def test_a_crafted_torch_device_is_refused(worker, model, args):
    clf, X = model
    clf = pickle.loads(pickle.dumps(clf)).set_params(device=torch.device("cpu"))

    def edit(schema):
        device = _state(schema)["device"]
        device["content"]["content"] = [json_node(arg) for arg in args]

    data, _ = _craft(clf, edit)
    _assert_refused(worker.load(data, X), "torch.device")


def test_parameters_that_do_not_describe_the_network_are_refused(model):
    clf, _ = model
    for change in (
        {"hidden_layer_sizes": (7,)},
        {"activation": "tanh"},
        {"dropout": 0.5},
        {"dtype": "float32"},
    ):
        data = pickle.dumps(clf)
        state = {**pickle.loads(data).__getstate__(), **change}
        clone = TorchMLPClassifier.__new__(TorchMLPClassifier)
        with pytest.raises(ValueError, match="do not describe the stored network"):
            clone.__setstate__(state)
    # A network the user changed is no plain state: save says so.
    changed = pickle.loads(pickle.dumps(clf)).set_params(hidden_layer_sizes=(7,))
    with pytest.raises(TypeError, match="pickle or joblib"):
        save(changed, io.BytesIO())
    assert pickle.loads(pickle.dumps(changed)).hidden_layer_sizes == (7,)


def test_a_pickled_torch_optimizer_with_a_0d_moment_is_refused(model):
    clf, _ = model
    custom = pickle.loads(pickle.dumps(clf))
    custom.module_[1] = torch.nn.LeakyReLU(0.3)  # a module_ we do not build
    state = custom.__getstate__()
    assert isinstance(state["module_"], torch.nn.Module)
    legacy = dict(state)
    state["_solver_state"]["parameters"][0]["exp_avg"] = np.zeros(())
    # An older pickle holds torch's optimizer state_dict instead.
    entries = legacy.pop("_solver_state")["parameters"]
    legacy["_optimizer"] = {
        "state": {
            i: {name: torch.as_tensor(value) for name, value in entry.items()}
            for i, entry in enumerate(entries)
        },
        "param_groups": [{"lr": 0.001, "params": list(range(len(entries)))}],
    }
    legacy["_optimizer"]["state"][0]["exp_avg"] = torch.zeros(())
    for crafted in (state, legacy):
        clone = TorchMLPClassifier.__new__(TorchMLPClassifier)
        with pytest.raises(ValueError, match="'exp_avg' of parameter 0"):
            clone.__setstate__(crafted)
        assert not vars(clone)


def test_the_allowlist_names_types_and_functions_never_modules():
    for loader, names in TRUSTED.items():
        for name in names | (scorer_functions() if loader == "FunctionNode" else set()):
            module, _, attribute = name.rpartition(".")
            obj = getattr(importlib.import_module(module), attribute)
            assert isinstance(obj, type) or inspect.isfunction(obj), name
