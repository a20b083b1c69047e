"""Pickle/joblib portability and the safe save/load format."""

import contextlib
import io
import json
import os
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import safetensors.torch
import torch
import torch.serialization
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import NotFittedError

import skorchlite._device
from skorchlite import TorchMLPClassifier, load, save
from skorchlite._persistence import FORMAT_VERSION, MANIFEST, WEIGHTS

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n_classes=3, n_samples=60, seed=0):
    return make_classification(
        n_samples=n_samples,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = TorchMLPClassifier((5,), max_iter=4, random_state=0).fit(X, labels)
    return clf, X


def _dumps(estimator):
    buffer = io.BytesIO()
    save(estimator, buffer)
    return buffer.getvalue()


def _loads(data):
    return load(io.BytesIO(data))


def _assert_same_model(loaded, original, X):
    """Bit-identical outputs and equal fitted attributes."""
    assert type(loaded) is TorchMLPClassifier
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    assert loaded.predict(X).dtype == original.predict(X).dtype
    assert loaded.predict_proba(X).tobytes() == original.predict_proba(X).tobytes()
    assert (
        loaded.decision_function(X).tobytes() == original.decision_function(X).tobytes()
    )
    for name, value in vars(original).items():
        if not name.endswith("_") or name.startswith("_") or name == "module_":
            continue
        other = getattr(loaded, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype, name
            np.testing.assert_array_equal(other, value)
        else:
            assert other == value or (value != value and other != other), name
    for mine, theirs in zip(loaded.coefs_, original.coefs_, strict=True):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)
    assert repr(loaded.module_) == repr(original.module_)
    assert not loaded.module_.training


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["no", "yes"]),
        np.array([3, 7, 11]),
        np.array([False, True]),
        np.array(["a", "b", "c"], dtype=object),
    ],
    ids=["str-binary", "int-multiclass", "bool", "object-str"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_identical(labels, dtype):
    X, y = _data(n_classes=len(labels))
    clf = TorchMLPClassifier((6, 3), max_iter=3, dtype=dtype, random_state=1)
    clf.fit(X, labels[y])
    _assert_same_model(_loads(_dumps(clf)), clf, X)


def test_round_trip_multilabel_with_feature_names_and_early_stopping():
    pd = pytest.importorskip("pandas", reason="feature names need pandas")
    X, Y = make_multilabel_classification(60, n_features=4, random_state=0)
    X = pd.DataFrame(X, columns=["w", "x", "y", "z"])
    clf = TorchMLPClassifier(
        (5,),
        max_iter=4,
        early_stopping=True,
        dropout=0.2,
        activation="tanh",
        class_weight="balanced",
        random_state=0,
    ).fit(X, Y)
    loaded = _loads(_dumps(clf))
    _assert_same_model(loaded, clf, X)
    assert list(loaded.feature_names_in_) == ["w", "x", "y", "z"]
    assert loaded.best_validation_score_ == clf.best_validation_score_


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adamw"])
def test_round_trip_other_solvers(solver):
    X, y = _data()
    clf = TorchMLPClassifier((4,), solver=solver, max_iter=3, random_state=0)
    clf.fit(X, y)
    _assert_same_model(_loads(_dumps(clf)), clf, X)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_training_continues_identically_after_load(solver):
    X, y = _data()
    clf = TorchMLPClassifier(
        (5,), solver=solver, learning_rate="invscaling", max_iter=3, random_state=0
    )
    clf.fit(X, y)
    loaded = _loads(_dumps(clf))
    for _ in range(2):
        clf.partial_fit(X, y)
        loaded.partial_fit(X, y)
    _assert_same_model(loaded, clf, X)
    clf.set_params(warm_start=True).fit(X, y)
    loaded.set_params(warm_start=True).fit(X, y)
    _assert_same_model(loaded, clf, X)


def test_unfitted_round_trip_keeps_the_parameters():
    clf = TorchMLPClassifier(
        [7, 3],
        device=torch.device("cpu"),
        class_weight={"a": 2.0, np.int64(4): 0.5, True: 1.0},
        n_iter_no_change=np.inf,
        dtype="float32",
    )
    loaded = _loads(_dumps(clf))
    with pytest.raises(NotFittedError):
        loaded.predict(np.zeros((1, 2)))
    params, expected = loaded.get_params(), clf.get_params()
    assert params == expected
    assert {k: type(v) for k, v in params.items()} == {
        k: type(v) for k, v in expected.items()
    }
    assert [type(k) for k in params["class_weight"]] == [str, np.int64, bool]


def test_random_state_instance_is_stored_with_its_state(fitted):
    X, y = _data()
    clf = TorchMLPClassifier((4,), max_iter=2, random_state=np.random.RandomState(3))
    clf.fit(X, y)
    loaded = _loads(_dumps(clf))
    assert loaded.random_state is not clf.random_state
    # Same position in the same stream: the next draws agree.
    assert loaded.random_state.randint(10**9) == clf.random_state.randint(10**9)
    _assert_same_model(loaded, clf, X)


def test_save_to_a_path_is_deterministic_and_leaves_no_temporary_file(fitted, tmp_path):
    clf, X = fitted
    path = tmp_path / "model.skorchlite"
    save(clf, path)
    first = path.read_bytes()
    save(clf, str(path))  # overwrites atomically
    assert path.read_bytes() == first
    assert list(tmp_path.iterdir()) == [path]
    if os.name == "posix":  # the mode of a new file, not the temporary file's 0600
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert first == _dumps(clf)
    _assert_same_model(load(path), clf, X)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted([MANIFEST, WEIGHTS])
        manifest = json.loads(zf.read(MANIFEST))
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["params"]["hidden_layer_sizes"] == {"tuple": [5]}


def test_failed_save_keeps_the_previous_file(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.skorchlite"
    save(clf, path)
    before = path.read_bytes()
    bad = TorchMLPClassifier(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match="parameter 'random_state'"):
        save(bad, path)
    assert path.read_bytes() == before


def test_device_that_is_missing_on_load_warns_and_stays_on_cpu(fitted, monkeypatch):
    clf, X = fitted
    data = _dumps(clf)
    manifest, weights = _members(data)
    manifest["params"]["device"] = "cuda"  # as saved by a model trained on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available.*stays on the CPU"):
        loaded = _loads(_archive(manifest, weights))
    assert loaded.device == "cuda"
    assert loaded.module_[0].weight.device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ----------------------------------------------------------- what is refused


def test_save_rejects_subclasses_and_custom_modules(fitted):
    class Custom(TorchMLPClassifier):
        pass

    with pytest.raises(
        TypeError, match="TorchMLPClassifier and TorchMLPRegressor instances only"
    ):
        save(Custom(), io.BytesIO())
    clf, _ = fitted
    clone = pickle.loads(pickle.dumps(clf))
    clone.module_[1] = torch.nn.LeakyReLU(0.3)
    with pytest.raises(TypeError, match="cannot store the layer LeakyReLU"):
        save(clone, io.BytesIO())


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read(MANIFEST)), zf.read(WEIGHTS)


def _archive(manifest, weights, *, extra=(), compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr(WEIGHTS, weights)
        for name, content in extra:
            zf.writestr(name, content)
    return buffer.getvalue()


def _resign(manifest, weights):
    import hashlib

    manifest["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    return _archive(manifest, weights)


def test_every_flipped_byte_is_detected_or_harmless(fitted):
    # A change either raises a ValueError or hit a byte that carries no model
    # data (ZIP timestamps, the local headers' copies of the central directory).
    clf, X = fitted
    data = _dumps(clf)
    expected = clf.predict_proba(X).tobytes()
    harmless = 0
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        try:
            loaded = _loads(bytes(corrupted))
        except ValueError as exc:
            assert "is not a skorchlite model file" in str(exc)
            continue
        assert loaded.predict_proba(X).tobytes() == expected, position
        harmless += 1
    # Only header bytes can be harmless, never the JSON or the weights.
    assert harmless < 0.1 * len(data)


def test_truncated_files_are_rejected(fitted):
    clf, _ = fitted
    data = _dumps(clf)
    for length in range(len(data)):
        with pytest.raises(ValueError, match="not a skorchlite model file"):
            _loads(data[:length])


def test_modified_weights_give_a_checksum_mismatch(fitted):
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    tensors = safetensors.torch.load(weights)
    tensors["module.0.weight"] = tensors["module.0.weight"] * 2
    # A valid archive (correct CRC-32s) whose weights are not the saved ones.
    data = _archive(manifest, safetensors.torch.save(tensors))
    with pytest.raises(ValueError, match="checksum mismatch"):
        _loads(data)


def test_weights_of_the_wrong_shape_are_rejected(fitted):
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    tensors = safetensors.torch.load(weights)
    tensors["module.2.weight"] = tensors["module.2.weight"][:, :4].contiguous()
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(3, 4\)"):
        _loads(_resign(manifest, safetensors.torch.save(tensors)))


def _with_optimizer_change(fitted, change):
    """A re-signed file of ``fitted`` with ``change(manifest_optimizer, tensors)``."""
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    tensors = safetensors.torch.load(weights)
    change(manifest["fitted"]["optimizer"], tensors)
    return _resign(manifest, safetensors.torch.save(tensors))


def _zero_d_moment(optimizer, tensors):
    tensors["optimizer.0.exp_avg"] = torch.zeros((), dtype=torch.float64)


def _permuted_groups(optimizer, tensors):
    params = optimizer["param_groups"][0]["params"]
    params[0], params[1] = params[1], params[0]


def _learning_rate(value):
    def change(optimizer, tensors):
        optimizer["param_groups"][0]["lr"] = value

    return change


def _maximize(optimizer, tensors):
    optimizer["param_groups"][0]["maximize"] = True


def _negative_step(optimizer, tensors):
    tensors["optimizer.1.step"] = torch.tensor(-3.0)


# Each reached torch's fused Adam kernel (heap corruption, segfaults) or
# trained on wrong settings before the optimizer state was checked.
@pytest.mark.parametrize(
    "change, message",
    [
        (_zero_d_moment, "has shape \\(\\)"),
        (_permuted_groups, "optimizer settings"),
        (_learning_rate(-10.0), "invalid optimizer learning_rate"),
        (_maximize, "optimizer settings"),
        (_negative_step, "positive integer"),
    ],
)
def test_crafted_optimizer_state_is_rejected(fitted, change, message):
    with pytest.raises(ValueError, match=message):
        _loads(_with_optimizer_change(fitted, change))


def test_a_huge_string_dtype_allocates_only_what_the_strings_need(fitted):
    import tracemalloc

    clf, X = fitted
    manifest, weights = _members(_dumps(clf))
    attributes = dict(manifest["fitted"]["attributes"])
    classes = attributes["classes_"]
    assert classes["ndarray"].startswith("<U")
    # 2**28 characters a label: 3 GiB for three classes if taken at its word.
    attributes["classes_"] = {**classes, "ndarray": "<U268435456"}
    manifest["fitted"]["attributes"] = attributes
    tracemalloc.start()
    try:
        loaded = _loads(_resign(manifest, weights))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_a_newer_format_version_is_rejected(fitted):
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    manifest["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match=r"newer than the version 1.*upgrade"):
        _loads(_archive(manifest, weights))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format="pickle"), "does not declare one of"),
        (lambda m: m["params"].update(evil=1), "unknown parameters"),
        (lambda m: m["params"].update(activation="rm -rf"), "invalid parameters"),
        (lambda m: m["params"].update(alpha={"os.system": "ls"}), "unexpected JSON"),
        (lambda m: m["params"].update(alpha={"tuple": 1}), "invalid 'tuple'"),
        (lambda m: m["fitted"]["attributes"].update(coefs_=1), "not a fitted attr"),
        (lambda m: m["fitted"]["attributes"].update(n_outputs_=2), "do not match"),
        (lambda m: m["fitted"]["attributes"].pop("classes_"), "missing fitted"),
        (lambda m: m["fitted"].update(dtype="float16"), "unsupported dtype"),
        (lambda m: m["fitted"]["module"][1].update(name="exec"), "unsupported layer"),
        (lambda m: m["fitted"]["module"].pop(), "must start and end with a Linear"),
        (lambda m: m["fitted"]["history"].update(n_iter="3"), "wrong type"),
        (lambda m: m["fitted"].pop("seed"), "malformed fitted state"),
    ],
)
def test_inconsistent_manifests_are_rejected(fitted, edit, message):
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    edit(manifest)
    with pytest.raises(ValueError, match=message):
        _loads(_archive(manifest, weights))


