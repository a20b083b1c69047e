"""Fitted state as plain numpy arrays and Python values, validated on load.

``BaseTorchMLP.__getstate__`` turns the torch objects of a fitted estimator
(its module, optimizer, target and history) into the values below, and
``__setstate__`` rebuilds them from those values after checking every one
against the architecture. Nothing torch-specific is pickled, so pickle,
joblib, ``copy.deepcopy``, skops and mlflow need no special case, a
GPU-trained model loads on a CPU, and a crafted file (skops loads untrusted
ones) gets a ``ValueError`` naming the problem before anything is allocated
from its values or handed to torch's kernels.

The state of a fitted estimator replaces ``module_``, ``_solver_state``,
``_target`` and ``_history`` with:

``_module_state``
    ``{"layout": [...], "dtype": "float32" | "float64", "arrays": [...]}``:
    one dict per layer (``{"layer": "linear", "in_features", "out_features"}``,
    ``{"layer": "activation", "name"}`` or ``{"layer": "dropout", "p"}``) and
    each Linear layer's weight (out, in) and bias, in layer order.
``_optimizer_state``
    None (no optimizer yet), or ``{"learning_rate": float, "parameters":
    [...]}``: the current learning rate (``learning_rate="invscaling"`` and
    ``"adaptive"`` lower it as training goes) and one entry per parameter in
    the solver's order: None (no state yet) or a dict of what the solver's
    state holds (:meth:`skorchlite._engine.solvers.Solver.new_state`: a
    ``"step"`` count as an int, moments as arrays). The other
    hyper-parameters are not stored: they are the estimator's validated
    parameters.
``_target_type``
    The name of the target in :data:`skorchlite._targets.TARGETS`.
``_history``
    The :class:`skorchlite._engine.loop.History` fields, as a dict.
"""

import dataclasses
import inspect
import itertools
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import is_regressor
from torch import nn

from ._engine.activations import ACTIVATIONS
from ._engine.loop import History
from ._engine.network import Dropout, check_hidden_layer_sizes, linear_layers
from ._engine.solvers import SOLVERS
from ._engine.spec import SolverSettings
from ._targets import TARGETS

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_ACTIVATION_NAMES = {spec.module: name for name, spec in ACTIVATIONS.items()}
#: Keys of a fitted state that replace the live torch objects.
STATE_KEYS = ("_module_state", "_optimizer_state", "_target_type", "_history")
#: The live attributes they replace.
LIVE_KEYS = ("module_", "_solver_state", "_target", "_history")
#: What older pickles of a changed ``module_`` hold instead of
#: ``_solver_state``: the torch optimizer's ``state_dict``.
LEGACY_KEYS = ("_optimizer",)
#: The other attributes a fit sets (a target adds its own, ``classes_``), by
#: the kind of value each holds.
FITTED_COUNTS = (
    "n_features_in_",
    "n_outputs_",
    "n_layers_",
    "n_iter_",
    "t_",
    "_no_improvement_count",
    "_seed",
)
FITTED_REALS = ("loss_", "best_loss_", "best_validation_score_")  # or None
FITTED_CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")
FITTED_OTHERS = ("out_activation_", "feature_names_in_")
#: What BaseEstimator.__getstate__ and sklearn's callbacks add (the last two
#: during a fit, where a callback such as ScoringMonitor copies the model).
ESTIMATOR_KEYS = (
    "_sklearn_version",
    "_skl_callbacks",
    "_callback_fit_ctx",
    "_skl_callbacks_to_teardown",
)
_SEED_LIMIT = 2**63


# ------------------------------------------------------------------- writing


def fitted_state(estimator, module_values, target, history, solver_state):
    """The plain values that stand for ``estimator``'s torch objects.

    Parameters
    ----------
    estimator : BaseTorchEstimator
        A fitted estimator (its parameters are read).
    module_values : dict
        Its ``module_`` as plain values (:func:`mlp_values`, or
        :func:`skorchlite._module.module_values`).
    target : skorchlite._targets.Target
    history : skorchlite._engine.loop.History
    solver_state : skorchlite._engine.solvers.SolverState or None

    Returns
    -------
    dict
        The entries ``STATE_KEYS`` describe.
    """
    return {
        "_module_state": module_values,
        "_optimizer_state": solver_state_values(estimator.solver, solver_state),
        "_target_type": target.name,
        "_history": dataclasses.asdict(history),
    }


