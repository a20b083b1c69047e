"""save and load: skops files, trusting types (never modules), checked before skops.

A model file is what :func:`skops.io.dump` writes: a ZIP archive of a
``schema.json`` describing the object tree and one ``.npy`` member per numpy
array. Before skops reads a byte of it, :func:`load` bounds the archive
(:func:`_check_archive`: the memory a load takes is a small multiple of the
file's size) and walks the schema (:func:`skorchlite._schema.check_schema`:
only the types and functions our files hold, node by node, with their values
checked where skops would call something with them). Our estimators'
``__setstate__`` then checks every value against the architecture
(:mod:`skorchlite._state`).
"""

import contextlib
import io
import json
import math
import os
import secrets
import zipfile

import numpy as np
import torch
from numpy.lib import format as npy_format

from ._schema import check_schema

SCHEMA = "schema.json"
# A schema holds ~200 bytes a stored value (arrays are .npy members), so this
# is some 80k values, more than any estimator we know. Parsing JSON takes up
# to ~30 times its size in Python objects: this bounds that to ~0.5 GB.
MAX_SCHEMA_BYTES = 16 * 2**20
# The skops protocol whose node semantics skorchlite._schema checks.
PROTOCOL = 2
_OLD_FORMAT = "skorchlite.json"  # the manifest of format 1 (JSON + safetensors)
# What a malformed file makes zipfile, json, numpy or skops' node builders raise.
_FILE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    RecursionError,
    NotImplementedError,
    RuntimeError,
    UnicodeError,
    np.ma.MAError,  # a masked array's mask that does not fit its data
    # An __module__ of a trusted type's name that does not import.
    ImportError,
)


def save(obj, path, *, trusted=()):
    """Save a fitted or unfitted estimator, Pipeline or meta-estimator.

    The file is a :mod:`skops.io` file that :func:`load` (or
    ``skops.io.load`` trusting our classes) reads back without pickle. The
    write is atomic: ``path`` holds either its previous content or the
    complete new file.

    Parameters
    ----------
    obj : estimator
        A :class:`TorchMLPClassifier` or :class:`TorchMLPRegressor`, or any
        scikit-learn object holding them (``Pipeline``, ``GridSearchCV``,
        ``MultiOutputRegressor``...).
    path : str, os.PathLike or binary file object
        Where to write the file.
    trusted : sequence of str, default=()
        More types the file may hold, as :func:`load` takes them: the class
        of your own ``module`` in a :class:`TorchClassifier`, say
        (``"mypackage.nets.ResidualNet"``). Loading the file needs the same
        ``trusted``.

    Raises
    ------
    ImportError
        If skops is not installed (``pip install skorchlite[skops]``).
    TypeError
        If ``obj`` holds a type that :func:`load` does not trust (a subclass
        of our estimators, a custom transformer), or a value skops cannot
        store (a custom ``module_``).

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skorchlite import TorchMLPClassifier, load, save
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array(["a", "a", "b", "b"])
    >>> clf = TorchMLPClassifier((4,), max_iter=5, random_state=0)
    >>> pipe = make_pipeline(StandardScaler(), clf).fit(X, y)
    >>> buffer = io.BytesIO()
    >>> save(pipe, buffer)
    >>> clone = load(io.BytesIO(buffer.getvalue()))
    >>> bool((clone.predict_proba(X) == pipe.predict_proba(X)).all())
    True
    """
    sio = _skops_io()
    try:
        data = sio.dumps(obj)
    except RuntimeError as exc:  # what skops raises for a torch object
        raise TypeError(
            f"skops cannot store this {type(obj).__name__} ({exc}); a module_ "
            "changed into layers we do not build travels with pickle or joblib "
            "only."
        ) from exc
    try:
        _, untrusted = _check_archive(data, "the saved object", tuple(trusted))
    except ValueError as exc:
        raise TypeError(f"load() would refuse this file: {exc}") from None
    if untrusted:
        raise TypeError(
            f"save() writes files that load() reads, and load() would refuse "
            f"the types {untrusted}. If you trust their code (save cannot "
            "know), pass them to save(obj, path, trusted=[...]) and to "
            "load(path, trusted=[...]); or use skops.io.dump and skops.io.load, "
            "or pickle."
        )
    _write_atomically(path, data)


def load(path, *, trusted=()):
    """Load a file written by :func:`save` (or ``skops.io.dump``).

    Before skops reads the file, the archive is checked (no member may make
    the load allocate more than the file's size justifies) and so is every
    node of its schema: only the classes and functions of
    :data:`skorchlite._schema.TRUSTED` (and scikit-learn's scorers' metrics)
    are built, never a whole module, and values skops would call something
    with are checked first. Our estimators then check every value they are
    given. A model trained on a GPU loads on a CPU-only machine (with a
    warning), predicts bit-identically to the saved one on the same device,
    and continues training with ``partial_fit`` where it stopped.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        The file to read.
    trusted : sequence of str, default=()
        More classes and functions to build, by their full names as the
        error for an untrusted file lists them
        (``"sklearn.preprocessing._data.Normalizer"``): a transformer of
        yours in a Pipeline, say. Only trust the code of types you know.

    Returns
    -------
    obj : estimator
        The saved object.

    Raises
    ------
    ImportError
        If skops is not installed (``pip install skorchlite[skops]``).
    ValueError
        If the file is not a skops file, is truncated, corrupted or
        inconsistent, holds types it does not trust, or was written
        by skorchlite's earlier format.

    See Also
    --------
    save : Write a file.

    Examples
    --------
    >>> import io
    >>> from skorchlite import load
    >>> load(io.BytesIO(b"not a model"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the file object is not a model file: BadZipFile: File is not a zip file
    """
    sio = _skops_io()
    trusted = [_type_path(item) for item in trusted]
    if hasattr(path, "read"):
        data, name = path.read(), getattr(path, "name", "the file object")
    else:
        with open(path, "rb") as file:
            data, name = file.read(), os.fspath(path)
    try:
        used, untrusted = _check_archive(data, name, trusted)
    except _FILE_ERRORS as exc:
        raise ValueError(f"{name} is not a model file: {_describe(exc)}") from exc
    if untrusted:
        if len(untrusted) > 10:
            untrusted = [*untrusted[:10], f"and {len(untrusted) - 10} more"]
        raise ValueError(
            f"{name} holds the types {untrusted}, which skorchlite.load does not "
            "trust (it trusts the classes and functions listed in "
            "skorchlite._schema.TRUSTED, and scikit-learn's scorers' metrics). "
            "If you trust the file's author and these types' code, call "
            "skorchlite.load(path, trusted=[...]) with them."
        )
    try:
        # Tensors made under the caller's torch.inference_mode() could never
        # be trained.
        with torch.inference_mode(False):
            return sio.loads(data, trusted=used)
    except _FILE_ERRORS as exc:
        raise ValueError(f"{name} is not a valid model file: {_describe(exc)}") from exc


