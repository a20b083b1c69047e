"""Safe persistence: save and load a TorchMLPClassifier without pickle.

A model file is a ZIP archive of two uncompressed members:

``skorchlite.json``
    The parameters, the fitted attributes, the network's layer layout, the
    training history and the optimizer's non-tensor state, as plain JSON.
``weights.safetensors``
    The network weights and the optimizer's tensors, in the safetensors format
    (absent for an unfitted estimator).

Loading parses JSON and safetensors only: no pickle, no imports, no code from
the file. Every member is covered by the ZIP's CRC-32, the weights also by a
SHA-256 recorded in the JSON, and the result is checked for consistency
(layer shapes, classes, outputs) before an estimator is built, so a corrupted,
truncated or hand-edited file gives a ``ValueError`` instead of a model that
fails later.
"""

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import tempfile
import zipfile
from numbers import Integral, Real

import numpy as np
import safetensors.torch
import torch
from sklearn.base import is_regressor
from torch import nn

from . import _state
from ._classifier import TorchMLPClassifier
from ._mlp import ACTIVATIONS, Dropout, linear_layers
from ._regressor import TorchMLPRegressor
from ._targets import TARGETS
from ._training import History

#: The estimators a file may hold, by the format name it declares.
FORMATS = {
    f"skorchlite.{cls.__name__}": cls for cls in (TorchMLPClassifier, TorchMLPRegressor)
}
FORMAT_VERSION = 1
MANIFEST = "skorchlite.json"
WEIGHTS = "weights.safetensors"
# A fixed timestamp makes the same model give the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ARRAY_KINDS = frozenset("biufUO")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_ACTIVATION_NAMES = {spec.module: name for name, spec in ACTIVATIONS.items()}
_TAGS = frozenset(
    {"float", "tuple", "dict", "numpy", "ndarray", "torch.device", "RandomState"}
)


class _FormatError(ValueError):
    """Raised inside the decoders; ``load`` adds the file name."""


# ------------------------------------------------------------------ public API


