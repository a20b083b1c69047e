"""What :func:`skorchlite.load` lets skops build, checked before skops reads a file.

A skops file's ``schema.json`` is a tree of nodes. Each names a loader (how
skops builds it: ``ObjectNode`` calls ``cls.__new__`` and ``__setstate__``,
``TypeNode`` and ``FunctionNode`` import a name, ``ConstructorFromReduceNode``
calls a type with arguments from the file, ``DictNode`` calls each key's type
on the key...) and a type, ``__module__`` and ``__class__``. skops trusts
whole families by default, and a name is looked up as an attribute of its
module, so trusting a module trusts everything it imports
(``sklearn.model_selection._split.np`` is numpy, and ``os.system`` is three
attribute lookups from numpy). :func:`check_schema` therefore walks the
schema before skops builds a single node and refuses:

- a loader not in :data:`TRUSTED`, or a type not listed under its loader
  (:data:`TRUSTED` lists types and functions, never modules; scorers' metric
  functions come from scikit-learn's scorer registry);
- a dict key type, a numpy scalar, a ``RandomState`` state, a ``torch.device``
  or a slice whose values are not what our files hold (a 0-d array of the
  scalar's own dtype, ``pos`` within the key, ...);
- an object state key naming an attribute of its class (it would shadow a
  method: ``predict = numpy.negative``), or an estimator's state without its
  parameters (another object's state under its class's name), or a scorer
  calling a method other than a prediction method;
- a node id used again for a different node: skops reads a repeated id as a
  reference to the first node (and reads nothing else of the repeated one),
  and our files (``skops.io.dump``'s) repeat the node whole (but for ids and
  member names numbered by short-lived objects inside it), so every reference
  expands to no more than the file spells out;
- more than :data:`MAX_NODES` nodes, or nesting deeper than :data:`MAX_DEPTH`.
"""

import functools
import importlib
import json
import math
from numbers import Integral

import numpy as np

# Generated from what skorchlite.save writes for the supported cases: our
# estimators (every target, solver and early stopping, RandomState seeds,
# class weights, torch.device), alone, in Pipelines with scikit-learn's usual
# preprocessing, in meta-estimators, and in scikit-learn's and our searches.
# tests/test_schema.py builds those cases and holds this table equal to them.
TRUSTED = {
    "ObjectNode": frozenset(
        {
            "skorchlite._classifier.TorchClassifier",
            "skorchlite._classifier.TorchMLPClassifier",
            "skorchlite._regressor.TorchMLPRegressor",
            "skorchlite._regressor.TorchRegressor",
            "skorchlite.model_selection.BatchedGridSearchCV",
            "skorchlite.model_selection.BatchedHalvingGridSearchCV",
            "skorchlite.model_selection.BatchedHalvingRandomSearchCV",
            "skorchlite.model_selection.BatchedRandomizedSearchCV",
            "sklearn.compose._column_transformer.ColumnTransformer",
            "sklearn.compose._target.TransformedTargetRegressor",
            "sklearn.decomposition._pca.PCA",
            "sklearn.impute._base.SimpleImputer",
            "sklearn.metrics._scorer._PassthroughScorer",
            "sklearn.metrics._scorer._Scorer",
            "sklearn.model_selection._search.GridSearchCV",
            "sklearn.model_selection._search.RandomizedSearchCV",
            "sklearn.model_selection._split.KFold",
            "sklearn.model_selection._split.StratifiedKFold",
            "sklearn.multiclass.OneVsRestClassifier",
            "sklearn.multioutput.MultiOutputRegressor",
            "sklearn.pipeline.Pipeline",
            "sklearn.preprocessing._data.MinMaxScaler",
            "sklearn.preprocessing._data.RobustScaler",
            "sklearn.preprocessing._data.StandardScaler",
            "sklearn.preprocessing._encoders.OneHotEncoder",
            "sklearn.preprocessing._function_transformer.FunctionTransformer",
            "sklearn.preprocessing._label.LabelBinarizer",
            "sklearn.preprocessing._polynomial.PolynomialFeatures",
        }
    ),
    # Dict key types and type-valued parameters (OneHotEncoder's dtype).
    "TypeNode": frozenset({"builtins.int", "builtins.str", "numpy.float64"}),
    # ndarray, and the numpy scalar types our files hold (as 0-d arrays).
    "NdArrayNode": frozenset({"numpy.ndarray", "numpy.float64", "numpy.int64"}),
    "ConstructorFromReduceNode": frozenset({"torch.device"}),
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str"}),
    "SliceNode": frozenset({"builtins.slice"}),
    "DTypeNode": frozenset({"numpy.dtype"}),
    "MaskedArrayNode": frozenset({"numpy.ma.MaskedArray"}),
    "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
    # Only scorers' metrics (see scorer_functions), and what ``trusted=`` adds.
    "FunctionNode": frozenset(),
}
#: Loaders whose type a caller may add to with ``load(..., trusted=[...])``:
#: those building a class or function by name, with no arguments from the file.
EXTENSIBLE = ("ObjectNode", "TypeNode", "FunctionNode")
# Our deepest file nests 12 nodes (a ColumnTransformer in a Pipeline).
MAX_DEPTH = 64
# skops keeps ~2-3 KB per node (each copies its trusted-type lists): this
# bounds a load's nodes to ~300 MB; our largest files have a few thousand.
MAX_NODES = 100_000
# What skops.io.dump numbers by the id of a short-lived object (a dtype's
# empty array, a dict's key type list), which differs between repeats.
_IDS = ("__id__", "file")
_RANDOM_STATE_KEY = (624,)  # MT19937's key: 624 uint32 words
# A scorer calls the estimator's method of this name when a search scores.
_SCORER = "sklearn.metrics._scorer._Scorer"
_RESPONSE_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "predict_log_proba",
)