def _type_path(item):
    if isinstance(item, type):
        return f"{item.__module__}.{item.__qualname__}"
    if not isinstance(item, str):
        raise TypeError(f"trusted takes type names (str) or types, got {item!r}.")
    return item


def _skops_io():
    try:
        import skops.io
    except ImportError as exc:
        raise ImportError(
            "skorchlite.save and skorchlite.load write skops files: "
            'pip install "skorchlite[skops]"'
        ) from exc
    return skops.io


def _describe(exc):
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


def _check_archive(data, name, trusted=()):
    """The (trusted, untrusted) type names of the skops archive ``data``,
    after bounding it and checking its schema.

    skops reads every member whole, and numpy's ``np.load`` of a buffer
    allocates the array its header claims before reading any data, so a
    crafted header (a huge shape, or a ``<U`` dtype of huge width) takes
    gigabytes from a few bytes. This check makes the memory of a load a small
    multiple of ``len(data)``:

    - members must be stored, not compressed: a stored member's bytes are in
      the file, so the sizes declared by all members may not exceed the
      file's size (which also refuses members overlapping each other); a
      compressed one's size is bounded only by its ratio, and our files and
      ``skops.io.dump``'s default are stored anyway;
    - every ``.npy`` header must describe exactly the bytes that follow it,
      with no object dtype (which would need pickle);
    - ``schema.json`` is at most :data:`MAX_SCHEMA_BYTES`, of skops'
      protocol :data:`PROTOCOL`, and passes
      :func:`skorchlite._schema.check_schema` (which also refuses two nodes
      reading the same member).
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = [info.filename for info in infos]
        if _OLD_FORMAT in names:
            raise ValueError(
                "it was written by an older skorchlite format (JSON and "
                "safetensors) that this version no longer reads; save the "
                "model again with this version."
            )
        if len(names) != len(set(names)) or SCHEMA not in names:
            raise ValueError(
                f"a skops file has one {SCHEMA} and unique members: {names}."
            )
        declared = sum(info.file_size for info in infos)
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ValueError(
                    f"member {info.filename!r} is compressed or encrypted; "
                    "load reads stored members only."
                )
        if declared > len(data):
            raise ValueError(
                f"its members declare {declared} bytes, more than the "
                f"file's {len(data)}."
            )
        arrays = {}
        for info in infos:
            if info.filename == SCHEMA:
                if info.file_size > MAX_SCHEMA_BYTES:
                    raise ValueError(
                        f"{SCHEMA} has {info.file_size} bytes, more than "
                        f"the {MAX_SCHEMA_BYTES} load reads."
                    )
            elif info.filename.endswith(".npy"):
                # ZipFile.read checks the member's CRC-32.
                arrays[info.filename] = _check_npy(info.filename, zf.read(info))
            else:
                # Bytes (.bin) and sparse matrices (.npz) are not in our files.
                raise ValueError(f"unexpected member {info.filename!r}.")
        schema = json.loads(zf.read(SCHEMA))
    protocol = schema.get("protocol") if isinstance(schema, dict) else None
    if protocol != PROTOCOL or isinstance(protocol, bool):
        raise ValueError(
            f"it has skops protocol {protocol!r}; this version reads protocol "
            f"{PROTOCOL} (save the model again with this version)."
        )
    return check_schema(schema, arrays, trusted)


def _check_npy(member, content):
    """Refuse a ``.npy`` member whose header does not describe its bytes."""
    stream = io.BytesIO(content)
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"{member}: unsupported .npy version {version}.")
    if dtype.hasobject:
        raise ValueError(f"{member}: object arrays need pickle; refused.")
    data_bytes = len(content) - stream.tell()
    # Zero-width items (a "<U0" dtype) would let a huge shape hold no bytes.
    size = math.prod(shape)
    if size * dtype.itemsize != data_bytes or size > data_bytes:
        raise ValueError(
            f"{member}: its header claims shape {shape} of {dtype.str}, "
            f"{size * dtype.itemsize} bytes, but it holds "
            f"{data_bytes}."
        )
    return tuple(shape), dtype


def _write_atomically(path, data):
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    if hasattr(path, "write"):
        path.write(data)
        return
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    # Not mkstemp: its files are private (0600). Opened with 0666, the file
    # gets a new file's usual mode from the umask, which reading the umask
    # (os.umask sets it, process-wide) would race with other threads.
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