def solver_state_values(solver_name, solver_state):
    """A solver's state of one model as plain values (None: no state yet)."""
    if solver_state is None:
        return None
    return {
        "learning_rate": float(solver_state.learning_rates[0]),
        "parameters": SOLVERS[solver_name].export_state(solver_state),
    }


def mlp_values(estimator):
    """The ``_module_state`` of an MLP estimator's ``module_``.

    Raises
    ------
    TypeError
        If the network is not what the parameters build (a ``module_``
        changed by the user): it cannot be stored as plain values.
    """
    plain_module = module_state(estimator.module_)
    mismatch = layout_mismatch(estimator, plain_module["layout"], estimator.module_)
    if mismatch:  # a module_ or parameters changed after fit: torch objects
        raise TypeError(mismatch)
    return plain_module


def rebuild_mlp(estimator, saved, state):
    """The CPU network of an MLP estimator's ``_module_state``, checked
    against its parameters and fitted attributes."""
    check_hidden_layer_sizes(estimator.hidden_layer_sizes)
    module = rebuild_module(saved)
    mismatch = layout_mismatch(estimator, saved["layout"], module)
    if mismatch:
        raise ValueError(mismatch)
    linears = linear_layers(module)
    check_network_sizes(state, linears[0].in_features, linears[-1].out_features)
    n_layers = state.get("n_layers_")
    if n_layers != len(linears) + 1:
        raise ValueError(
            f"n_layers_={n_layers!r} does not match the network's "
            f"{len(linears)} Linear layers."
        )
    return module


def check_network_sizes(state, n_inputs, n_outputs):
    """Raise ValueError unless ``n_features_in_`` and ``n_outputs_`` of
    ``state`` are the network's."""
    if state.get("n_outputs_") != n_outputs:
        raise ValueError(
            f"n_outputs_={state.get('n_outputs_')!r} does not match the "
            f"network's {n_outputs} outputs."
        )
    if state.get("n_features_in_") != n_inputs:
        raise ValueError(
            f"n_features_in_={state.get('n_features_in_')!r} does not match the "
            f"network's {n_inputs} inputs."
        )


def module_state(module):
    """The layout, dtype and weights (numpy, on the CPU) of ``module``."""
    layout = module_layout(module)
    linears = linear_layers(module)
    arrays = [
        _to_numpy(tensor) for layer in linears for tensor in (layer.weight, layer.bias)
    ]
    dtype = str(linears[0].weight.dtype).removeprefix("torch.")
    return {"layout": layout, "dtype": dtype, "arrays": arrays}


def module_layout(module):
    """The layer list of ``module`` (only the layers the estimator builds).

    Raises
    ------
    TypeError
        If ``module`` holds another kind of layer, or is no ``nn.Sequential``.
    """
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module_ must be an nn.Sequential, got {type(module)}.")
    layout = []
    for layer in module:
        if type(layer) is nn.Linear:
            layout.append(
                {
                    "layer": "linear",
                    "in_features": layer.in_features,
                    "out_features": layer.out_features,
                }
            )
        elif type(layer) in (nn.Dropout, Dropout):
            layout.append({"layer": "dropout", "p": float(layer.p)})
        elif type(layer) in _ACTIVATION_NAMES and repr(layer) == repr(type(layer)()):
            layout.append(
                {"layer": "activation", "name": _ACTIVATION_NAMES[type(layer)]}
            )
        else:
            raise TypeError(
                f"cannot store the layer {layer!r} of module_ as plain arrays: "
                "only the Linear, Dropout and activation layers the estimator "
                "builds can be."
            )
    return layout


def _to_numpy(tensor):
    return tensor.detach().to("cpu").numpy()


# ------------------------------------------------------------------- reading