def save(estimator, path):
    """Save a :class:`TorchMLPClassifier` to a file that loads without pickle.

    The file holds the parameters and fitted attributes as JSON and the
    weights as safetensors, in one ZIP archive; :func:`load` reads it back
    without executing anything from it. The write is atomic: ``path`` holds
    either its previous content or the complete new model.

    Parameters
    ----------
    estimator : TorchMLPClassifier
        A fitted or unfitted estimator.
    path : str, os.PathLike or binary file object
        Where to write the model.

    Raises
    ------
    TypeError
        If ``estimator`` is not a ``TorchMLPClassifier`` (subclasses included,
        as their code cannot be stored), or a parameter or attribute holds a
        value JSON cannot represent.

    See Also
    --------
    load : Read the model back.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from skorchlite import TorchMLPClassifier, load, save
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array(["a", "a", "b", "b"])
    >>> clf = TorchMLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    >>> buffer = io.BytesIO()
    >>> save(clf, buffer)
    >>> clone = load(io.BytesIO(buffer.getvalue()))
    >>> bool((clone.predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    if type(estimator) not in FORMATS.values():
        raise TypeError(
            "save() stores TorchMLPClassifier and TorchMLPRegressor instances "
            "only, got "
            f"{type(estimator).__qualname__}. A subclass may change behaviour "
            "that a data-only file cannot carry; use pickle or joblib for it."
        )
    manifest = {
        "format": f"skorchlite.{type(estimator).__name__}",
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "params": {
            name: _encode(value, f"parameter {name!r}")
            for name, value in estimator.get_params(deep=False).items()
        },
        "fitted": None,
    }
    weights = None
    if hasattr(estimator, "module_"):
        manifest["fitted"], tensors = _fitted_state(estimator)
        weights = safetensors.torch.save(tensors)
        manifest["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    text = json.dumps(manifest, allow_nan=False, sort_keys=True)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(MANIFEST, _ZIP_DATE), text.encode("utf-8"))
        if weights is not None:
            zf.writestr(zipfile.ZipInfo(WEIGHTS, _ZIP_DATE), weights)
    _write_atomically(path, archive.getvalue())


def load(path):
    """Load a model written by :func:`save`, without executing code from it.

    The model goes to its ``device`` parameter's device when that is
    available, and otherwise stays on the CPU with a warning, so a model
    trained on a GPU loads on a CPU-only machine. Predictions are
    bit-identical to the saved model's on the same device, and the optimizer
    state is restored, so ``partial_fit`` and ``warm_start`` continue where
    the saved model stopped.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        The file to read.

    Returns
    -------
    estimator : TorchMLPClassifier

    Raises
    ------
    ValueError
        If the file is not a skorchlite model, is truncated or corrupted
        (checksum mismatch), is inconsistent (e.g. weights of the wrong
        shape), or was written by a newer format version.

    See Also
    --------
    save : Write a model.

    Examples
    --------
    >>> import io
    >>> from skorchlite import load
    >>> load(io.BytesIO(b"not a model"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the file object is not a skorchlite model file: the archive is ...
    """
    data = _read_bytes(path)
    if isinstance(path, str | os.PathLike):
        name = os.fspath(path)
    else:
        name = getattr(path, "name", "the file object")
    try:
        manifest, weights = _read_archive(data)
        # Tensors made under the caller's torch.inference_mode() could never
        # be trained.
        with torch.inference_mode(False):
            return _build(manifest, weights)
    except _FormatError as exc:
        raise ValueError(f"{name} is not a skorchlite model file: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"{name} is not a skorchlite model file: its JSON nests too deeply."
        ) from None


# ------------------------------------------------------------------- writing


def _fitted_state(estimator):
    """The fitted part of the manifest, and the tensors to store."""
    module = estimator.module_
    dtype = linear_layers(module)[0].weight.dtype
    tensors = {
        f"module.{key}": value.detach().to("cpu").contiguous()
        for key, value in module.state_dict().items()
    }
    attributes = {
        name: _encode(value, f"attribute {name!r}")
        for name, value in vars(estimator).items()
        if _is_public_fitted(name) and name != "module_"
    }
    fitted = {
        "module": _layout(module),
        "dtype": str(dtype).removeprefix("torch."),
        "target_type": estimator._target.name,
        "seed": estimator._seed,
        "history": {
            field.name: _encode(getattr(estimator._history, field.name), "history")
            for field in dataclasses.fields(History)
        },
        "attributes": attributes,
        "optimizer": None,
    }
    optimizer = getattr(estimator, "_optimizer", None)
    if optimizer is not None:
        fitted["optimizer"], optimizer_tensors = _optimizer_state(optimizer)
        tensors.update(optimizer_tensors)
    return fitted, tensors


def _layout(module):
    """The layer list of ``module``: only the layers ``load`` can rebuild."""
    try:
        return _state.module_layout(module)
    except TypeError as exc:
        raise TypeError(
            f"save() {exc} Use pickle or joblib for custom modules."
        ) from None


def _optimizer_state(optimizer):
    state_dict = optimizer.state_dict()
    tensors, other = {}, {}
    for index, state in state_dict["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu")
            else:
                other.setdefault(str(index), {})[key] = _encode(value, "optimizer")
    groups = [
        {key: _encode(value, "optimizer") for key, value in group.items()}
        for group in state_dict["param_groups"]
    ]
    return {"param_groups": groups, "state": other}, tensors


def _write_atomically(path, data):
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    if hasattr(path, "write"):
        path.write(data)
        return
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    descriptor, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); give it a new file's usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------- reading


def _read_bytes(path):
    if hasattr(path, "read"):
        return path.read()
    with open(path, "rb") as file:
        return file.read()


def _read_archive(data):
    """The decoded manifest and the weights' bytes, after the integrity checks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = [info.filename for info in infos]
            if MANIFEST not in names or not set(names) <= {MANIFEST, WEIGHTS}:
                raise _FormatError(
                    f"expected the members {MANIFEST!r} and {WEIGHTS!r}, found {names}."
                )
            if len(names) != len(set(names)):
                raise _FormatError(f"duplicated members in the archive: {names}.")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                    raise _FormatError(
                        f"member {info.filename!r} is compressed or encrypted; "
                        "skorchlite writes plain members only."
                    )
            # ZipFile.read verifies each member's CRC-32.
            members = {name: zf.read(name) for name in names}
    except _FormatError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        KeyError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        OverflowError,
    ) as exc:
        raise _FormatError(f"the archive is truncated or corrupted ({exc}).") from exc
    try:
        manifest = json.loads(
            members[MANIFEST].decode("utf-8"), parse_constant=_reject_constant
        )
    except ValueError as exc:
        raise _FormatError(f"{MANIFEST} is not valid JSON ({exc}).") from exc
    _check_header(manifest)
    weights = members.get(WEIGHTS)
    if (manifest["fitted"] is None) != (weights is None):
        raise _FormatError(
            f"the fitted state and the {WEIGHTS} member must come together."
        )
    if weights is not None:
        expected = manifest.get("weights_sha256")
        if hashlib.sha256(weights).hexdigest() != expected:
            raise _FormatError(
                f"checksum mismatch: the SHA-256 of {WEIGHTS} is not the "
                f"{expected!r} recorded in {MANIFEST}; the file was modified "
                "or corrupted."
            )
    return manifest, weights


def _reject_constant(constant):
    raise ValueError(f"non-standard JSON constant {constant}")


def _check_header(manifest):
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        raise _FormatError(f"{MANIFEST} does not declare one of {sorted(FORMATS)}.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _FormatError(f"invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise _FormatError(
            f"it was written in format version {version}, newer than the "
            f"version {FORMAT_VERSION} this skorchlite reads; upgrade skorchlite "
            "to load it."
        )
    if not isinstance(manifest.get("params"), dict):
        raise _FormatError("the parameters are missing.")
    if "fitted" not in manifest or not isinstance(manifest["fitted"], dict | None):
        raise _FormatError("the fitted state is missing.")


def _build(manifest, weights):
    estimator_class = FORMATS[manifest["format"]]
    params = {name: _decode(value) for name, value in manifest["params"].items()}
    unknown = set(params) - set(estimator_class().get_params())
    if unknown:
        raise _FormatError(f"unknown parameters {sorted(unknown)}.")
    estimator = estimator_class(**params)
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise _FormatError(f"invalid parameters: {exc}") from exc
    fitted = manifest["fitted"]
    if fitted is not None:
        try:
            _restore_fitted(estimator, fitted, _load_tensors(weights))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise _FormatError(f"malformed fitted state ({exc!r}).") from exc
    return estimator


def _load_tensors(weights):
    try:
        tensors = safetensors.torch.load(weights)
    except Exception as exc:  # the parser's error types vary between releases
        raise _FormatError(f"{WEIGHTS} is malformed ({exc}).") from exc
    # Own, writable memory, rather than views of the file's bytes.
    return {key: value.clone() for key, value in tensors.items()}


def _restore_fitted(estimator, fitted, tensors):
    dtype = _DTYPES.get(fitted["dtype"])
    if dtype is None:
        raise _FormatError(f"unsupported dtype {fitted['dtype']!r}.")
    module_tensors = {
        key.removeprefix("module."): value
        for key, value in tensors.items()
        if key.startswith("module.")
    }
    module = _rebuild_module(fitted["module"], module_tensors, dtype)
    target_type = fitted["target_type"]
    if target_type not in TARGETS or TARGETS[target_type].regression != is_regressor(
        estimator
    ):
        raise _FormatError(f"unsupported target type {target_type!r}.")
    attributes = {name: _decode(value) for name, value in fitted["attributes"].items()}
    for name in attributes:
        if not _is_public_fitted(name) or hasattr(type(estimator), name):
            raise _FormatError(f"{name!r} is not a fitted attribute.")
    target = _check_attributes(estimator, attributes, target_type, module)
    seed = fitted["seed"]
    if not isinstance(seed, Integral) or isinstance(seed, bool):
        raise _FormatError(f"invalid seed {seed!r}.")
    vars(estimator).update(attributes)
    estimator.module_ = module
    estimator._target = target
    estimator._seed = seed
    estimator._history = _decode_history(fitted["history"])
    estimator._no_improvement_count = estimator._history.no_improvement_count
    # Move before rebuilding the optimizer, whose state follows its parameters.
    estimator._move_to_available_device()
    if fitted["optimizer"] is not None:
        estimator._optimizer = _rebuild_optimizer(
            estimator, fitted["optimizer"], tensors
        )
    elif any(key.startswith("optimizer.") for key in tensors):
        raise _FormatError("optimizer tensors without an optimizer state.")


def _rebuild_module(layout, tensors, dtype):
    if not isinstance(layout, list) or not layout:
        raise _FormatError("the network layout is missing.")
    layers, expected = [], {}
    for index, spec in enumerate(layout):
        kind = spec["layer"]
        if kind == "linear":
            n_in, n_out = spec["in_features"], spec["out_features"]
            if not all(_is_count(n) for n in (n_in, n_out)):
                raise _FormatError(f"invalid sizes of layer {index}: {spec}.")
            layers.append(nn.Linear(n_in, n_out, dtype=dtype, device="meta"))
            expected[f"{index}.weight"] = (n_out, n_in)
            expected[f"{index}.bias"] = (n_out,)
        elif kind == "activation" and spec["name"] in ACTIVATIONS:
            layers.append(ACTIVATIONS[spec["name"]].module())
        elif kind == "dropout" and isinstance(spec["p"], Real) and 0 <= spec["p"] < 1:
            layers.append(Dropout(spec["p"]))
        else:
            raise _FormatError(f"unsupported layer {index}: {spec}.")
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    if not isinstance(layers[0], nn.Linear) or not isinstance(layers[-1], nn.Linear):
        raise _FormatError("the network must start and end with a Linear layer.")
    for previous, layer in itertools.pairwise(linears):
        if previous.out_features != layer.in_features:
            raise _FormatError("the Linear layers' sizes do not chain.")
    if set(tensors) != set(expected):
        raise _FormatError(
            f"the weights have the entries {sorted(tensors)}, the layout needs "
            f"{sorted(expected)}."
        )
    for key, shape in expected.items():
        tensor = tensors[key]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise _FormatError(
                f"weight {key!r} has shape {tuple(tensor.shape)} and dtype "
                f"{tensor.dtype}; the layout needs shape {shape} and dtype {dtype}."
            )
        if not torch.isfinite(tensor).all():
            raise _FormatError(f"weight {key!r} holds NaN or infinite values.")
    module = nn.Sequential(*layers)
    module.load_state_dict(tensors, assign=True)
    return module.eval()


def _check_attributes(estimator, attributes, target_type, module):
    """The attributes predict relies on, consistent with the network (the
    pickled state's checks); returns the target they describe."""
    try:
        return _state.check_attributes(
            estimator, attributes, TARGETS[target_type], module
        )
    except ValueError as exc:
        raise _FormatError(str(exc)) from None


def _decode_history(fields):
    values = {name: _decode(value) for name, value in fields.items()}
    # Files from before validation losses were kept have none.
    values.setdefault("validation_losses", [])
    try:
        return _state.check_history(values)
    except ValueError as exc:
        raise _FormatError(str(exc)) from None


def _rebuild_optimizer(estimator, saved, tensors):
    """The optimizer of ``estimator`` with the file's state, checked.

    The hyper-parameters come from the estimator's validated parameters, not
    from the file's ``param_groups`` (a crafted ``lr`` or ``maximize`` would
    otherwise apply); the state tensors go through the checks of pickled
    states (:mod:`skorchlite._state`): each of its parameter's shape and
    dtype, finite, positive steps. torch's fused kernels trust them blindly.
    """
    optimizer = estimator._make_optimizer()
    fresh = optimizer.state_dict()
    groups = [
        {key: _decode(value) for key, value in group.items()}
        for group in saved["param_groups"]
    ]
    if len(groups) != len(fresh["param_groups"]):
        raise _FormatError("the optimizer state has the wrong number of groups.")
    for group, fresh_group in zip(groups, fresh["param_groups"], strict=True):
        # The learning rate is state (the schedules lower it); checked below.
        if {**group, "lr": None} != {**fresh_group, "lr": None}:
            raise _FormatError(
                f"the optimizer settings {group} do not match the estimator's "
                f"parameters ({fresh_group})."
            )
    if saved["state"]:
        raise _FormatError("the optimizer state holds values that are not tensors.")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    kinds = estimator._solver_spec.state_entries
    entries = [None] * len(parameters)
    for key, tensor in tensors.items():
        if not key.startswith("optimizer."):
            continue
        index, _, name = key.removeprefix("optimizer.").partition(".")
        index = _param_index(index, parameters)
        if name not in kinds:
            raise _FormatError(f"unexpected optimizer tensor {key!r}.")
        if kinds[name] == "count":
            value = tensor.item() if tensor.numel() == 1 and tensor.ndim == 0 else None
            if not isinstance(value, float) or not value.is_integer():
                raise _FormatError(f"optimizer tensor {key!r} is not a step count.")
            value = int(value)
        else:
            value = tensor.numpy()
        entries[index] = {**(entries[index] or {}), name: value}
    saved_state = {"learning_rate": groups[0].get("lr"), "parameters": entries}
    try:
        checked = _state._check_optimizer_state(
            saved_state, estimator, estimator.module_
        )
        return _state._rebuild_optimizer(estimator, checked)
    except ValueError as exc:
        raise _FormatError(str(exc)) from None


def _param_index(text, parameters):
    if not (isinstance(text, str) and text.isdigit() and int(text) < len(parameters)):
        raise _FormatError(f"invalid optimizer parameter index {text!r}.")
    return int(text)


def _same_kind(value, reference):
    if isinstance(reference, bool) or reference is None:
        return type(value) is type(reference)
    if isinstance(reference, Real):
        return isinstance(value, Real) and not isinstance(value, bool)
    if isinstance(reference, list | tuple):
        return (
            type(value) is type(reference)
            and len(value) == len(reference)
            and all(_same_kind(v, r) for v, r in zip(value, reference, strict=True))
        )
    return type(value) is type(reference)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_public_fitted(name):
    return (
        name.isidentifier()
        and name.endswith("_")
        and not name.startswith("_")
        and not name.endswith("__")
    )


# --------------------------------------------------------------------- codec
#
# JSON has no tuples, arrays, non-finite floats or non-string keys. Every such
# value becomes a JSON object with a single tag key, and a dict becomes a list
# of pairs, so every JSON object in a file is a tagged value.


def _encode(value, where):
    """A JSON-ready form of ``value``; TypeError for what JSON cannot carry."""
    # numpy scalars first: np.float64 and np.str_ subclass float and str.
    if isinstance(value, np.generic):
        if value.dtype.kind not in _ARRAY_KINDS - {"O"}:
            raise TypeError(f"{where} is a numpy {value.dtype} scalar, not storable.")
        return {"numpy": value.dtype.str, "value": _encode(value.item(), where)}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [_encode(item, where) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, where) for item in value]}
    if isinstance(value, dict):
        return {
            "dict": [[_encode(k, where), _encode(v, where)] for k, v in value.items()]
        }
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        items = value.ravel().tolist()
        if value.dtype.kind == "O" and not all(
            item is None or isinstance(item, bool | int | float | str) for item in items
        ):
            raise TypeError(
                f"{where} is an object array holding values other than str, int, "
                "float, bool or None, which a safe file cannot store."
            )
        return {
            "ndarray": value.dtype.str,
            "shape": list(value.shape),
            "data": [_encode(item, where) for item in items],
        }
    if isinstance(value, torch.device):
        return {"torch.device": str(value)}
    if isinstance(value, np.random.RandomState):
        return {"RandomState": _encode(value.get_state(legacy=True), where)}
    raise TypeError(
        f"{where} is {value!r} of type {type(value).__qualname__}, which save() "
        "cannot store as JSON. Use an int, str, float, bool, None, a list/tuple/"
        "dict of those, a numpy array or a RandomState, or pickle the model."
    )