@functools.cache
def scorer_functions():
    """The metric functions of scikit-learn's named scorers (``"accuracy"``,
    ``"neg_log_loss"``...): what a fitted search's scorer holds."""
    from sklearn.metrics import get_scorer, get_scorer_names

    functions = (get_scorer(name)._score_func for name in get_scorer_names())
    return frozenset(f"{f.__module__}.{f.__qualname__}" for f in functions)


def check_schema(schema, arrays, trusted=()):
    """Check a parsed ``schema.json`` against :data:`TRUSTED`.

    Parameters
    ----------
    schema : dict
        The parsed ``schema.json``.
    arrays : dict
        ``{member name: (shape, numpy dtype)}`` of the archive's ``.npy``
        members, whose headers were checked.
    trusted : iterable of str
        Names of classes or functions the caller trusts beyond
        :data:`TRUSTED` (for the loaders of :data:`EXTENSIBLE`).

    Returns
    -------
    used : list of str
        The trusted type names the file uses (for skops' ``trusted=``).
    untrusted : list of str
        The type names the file uses that are not trusted.

    Raises
    ------
    ValueError
        If a node breaks a rule of the module docstring.
    """
    walk = _Walk(arrays, trusted)
    walk.node(schema, 0)
    return sorted(walk.used), sorted(walk.untrusted)