def check_state_keys(estimator, state):
    """Raise ValueError unless ``state`` holds only keys ``estimator`` sets.

    An unknown key would become an instance attribute, and one naming a
    method (``predict``) would replace it.
    """
    allowed = {
        *_param_names(estimator),
        *_module_param_names(estimator, state),
        *ESTIMATOR_KEYS,
    }
    if "_module_state" in state or "module_" in state:
        allowed |= {*FITTED_COUNTS, *FITTED_REALS, *FITTED_CURVES, *FITTED_OTHERS}
        allowed |= {
            name for target in TARGETS.values() for name in target.fitted_attributes
        }
        allowed |= set(
            STATE_KEYS if "_module_state" in state else (*LIVE_KEYS, *LEGACY_KEYS)
        )
    unknown = sorted(repr(key) for key in state if key not in allowed)
    if unknown:
        raise ValueError(
            f"the state of a {type(estimator).__name__} has unknown entries "
            f"{', '.join(unknown)}."
        )
    version = state.get("_sklearn_version", "")
    if not isinstance(version, str):
        raise ValueError(f"_sklearn_version must be a string, got {version!r}.")
    check_random_state_parameter(state.get("random_state"))


def check_random_state_parameter(random_state):
    """Raise ValueError for a ``RandomState`` whose state would read out of
    bounds (numpy's ``set_state`` does not check ``pos``)."""
    if not isinstance(random_state, np.random.RandomState):
        return
    name, key, pos, *_ = random_state.get_state(legacy=True)
    if name != "MT19937" or key.shape != (624,) or not 0 <= pos <= 624:
        raise ValueError(f"random_state is a RandomState of invalid state (pos={pos}).")


def restore_fitted(estimator, state, rebuild):
    """The torch objects of ``estimator`` rebuilt from the plain ``state``.

    ``state`` holds the estimator's other attributes too; they are checked
    against the network. Nothing is set here: the estimator sets what this
    returns once every check has passed (``__setstate__`` empties it if any
    fails).

    Parameters
    ----------
    estimator : BaseTorchEstimator
        An estimator whose ``__dict__`` holds the parameters and fitted
        attributes of ``state`` (less ``STATE_KEYS``), its parameters already
        validated.
    state : dict
        What :func:`fitted_state` returned, with the other attributes.
    rebuild : callable
        ``rebuild(saved, state)``: the CPU module of the ``_module_state``
        ``saved``, checked against the parameters and ``state``'s
        ``n_features_in_`` and ``n_outputs_`` (ValueError if they disagree).

    Returns
    -------
    attributes : dict
        ``module_`` (on the CPU), ``_target``, ``_history`` and ``_seed``.
    solver_values : tuple or None
        The checked solver state: pass it to :func:`rebuild_solver_state`
        once the module is on its device.

    Raises
    ------
    ValueError
        If a value is missing, of the wrong type, shape or dtype, or
        inconsistent with the others.
    """
    saved = {key: state.get(key) for key in STATE_KEYS}
    target_type = saved["_target_type"]
    if not isinstance(target_type, str) or target_type not in TARGETS:
        raise ValueError(f"unknown target type {target_type!r}.")
    target_class = TARGETS[target_type]
    if target_class.regression != is_regressor(estimator):
        raise ValueError(
            f"a {target_type} target is not one of {type(estimator).__name__}."
        )
    target = check_attributes(estimator, state, target_class)
    with torch.inference_mode(False):
        module = rebuild(saved["_module_state"], state)
    history = check_history(saved["_history"])
    seed = state.get("_seed")
    if not _is_int(seed) or not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"invalid _seed {seed!r}.")
    solver_values = check_solver_state(saved["_optimizer_state"], estimator, module)
    attributes = {
        "module_": module,
        "_target": target,
        "_history": history,
        "_seed": int(seed),
    }
    return attributes, solver_values


def check_param_names(estimator, state):
    """Raise ValueError if a parameter of ``estimator`` is missing in ``state``."""
    missing = sorted(set(_param_names(estimator)) - set(state))
    if missing:
        raise ValueError(f"the parameters {missing} are missing.")


def _param_names(estimator):
    """The names of ``estimator``'s parameters (a user module's
    ``module__*`` ones aside: see :func:`_module_param_names`)."""
    parameters = inspect.signature(type(estimator).__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind != p.VAR_KEYWORD]


def _module_param_names(estimator, state):
    """``{"_module_params"}`` if ``estimator`` takes a user module's
    ``module__*`` parameters (kept in that dict), else nothing; raises
    ValueError if the dict in ``state`` is not one of such names."""
    parameters = inspect.signature(type(estimator).__init__).parameters.values()
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
        return set()
    values = state.get("_module_params", {})
    if not isinstance(values, dict) or not all(
        isinstance(key, str) and key.startswith("module__") and key.isidentifier()
        for key in values
    ):
        raise ValueError("_module_params must map module__<name> keys to values.")
    return {"_module_params"}


