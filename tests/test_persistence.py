"""Pickle/joblib portability, and save/load: skops files checked before skops."""

import contextlib
import io
import json
import os
import pickle
import sys
import tracemalloc
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import torch
import torch.serialization
from numpy.lib import format as npy_format
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import (
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skorchlite._device
from skorchlite import (
    BatchedGridSearchCV,
    TorchMLPClassifier,
    TorchMLPRegressor,
    _persistence,
    load,
    save,
)

pytest.importorskip("skops.io", reason="save and load need skops")
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
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    assert loaded.predict(X).dtype == original.predict(X).dtype
    if hasattr(original, "predict_proba"):
        assert loaded.predict_proba(X).tobytes() == original.predict_proba(X).tobytes()
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


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _archive(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def _npy(array, **header):
    """A .npy member holding ``array``'s bytes under a header changed by ``header``."""
    fields = npy_format.header_data_from_array_1_0(array)
    fields.update(header)
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, fields)
    return buffer.getvalue() + array.tobytes()


def _array_member(data, attribute):
    """The member name of the .npy holding ``attribute`` of the saved estimator."""
    schema = json.loads(_members(data)["schema.json"])
    return schema["content"]["content"][attribute]["file"]


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


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_round_trip_regressor(loss):
    X, y = make_regression(60, n_features=4, n_targets=2, random_state=0)
    y = np.abs(y) / 100
    reg = TorchMLPRegressor(hidden_layer_sizes=(5,), loss=loss, max_iter=3)
    reg.set_params(random_state=0).fit(X, y)
    _assert_same_model(_loads(_dumps(reg)), reg, X)


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
        device=torch.device("cpu"),  # torch.device is trusted
        class_weight={"a": 2.0, 4: 0.5},
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


def test_random_state_instance_is_stored_with_its_state():
    X, y = _data()
    clf = TorchMLPClassifier((4,), max_iter=2, random_state=np.random.RandomState(3))
    clf.fit(X, y)
    loaded = _loads(_dumps(clf))
    assert loaded.random_state is not clf.random_state
    # Same position in the same stream: the next draws agree.
    assert loaded.random_state.randint(10**9) == clf.random_state.randint(10**9)
    _assert_same_model(loaded, clf, X)


def _fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_pipeline_round_trips_with_identical_predictions(kind):
    if kind == "multilabel":
        X, y = make_multilabel_classification(60, n_features=4, random_state=0)
    elif kind == "regression":
        X, y = make_regression(60, n_features=4, n_targets=2, random_state=0)
    else:
        X, y = _data(n_classes=2 if kind == "binary" else 3)
    estimator = (TorchMLPRegressor if kind == "regression" else TorchMLPClassifier)(
        hidden_layer_sizes=(5,), max_iter=4, random_state=0
    )
    pipe = _fit_quietly(make_pipeline(StandardScaler(), estimator), X, y)
    loaded = _loads(_dumps(pipe))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    if kind != "regression":
        assert loaded.predict_proba(X).tobytes() == pipe.predict_proba(X).tobytes()
    _assert_same_model(loaded[-1], pipe[-1], loaded[0].transform(X))


def test_meta_estimators_round_trip_with_identical_predictions():
    X, y = _data()
    ovr = _fit_quietly(
        OneVsRestClassifier(TorchMLPClassifier((4,), max_iter=3, random_state=0)), X, y
    )
    loaded = _loads(_dumps(ovr))
    assert loaded.predict_proba(X).tobytes() == ovr.predict_proba(X).tobytes()
    X, Y = make_regression(60, n_features=4, n_targets=2, random_state=0)
    multi = MultiOutputRegressor(
        TorchMLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    )
    multi = _fit_quietly(multi, X, Y)
    np.testing.assert_array_equal(_loads(_dumps(multi)).predict(X), multi.predict(X))


@pytest.mark.parametrize("search_class", [GridSearchCV, BatchedGridSearchCV])
@pytest.mark.parametrize("scoring", [None, "neg_log_loss", ["accuracy", "f1_macro"]])
def test_fitted_searches_round_trip(search_class, scoring):
    X, y = _data()
    search = search_class(
        TorchMLPClassifier((4,), max_iter=2, random_state=0),
        {"alpha": [1e-4, 1e-3]},
        cv=2,
        scoring=scoring,
        refit="f1_macro" if isinstance(scoring, list) else True,
    )
    _fit_quietly(search, X, y)
    loaded = _loads(_dumps(search))
    assert type(loaded) is search_class
    np.testing.assert_array_equal(loaded.predict_proba(X), search.predict_proba(X))
    assert loaded.score(X, y) == search.score(X, y)
    assert loaded.best_params_ == search.best_params_


def _my_metric(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def test_a_search_scored_by_a_function_of_ours_is_refused():
    X, y = _data()
    search = GridSearchCV(
        TorchMLPClassifier((4,), max_iter=2, random_state=0),
        {"alpha": [1e-4]},
        cv=2,
        scoring=make_scorer(_my_metric),
    )
    _fit_quietly(search, X, y)
    with pytest.raises(TypeError, match=r"_my_metric.*skops\.io\.dump"):
        save(search, io.BytesIO())


def test_save_to_a_path_is_atomic_and_leaves_no_temporary_file(fitted, tmp_path):
    clf, X = fitted
    path = tmp_path / "model.skops"
    save(clf, path)
    save(clf, str(path))  # overwrites atomically
    assert list(tmp_path.iterdir()) == [path]
    if os.name == "posix":  # the mode of a new file, not the temporary file's 0600
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    _assert_same_model(load(path), clf, X)
    import skops.io

    # A skops file: skops reads it, trusting our class.
    trusted = ["skorchlite._classifier.TorchMLPClassifier"]
    _assert_same_model(skops.io.load(path, trusted=trusted), clf, X)


def test_failed_save_keeps_the_previous_file(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.skops"
    save(clf, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save(make_pipeline(_Custom(), clf), path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_device_that_is_missing_on_load_warns_and_stays_on_cpu(fitted, monkeypatch):
    clf, X = fitted
    clone = pickle.loads(pickle.dumps(clf))
    clone.set_params(device="cuda")  # as saved by a model trained on a GPU
    data = _dumps(clone)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available.*stays on the CPU"):
        loaded = _loads(data)
    assert loaded.device == "cuda"
    assert loaded.module_[0].weight.device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_save_and_load_say_to_install_skops(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(ImportError, match=r"skorchlite\[skops\]"):
        save(fitted[0], io.BytesIO())
    with pytest.raises(ImportError, match=r"skorchlite\[skops\]"):
        load(io.BytesIO(b""))


# ----------------------------------------------------------- what is refused


class _Custom(TransformerMixin, BaseEstimator):
    """A user's transformer: code load() cannot vouch for."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_save_rejects_types_load_would_not_trust_and_custom_modules(fitted):
    class Subclass(TorchMLPClassifier):
        pass

    with pytest.raises(TypeError, match="Subclass"):
        save(Subclass(), io.BytesIO())
    clf, _ = fitted
    clone = pickle.loads(pickle.dumps(clf))
    clone.module_[1] = torch.nn.LeakyReLU(0.3)
    with pytest.raises(TypeError, match="pickle or joblib"):
        save(clone, io.BytesIO())


def test_load_refuses_untrusted_types_and_says_how_to_trust_them(fitted):
    import skops.io

    data = skops.io.dumps(make_pipeline(_Custom(), fitted[0]))
    with pytest.raises(ValueError, match=r"test_persistence._Custom'\].*trusted="):
        _loads(data)


def test_files_of_the_older_format_are_refused():
    old = _archive({"skorchlite.json": b"{}", "weights.safetensors": b""})
    with pytest.raises(ValueError, match="older skorchlite format"):
        _loads(old)


def _with_classes(fitted, content):
    clf, _ = fitted
    data = _dumps(clf)
    members = _members(data)
    members[_array_member(data, "classes_")] = content
    return _archive(members)


@pytest.mark.parametrize(
    "header, message",
    [
        ({"shape": (2**40,)}, r"claims shape \(1099511627776,\)"),
        ({"descr": "<U268435456"}, "claims shape"),
        ({"descr": "<U0", "shape": (2**40,)}, "claims shape"),
    ],
    ids=["huge-shape", "huge-unicode-width", "zero-width"],
)
def test_npy_headers_claiming_more_than_the_file_holds_are_refused(
    fitted, header, message
):
    clf, _ = fitted
    data = _with_classes(fitted, _npy(clf.classes_, **header))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            _loads(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_object_arrays_and_garbage_npy_members_are_refused(fitted):
    with pytest.raises(ValueError, match="object arrays need pickle"):
        _loads(_with_classes(fitted, _npy(np.zeros(0), descr="|O")))
    with pytest.raises(ValueError, match="not a model file"):
        _loads(_with_classes(fitted, pickle.dumps(_Payload())))


def test_archives_that_could_multiply_memory_are_refused(fitted, monkeypatch):
    clf, _ = fitted
    data = _dumps(clf)
    members = _members(data)
    with pytest.raises(ValueError, match="compressed or encrypted"):
        _loads(_archive(members, compression=zipfile.ZIP_DEFLATED))
    with pytest.raises(ValueError, match=r"unexpected member 'x\.npz'"):
        _loads(_archive({**members, "x.npz": b""}))
    # Two nodes reading the same member would each allocate it.
    schema = json.loads(members["schema.json"])
    first, second = _array_nodes(schema)[:2]
    second["file"] = first["file"]
    members["schema.json"] = json.dumps(schema).encode()
    with pytest.raises(ValueError, match="in distinct nodes"):
        _loads(_archive(members))
    monkeypatch.setattr(_persistence, "MAX_SCHEMA_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 1000 load reads"):
        _loads(data)


def _array_nodes(node):
    if isinstance(node, list):
        return [found for item in node for found in _array_nodes(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if "file" in node else []
    return own + [found for item in node.values() for found in _array_nodes(item)]


def test_members_declaring_more_bytes_than_the_file_are_refused(fitted):
    data = bytearray(_dumps(fitted[0]))
    # The central directory's uncompressed size of the first member.
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (2**31).to_bytes(4, "little")
    with pytest.raises(ValueError, match="members declare 2147"):
        _loads(bytes(data))


def test_a_crafted_state_gives_the_estimators_value_error(fitted):
    clf, _ = fitted
    data = _with_classes(fitted, _npy(clf.classes_[::-1].copy()))
    with pytest.raises(ValueError, match="sorted and unique"):
        _loads(data)


def test_flipped_bytes_are_detected_or_harmless(fitted):
    # A change either raises a ValueError or hit a byte that carries no model
    # data (ZIP timestamps, the local headers' copies of the central directory).
    clf, X = fitted
    data = _dumps(clf)
    expected = clf.predict_proba(X).tobytes()
    for position in range(0, len(data), max(1, len(data) // 300)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        try:
            loaded = _loads(bytes(corrupted))
        except ValueError:
            continue
        assert loaded.predict_proba(X).tobytes() == expected, position


def test_truncated_files_are_rejected(fitted):
    data = _dumps(fitted[0])
    for length in range(0, len(data), max(1, len(data) // 100)):
        with pytest.raises(ValueError, match="not a model file"):
            _loads(data[:length])


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
    with pytest.raises(ValueError, match="not a model file"):
        load(path)
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
        load(tmp_path / "missing.skops")


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
    for state in clf._solver_state.tensors.values():
        tensors += state
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