class _Walk:
    def __init__(self, arrays, trusted):
        self.arrays, self.extra = arrays, frozenset(trusted)
        self.ids, self.members = {}, {}
        self.used, self.untrusted = set(), set()
        self.count = 0

    def node(self, node, depth):
        if not isinstance(node, dict):
            raise ValueError(f"a schema node must be an object, got {_short(node)}.")
        if depth > MAX_DEPTH:
            raise ValueError(f"the schema nests nodes deeper than {MAX_DEPTH}.")
        self.count += 1
        if self.count > MAX_NODES:
            raise ValueError(f"the schema has more than {MAX_NODES} nodes.")
        node_id = node.get("__id__")
        if node_id is not None:
            if not isinstance(node_id, int) or isinstance(node_id, bool):
                raise ValueError(f"invalid node id {_short(node_id)}.")
            first = self.ids.setdefault(node_id, node)
            if first is not node:
                if not _same(first, node):
                    raise ValueError(
                        f"node id {node_id} stands for two different nodes; a "
                        "skops file repeats a node whole where it is used again."
                    )
                return
        loader, name = node.get("__loader__"), _type_name(node)
        check = getattr(self, f"_{loader}", None) if isinstance(loader, str) else None
        if check is None or loader not in TRUSTED:
            raise ValueError(f"the schema has a node of unknown kind {_short(loader)}.")
        allowed = TRUSTED[loader]
        if loader == "FunctionNode":
            allowed = allowed | scorer_functions()
        if name in allowed or (loader in EXTENSIBLE and name in self.extra):
            self.used.add(name)
        else:
            self.untrusted.add(name)
        check(node, name, depth + 1)

    def children(self, nodes, depth):
        if not isinstance(nodes, list):
            raise ValueError(f"a node's content must be a list, got {_short(nodes)}.")
        for child in nodes:
            self.node(child, depth)

    # One method a loader: the node's fields, checked; children walked.

    def _JsonNode(self, node, name, depth):
        _json(node)

    def _TypeNode(self, node, name, depth):
        pass

    def _FunctionNode(self, node, name, depth):
        pass

    def _ListNode(self, node, name, depth):
        self.children(node.get("content"), depth)

    _TupleNode = _ListNode

    def _DictNode(self, node, name, depth):
        content, key_types = node.get("content"), node.get("key_types")
        if not isinstance(content, dict):
            raise ValueError("a dict node's content must be an object.")
        self.node(key_types, depth)
        types = key_types.get("content") if key_types.get("__loader__") else None
        if not isinstance(types, list) or len(types) != len(content):
            raise ValueError("a dict node needs one key type per key.")
        for key_type in types:
            # skops calls the key's type on the key (a string).
            if key_type.get("__loader__") != "TypeNode":
                raise ValueError(f"a dict key type must be a type: {_short(key_type)}.")
        for child in content.values():
            self.node(child, depth)

    def _ObjectNode(self, node, name, depth):
        attrs = node.get("content")
        if not isinstance(attrs, dict) or attrs.get("__loader__") != "DictNode":
            raise ValueError(f"the state of {name} must be a dict node.")
        self.node(attrs, depth)
        if name in self.untrusted:
            return
        cls, keys = _import(name), attrs["content"]
        shadowing = sorted(key for key in keys if hasattr(cls, key))
        if shadowing:
            raise ValueError(
                f"the state of {name} sets {shadowing}, which are attributes of "
                "its class (a state would replace them)."
            )
        if name == _SCORER:
            _check_response_method(keys.get("_response_method"))
        # An estimator's state holds its parameters: one without them is
        # another object's state under this class's name.
        missing = sorted(set(getattr(cls, "_get_param_names", list)()) - set(keys))
        if missing:
            raise ValueError(f"the state of {name} lacks its parameters {missing}.")

    def _NdArrayNode(self, node, name, depth):
        kind = node.get("type")
        if kind == "json":  # an object array: its items are nodes
            self.children(node.get("content"), depth)
            self.node(node.get("shape"), depth)
            if name != "numpy.ndarray":
                raise ValueError(f"an object array cannot be a {name}.")
            return
        if kind != "numpy":
            raise ValueError(f"unknown array node type {_short(kind)}.")
        member = node.get("file")
        if member not in self.arrays:
            raise ValueError(f"the array node names no .npy member: {_short(member)}.")
        if self.members.setdefault(member, node.get("__id__")) != node.get("__id__"):
            # skops reads a member once for each node naming it.
            raise ValueError(
                f"the schema names the member {member!r} in distinct nodes."
            )
        shape, dtype = self.arrays[member]
        if dtype.kind not in "biufcUS":
            raise ValueError(f"{member}: arrays of dtype {dtype.str} are not read.")
        if name != "numpy.ndarray" and name in TRUSTED["NdArrayNode"]:
            # skops calls the scalar type on the array: numpy.bytes_ of an int
            # array of 10**9 is a gigabyte.
            scalar = np.dtype(getattr(np, name.removeprefix("numpy.")))
            if shape != () or dtype != scalar:
                raise ValueError(
                    f"a {name} is a 0-d array of its dtype, not of shape "
                    f"{shape} and dtype {dtype.str}."
                )

    def _MaskedArrayNode(self, node, name, depth):
        content = node.get("content")
        if not isinstance(content, dict) or set(content) != {"data", "mask"}:
            raise ValueError("a masked array node needs its data and mask.")
        for part in ("data", "mask"):
            self.node(content[part], depth)
            if content[part].get("__loader__") != "NdArrayNode":
                raise ValueError(f"a masked array's {part} must be an array.")

    def _DTypeNode(self, node, name, depth):
        content = node.get("content")
        self.node(content, depth)
        if content.get("__loader__") != "NdArrayNode":
            raise ValueError("a dtype node holds an empty array of its dtype.")

    def _SliceNode(self, node, name, depth):
        content = node.get("content")
        if not isinstance(content, dict) or set(content) != {"start", "stop", "step"}:
            raise ValueError("a slice node needs start, stop and step.")
        if not all(v is None or _is_int(v) for v in content.values()):
            raise ValueError(f"a slice's start, stop and step are ints: {content}.")

    def _ConstructorFromReduceNode(self, node, name, depth):
        # skops calls the type with the node's arguments: torch.device only,
        # with a device type and an index, checked by building one here.
        content = node.get("content")
        self.node(content, depth)
        args = content.get("content") if content.get("__loader__") == "TupleNode" else 0
        if not isinstance(args, list) or not all(
            arg.get("__loader__") == "JsonNode" for arg in args
        ):
            raise ValueError(f"{name} is built from JSON values only.")
        values = [_json(arg) for arg in args]
        if name in self.untrusted:
            return
        if not (
            1 <= len(values) <= 2
            and isinstance(values[0], str)
            and len(values[0]) <= 16
            and all(_is_int(v) and 0 <= v < 2**16 for v in values[1:])
        ):
            raise ValueError(f"invalid torch.device arguments {_short(values)}.")
        import torch

        try:
            torch.device(*values)
        except RuntimeError as exc:
            raise ValueError(f"invalid torch.device {_short(values)}: {exc}") from None

    def _RandomStateNode(self, node, name, depth):
        # numpy's set_state does not check pos: a crafted one reads out of
        # bounds (or crashes) at the first draw.
        content = node.get("content")
        self.node(content, depth)
        state = _plain(content, self.arrays)
        inner = state.get("state") if isinstance(state, dict) else None
        if (
            not isinstance(inner, dict)
            or set(state) != {"bit_generator", "state", "has_gauss", "gauss"}
            or set(inner) != {"key", "pos"}
            or state["bit_generator"] != "MT19937"
            or inner["key"] != (_RANDOM_STATE_KEY, np.dtype(np.uint32))
            or not (_is_int(inner["pos"]) and 0 <= inner["pos"] <= 624)
            or state["has_gauss"] not in (0, 1)
            or isinstance(state["has_gauss"], bool)
            or not (isinstance(state["gauss"], float) and math.isfinite(state["gauss"]))
        ):
            raise ValueError(f"invalid RandomState state {_short(state)}.")