def _settings(estimator):
    return SolverSettings.of(estimator)


def _stacked_parameters(module):
    """The module's parameters as a stack of one (the engine's layout)."""
    return [p.detach()[None] for p in module.parameters()]


def rebuild_module(saved):
    """The CPU ``nn.Sequential`` a :func:`module_state` describes, checked."""
    if not isinstance(saved, dict) or set(saved) != {"layout", "dtype", "arrays"}:
        raise ValueError("the module state needs the entries layout, dtype, arrays.")
    dtype = _DTYPES.get(saved["dtype"]) if isinstance(saved["dtype"], str) else None
    if dtype is None:
        raise ValueError(f"unsupported module dtype {saved['dtype']!r}.")
    layout, arrays = saved["layout"], saved["arrays"]
    if not isinstance(layout, list) or not layout or not isinstance(arrays, list):
        raise ValueError("the module layout and arrays must be non-empty lists.")
    layers, shapes = [], []
    for index, spec in enumerate(layout):
        layers.append(_layer(index, spec, dtype))
        if isinstance(layers[-1], nn.Linear):
            shapes += [(spec["out_features"], spec["in_features"])]
            shapes += [(spec["out_features"],)]
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    if not isinstance(layers[0], nn.Linear) or not isinstance(layers[-1], nn.Linear):
        raise ValueError("the network must start and end with a Linear layer.")
    for previous, layer in itertools.pairwise(linears):
        if previous.out_features != layer.in_features:
            raise ValueError("the Linear layers' sizes do not chain.")
    if len(arrays) != len(shapes):
        raise ValueError(
            f"the module state has {len(arrays)} arrays, its layout needs "
            f"{len(shapes)} (a weight and a bias per Linear layer)."
        )
    numpy_dtype = np.dtype(saved["dtype"])
    for index, (array, shape) in enumerate(zip(arrays, shapes, strict=True)):
        _check_array(array, shape, numpy_dtype, f"module array {index}")
    for layer, weight, bias in zip(linears, arrays[::2], arrays[1::2], strict=True):
        # Own, writable memory: torch.tensor copies.
        layer.weight = nn.Parameter(torch.tensor(weight))
        layer.bias = nn.Parameter(torch.tensor(bias))
    return nn.Sequential(*layers).eval()


def layout_mismatch(estimator, layout, module):
    """How ``estimator``'s parameters disagree with the network, or None.

    The network is what ``hidden_layer_sizes``, ``activation``, ``dropout``
    and ``dtype`` build; a state whose network is another would load with
    parameters that misreport it (and ``get_params`` clones another model).
    """
    try:
        sizes = check_hidden_layer_sizes(estimator.hidden_layer_sizes)
    except (ValueError, TypeError) as exc:
        return f"invalid parameters: {exc}"
    widths = [spec["out_features"] for spec in layout if spec["layer"] == "linear"]
    activations = {spec["name"] for spec in layout if spec["layer"] == "activation"}
    dropouts = [spec["p"] for spec in layout if spec["layer"] == "dropout"]
    dtype = str(linear_layers(module)[0].weight.dtype).removeprefix("torch.")
    expected_dropouts = (
        [float(estimator.dropout)] * len(sizes) if estimator.dropout else []
    )
    if (
        widths[:-1] != sizes
        or activations - {estimator.activation}
        or len(layout) != 2 * len(sizes) + 1 + len(expected_dropouts)
        or dropouts != expected_dropouts
        or estimator.dtype not in (None, dtype)
    ):
        return (
            f"the parameters (hidden_layer_sizes={estimator.hidden_layer_sizes!r}, "
            f"activation={estimator.activation!r}, dropout={estimator.dropout!r}, "
            f"dtype={estimator.dtype!r}) do not describe the stored network "
            f"({layout}, {dtype})."
        )
    return None