def test_unexpected_or_compressed_members_are_rejected(fitted):
    clf, _ = fitted
    manifest, weights = _members(_dumps(clf))
    with pytest.raises(ValueError, match="expected the members"):
        _loads(_archive(manifest, weights, extra=[("payload.pkl", b"x")]))
    with pytest.raises(ValueError, match="compressed or encrypted"):
        _loads(_archive(manifest, weights, compression=zipfile.ZIP_DEFLATED))


class _Payload:
    """Unpickling this would run code: the attack a pickle file allows."""

    ran = False

    def __reduce__(self):
        return (setattr, (_Payload, "ran", True))


def test_load_never_unpickles(fitted, tmp_path, monkeypatch):
    clf, X = fitted
    # A pickle is not a model file, and loading it runs nothing.
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="not a skorchlite model file"):
        load(path)
    manifest, _ = _members(_dumps(clf))
    with pytest.raises(ValueError, match="malformed"):
        _loads(_resign(manifest, pickle.dumps(_Payload())))
    assert not _Payload.ran
    # With every unpickler disabled, a real model still loads.
    data = _dumps(clf)

    def refuse(*args, **kwargs):
        raise AssertionError("load() must not unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    _assert_same_model(_loads(data), clf, X)


def test_load_reports_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.skorchlite")


# ------------------------------------------------------------ pickle, joblib


def test_pickle_and_joblib_round_trips(fitted, tmp_path):
    clf, X = fitted
    _assert_same_model(pickle.loads(pickle.dumps(clf)), clf, X)
    joblib.dump(clf, tmp_path / "model.joblib")
    _assert_same_model(joblib.load(tmp_path / "model.joblib"), clf, X)


@contextlib.contextmanager
def _pretend_on_cuda(tensors, monkeypatch):
    """Make ``tensors`` behave, for pickling, like tensors on a CUDA device.

    A CUDA tensor differs from a CPU one in three ways that matter here, and
    each is reproduced for the given tensors' storages:

    - pickling records the storage's location as ``"cuda:0"`` (a tagger
      registered with ``torch.serialization``, the mechanism torch itself uses
      for its devices), so unpickling without CUDA fails exactly like a real
      CUDA pickle;
    - the module holding them reports a CUDA device (``module_device``);
    - ``.to("cpu")`` returns a copy instead of the tensor itself.
    """
    fake = {tensor.untyped_storage().data_ptr() for tensor in tensors}

    def on_fake(tensor):
        return tensor.untyped_storage().data_ptr() in fake

    def tagger(storage):
        return "cuda:0" if storage.data_ptr() in fake else None

    real_module_device = skorchlite._device.module_device

    def module_device(module):
        if on_fake(next(module.parameters())):
            return torch.device("cuda", 0)
        return real_module_device(module)

    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        targets = [*args, kwargs.get("device")]
        if on_fake(self) and any(str(t) == "cpu" for t in targets):
            return real_to(self.clone(), *args, **kwargs)
        return real_to(self, *args, **kwargs)

    registry = torch.serialization._package_registry
    torch.serialization.register_package(0, tagger, lambda obj, location: None)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(skorchlite._device, "module_device", module_device)
            patch.setattr(torch.Tensor, "to", to)
            yield
    finally:
        registry[:] = [entry for entry in registry if entry[1] is not tagger]


def test_cuda_trained_pickle_loads_on_a_cpu_only_machine(monkeypatch):
    X, y = _data()
    clf = TorchMLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    clf.set_params(device="cuda")  # the setting it was trained with
    tensors = [*clf.module_.parameters()]
    for state in clf._optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    with _pretend_on_cuda(tensors, monkeypatch):
        raw_module = pickle.dumps(clf.module_)
        data = pickle.dumps(clf)
    # The simulation is faithful: a module pickled as it is on the GPU cannot
    # be loaded without CUDA, which is skorch users' complaint.
    with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
        pickle.loads(raw_module)
    # The estimator moved its tensors to the CPU before pickling.
    with pytest.warns(UserWarning, match="stays on the CPU"):
        loaded = pickle.loads(data)
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    loaded.partial_fit(X, y)  # the optimizer state came along too
    assert loaded.t_ == clf.t_ + len(X)
    assert loaded.loss_curve_[:-1] == clf.loss_curve_


def test_pickling_does_not_change_the_estimator(fitted):
    clf, _ = fitted
    before = {k: v for k, v in vars(clf).items()}
    pickle.dumps(clf)
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is v for k, v in before.items())