def _same(first, again):
    """Whether two schema values are equal but for their nodes' ids and
    members (skops never reads a repeated node's)."""
    if isinstance(first, dict):
        return (
            isinstance(again, dict)
            and first.keys() == again.keys()
            and all(key in _IDS or _same(first[key], again[key]) for key in first)
        )
    if isinstance(first, list):
        return (
            isinstance(again, list)
            and len(first) == len(again)
            and all(map(_same, first, again))
        )
    return type(first) is type(again) and first == again


def _check_response_method(node):
    if isinstance(node, dict) and node.get("__loader__") == "JsonNode":
        names = [_json(node)]
    elif isinstance(node, dict) and node.get("__loader__") in ("TupleNode", "ListNode"):
        names = [
            _json(item) if item.get("__loader__") == "JsonNode" else None
            for item in node.get("content", [])
        ]
    else:
        names = [None]
    if not names or not all(name in _RESPONSE_METHODS for name in names):
        raise ValueError(
            f"a scorer's _response_method must name {_RESPONSE_METHODS}, got "
            f"{_short(names)}."
        )


def _plain(node, arrays):
    """The value a checked node of JSON values, dicts and arrays stands for:
    arrays as ``(shape, dtype)``."""
    loader = node.get("__loader__")
    if loader == "JsonNode":
        return _json(node)
    if loader == "DictNode":
        return {key: _plain(value, arrays) for key, value in node["content"].items()}
    if loader == "NdArrayNode" and node.get("type") == "numpy":
        return arrays[node["file"]]
    return None


def _json(node):
    content = node.get("content")
    if not isinstance(content, str):
        raise ValueError(f"a JSON node's content must be a string: {_short(content)}.")
    return json.loads(content)


def _type_name(node):
    module, name = node.get("__module__"), node.get("__class__")
    if not isinstance(module, str) or not isinstance(name, str):
        raise ValueError(f"a schema node names no type: {_short(node)}.")
    return f"{module}.{name}"


def _import(name):
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