def _layer(index, spec, dtype):
    kind = spec.get("layer") if isinstance(spec, dict) else None
    if kind == "linear" and set(spec) == {"layer", "in_features", "out_features"}:
        n_in, n_out = spec["in_features"], spec["out_features"]
        if _is_int(n_in) and _is_int(n_out) and n_in > 0 and n_out > 0:
            # The meta device allocates nothing: the sizes come from the file,
            # the memory only from the arrays it carries.
            return nn.Linear(int(n_in), int(n_out), dtype=dtype, device="meta")
    elif kind == "activation" and set(spec) == {"layer", "name"}:
        if isinstance(spec["name"], str) and spec["name"] in ACTIVATIONS:
            return ACTIVATIONS[spec["name"]].module()
    elif kind == "dropout" and set(spec) == {"layer", "p"}:
        p = spec["p"]
        if isinstance(p, Real) and not isinstance(p, bool) and 0 <= p < 1:
            return Dropout(float(p))
    raise ValueError(f"unsupported layer {index} in the module state: {spec!r}.")


def _check_array(array, shape, dtype, name, nonnegative=False):
    # Subclasses pass: joblib loads memory maps.
    if not isinstance(array, np.ndarray) or isinstance(array, np.matrix):
        raise ValueError(f"{name} must be a numpy array, got {type(array)}.")
    if array.dtype != dtype or array.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {array.shape} and dtype {array.dtype}; the network "
            f"needs shape {tuple(shape)} and dtype {dtype}."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values.")
    if nonnegative and (array < 0).any():
        raise ValueError(f"{name} holds negative values.")


def check_attributes(estimator, state, target_class):
    """The target the attributes describe (the network's sizes are checked
    by the module's ``rebuild``)."""
    required = [
        "n_features_in_",
        "n_outputs_",
        "out_activation_",
        *target_class.fitted_attributes,
    ]
    missing = [name for name in required if name not in state]
    if missing:
        raise ValueError(f"missing fitted attributes {missing}.")
    n_outputs, n_features = state["n_outputs_"], state["n_features_in_"]
    if not _is_int(n_outputs) or not _is_int(n_features) or n_features < 1:
        raise ValueError(
            "n_outputs_ and n_features_in_ must be integers, n_features_in_ > 0."
        )
    target = target_class.from_fitted(state, estimator)
    if n_outputs != target.n_outputs:
        raise ValueError(
            f"n_outputs_={n_outputs!r} does not match a {target_class.name} "
            f"target of {target.n_outputs} output(s)."
        )
    names = state.get("feature_names_in_")
    if names is not None and (
        not isinstance(names, np.ndarray)
        or names.shape != (n_features,)
        or not all(isinstance(name, str) for name in names)
    ):
        raise ValueError("feature_names_in_ does not match n_features_in_.")
    if state["out_activation_"] != target.out_activation:
        raise ValueError(f"out_activation_ must be {target.out_activation!r}.")
    for name in FITTED_COUNTS:
        value = state.get(name, 0)
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    for name in FITTED_REALS:
        value = state.get(name)
        if value is not None and not _is_real(value):
            raise ValueError(f"{name} must be a number or None, got {value!r}.")
    for name in FITTED_CURVES:
        value = state.get(name)
        if value is not None and not (
            isinstance(value, list) and all(_is_real(v) for v in value)
        ):
            raise ValueError(f"{name} must be a list of numbers or None.")
    return target


def check_history(fields):
    names = {field.name for field in dataclasses.fields(History)}
    if not isinstance(fields, dict) or set(fields) != names:
        raise ValueError(f"the training history needs the fields {sorted(names)}.")
    counts = ("n_iter", "t", "no_improvement_count")
    floats = ("best_loss", "best_validation_score")
    lists = ("loss_curve", "validation_scores", "validation_losses")
    if (
        not all(_is_int(fields[name]) and fields[name] >= 0 for name in counts)
        or not all(_is_real(fields[name]) for name in floats)
        or not all(
            isinstance(fields[name], list) and all(_is_real(v) for v in fields[name])
            for name in lists
        )
        or not (fields["loss"] is None or _is_real(fields["loss"]))
    ):
        raise ValueError("the training history has values of the wrong type.")
    return History(
        **{name: int(fields[name]) for name in counts},
        **{name: float(fields[name]) for name in floats},
        **{name: [float(v) for v in fields[name]] for name in lists},
        loss=None if fields["loss"] is None else float(fields["loss"]),
    )