def _decode(value):
    """Inverse of :func:`_encode`; _FormatError for anything it never writes."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict) or not value:
        raise _FormatError(f"unexpected JSON value {value!r}.")
    tags = value.keys() & _TAGS
    if len(tags) != 1:
        raise _FormatError(f"unexpected JSON object with keys {sorted(value)}.")
    (tag,) = tags
    try:
        if tag == "float" and len(value) == 1:
            text = value["float"]
            if text not in {"inf", "-inf", "nan"}:
                raise _FormatError(f"invalid float {text!r}.")
            return float(text)
        if tag == "tuple" and len(value) == 1 and isinstance(value["tuple"], list):
            return tuple(_decode(item) for item in value["tuple"])
        if tag == "dict" and len(value) == 1:
            return {_hashable(_decode(k)): _decode(v) for k, v in value["dict"]}
        if tag == "numpy" and set(value) == {"numpy", "value"}:
            dtype = _array_dtype(value["numpy"], allow_object=False)
            return dtype.type(_decode(value["value"]))
        if tag == "ndarray" and set(value) == {"ndarray", "shape", "data"}:
            return _decode_array(value)
        if tag == "torch.device" and len(value) == 1:
            return torch.device(value["torch.device"])
        if tag == "RandomState" and len(value) == 1:
            random_state = np.random.RandomState()
            random_state.set_state(_decode(value["RandomState"]))
            return random_state
    except _FormatError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise _FormatError(f"invalid {tag!r} value ({exc}).") from exc
    raise _FormatError(f"invalid {tag!r} value {value!r}.")


def _decode_array(value):
    dtype = _array_dtype(value["ndarray"], allow_object=True)
    shape, data = value["shape"], value["data"]
    if not (
        isinstance(shape, list)
        and all(isinstance(n, int) and n >= 0 for n in shape)
        and isinstance(data, list)
        and math.prod(shape) == len(data)
    ):
        raise _FormatError("an array's shape does not match its data.")
    items = [_decode(item) for item in data]
    if any(
        not (item is None or isinstance(item, bool | int | float | str))
        for item in items
    ):
        raise _FormatError("arrays hold scalars only.")
    if dtype.kind in "US":
        # The width the strings need, not the file's: a "<U999999999" dtype
        # would allocate gigabytes from a few bytes of JSON.
        width = max([len(item) for item in items if isinstance(item, str)] or [1])
        chars = dtype.itemsize // (4 if dtype.kind == "U" else 1)
        dtype = np.dtype(f"{dtype.str[:2]}{min(width, chars)}")
    array = np.empty(len(items), dtype=dtype)
    for index, item in enumerate(items):
        array[index] = item
    return array.reshape(shape)


def _array_dtype(text, *, allow_object):
    if not isinstance(text, str):
        raise _FormatError(f"invalid dtype {text!r}.")
    dtype = np.dtype(text)
    kinds = _ARRAY_KINDS if allow_object else _ARRAY_KINDS - {"O"}
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype:
        raise _FormatError(f"unsupported dtype {text!r}.")
    return dtype


def _hashable(key):
    if isinstance(key, list | dict):
        raise _FormatError(f"invalid dict key {key!r}.")
    return key