def check_solver_state(saved, estimator, module):
    """The checked learning rate and per-parameter entries, or None."""
    if saved is None:
        return None
    solver = SOLVERS[estimator.solver]
    params = _stacked_parameters(module)
    names = solver.entry_names(params, _settings(estimator))
    if not names:
        raise ValueError(f"solver={solver.name!r} keeps no optimizer state.")
    if not isinstance(saved, dict) or set(saved) != {"learning_rate", "parameters"}:
        raise ValueError("the optimizer state needs learning_rate and parameters.")
    learning_rate = saved["learning_rate"]
    if not _is_real(learning_rate) or not 0 < learning_rate < math.inf:
        raise ValueError(f"invalid optimizer learning_rate {learning_rate!r}.")
    entries = saved["parameters"]
    if not isinstance(entries, list) or len(entries) != len(params):
        raise ValueError(
            f"the optimizer state must list {len(params)} parameters' states."
        )
    order = solver.parameter_order(len(params))
    dtype = np.dtype(str(params[0].dtype).removeprefix("torch."))
    for index, entry in zip(order, entries, strict=True):
        if entry is None:
            continue
        if not isinstance(entry, dict) or set(entry) != names:
            raise ValueError(
                f"the optimizer state of parameter {index} must have the entries "
                f"{sorted(names)}."
            )
        for name, value in entry.items():
            where = f"optimizer state {name!r} of parameter {index}"
            if name == "step":
                # Adam divides by 1 - beta ** step: the step is at least 1.
                if not _is_int(value) or not 1 <= value < 2**53:
                    raise ValueError(f"{where} must be a positive integer.")
            else:
                shape = params[index].shape[1:]
                _check_array(value, shape, dtype, where, name in solver.nonnegative)
    return float(learning_rate), entries


def rebuild_solver_state(estimator, solver_values):
    """The solver state of ``estimator``'s module from checked values.

    Only tensors we made, each of its parameter's shape, dtype and device,
    reach torch.
    """
    if solver_values is None:
        return None
    learning_rate, entries = solver_values
    solver = SOLVERS[estimator.solver]
    with torch.inference_mode(False):
        return solver.import_state(
            entries,
            _stacked_parameters(estimator.module_),
            _settings(estimator),
            learning_rate,
        )


def check_optimizer_tensors(module, optimizer_state):
    """Raise ValueError unless each tensor of a torch optimizer ``state_dict``
    (an older pickle's) is its parameter's shape and dtype (a step count:
    one value): a 0-d moment makes torch's kernels read out of bounds."""
    if optimizer_state is None:
        return
    parameters = list(module.parameters())
    state = optimizer_state.get("state") if isinstance(optimizer_state, dict) else None
    if not isinstance(state, dict):
        raise ValueError("the pickled optimizer state has no 'state' dict.")
    for index, entries in state.items():
        if not _is_int(index) or not 0 <= index < len(parameters):
            raise ValueError(f"the pickled optimizer state names parameter {index!r}.")
        parameter = parameters[index]
        for name, value in entries.items():
            if not torch.is_tensor(value):
                continue
            if name == "step":
                wrong = value.numel() != 1
            else:
                wrong = value.shape != parameter.shape or value.dtype != parameter.dtype
            if wrong:
                raise ValueError(
                    f"the pickled optimizer state {name!r} of parameter {index} "
                    f"is a {tuple(value.shape)} {value.dtype} tensor; the "
                    f"parameter is {tuple(parameter.shape)} {parameter.dtype}."
                )


def solver_state_from_torch(estimator, optimizer_state):
    """The solver state of an older pickle's torch optimizer ``state_dict``
    (whose parameters are in the solver's saved order), checked."""
    check_optimizer_tensors(estimator.module_, optimizer_state)
    if optimizer_state is None:
        return None
    n_params = len(list(estimator.module_.parameters()))
    entries = []
    for index in range(n_params):
        values = optimizer_state["state"].get(index)
        if not values:
            entries.append(None)
            continue
        entries.append(
            {
                name: int(value.item()) if name == "step" else value.cpu().numpy()
                for name, value in values.items()
                if value is not None
            }
        )
    groups = optimizer_state.get("param_groups") or [{}]
    learning_rate = groups[0].get("lr", estimator.learning_rate_init)
    checked = check_solver_state(
        {"learning_rate": learning_rate, "parameters": entries},
        estimator,
        estimator.module_,
    )
    return rebuild_solver_state(estimator, checked)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)
