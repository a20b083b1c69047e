"""The estimator for a module the user brings: TorchClassifier, TorchRegressor.

``module`` is an ``nn.Module`` subclass or a function returning a module. A
fit calls it with the ``module__*`` parameters (skorch's convention) and,
where its signature names them, the sizes the data decides: ``n_features_in``
and ``n_outputs``. Everything else is :class:`skorchlite._base.BaseTorchEstimator`:
the same training parameters, loop, solvers, targets and state as the MLPs.

Randomness: the module is built, and trained, inside
:class:`skorchlite._engine.randomness.OwnRandomness`, so its initial weights
and its dropout come from generators seeded from ``random_state``, never from
torch's global one. Saving: the module travels as plain arrays (its
``state_dict``) plus ``module`` (pickled by reference: its import path) and
the ``module__*`` values; loading rebuilds it on the meta device (nothing
allocated from the file's sizes), checks every array against what the
parameters build, and only then gives it the arrays.
"""

import contextlib
import copy
import inspect

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ._base import BaseTorchEstimator, _as_tensor
from ._engine.data import dense_rows
from ._engine.randomness import OwnRandomness
from ._engine.stack import ModuleStack

#: The sizes a fit passes to ``module`` when its signature names them.
DATA_SIZES = ("n_features_in", "n_outputs")
_PREFIX = "module__"
_ABSENT = object()
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The random streams of one seed: the initial weights, and training's draws.
_INIT_STREAM, _TRAINING_STREAM = 0, 1


def stream_seed(seed, stream):
    """A seed for ``stream`` of ``seed`` (independent streams, one seed).

    Examples
    --------
    >>> stream_seed(0, 0) != stream_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0])


def split_module_params(params):
    """``(module_params, others)`` of a parameter dict, by the prefix."""
    module_params = {k: v for k, v in params.items() if k.startswith(_PREFIX)}
    return module_params, {k: v for k, v in params.items() if k not in module_params}


def _describe(module):
    return getattr(module, "__qualname__", None) or repr(module)


class BaseTorchModule(BaseTorchEstimator):
    """Base of TorchClassifier and TorchRegressor: a user's ``module``."""

    _parameter_constraints: dict = {
        **BaseTorchEstimator._parameter_constraints,
        "module": [callable],
    }

    def _store_module_params(self, module_params):
        """Keep the keyword arguments of ``__init__`` (the ``module__*`` ones).

        Like every parameter they are checked by ``fit``, not here (sklearn's
        rule: ``__init__`` and ``set_params`` raise nothing). One private dict
        holds them: sklearn's checks allow no public attribute that is not a
        name of the signature.
        """
        if "_module_params" not in vars(self):
            self._module_params = {}
        self._module_params.update(module_params)

    def _check_module_params(self):
        wrong = [
            name
            for name in self._module_params
            if not (isinstance(name, str) and name.startswith(_PREFIX))
            or name == _PREFIX
        ]
        if wrong:
            raise TypeError(
                f"{type(self).__name__} got an unexpected keyword argument "
                f"{wrong[0]!r} (the module's own arguments are passed as "
                f"module__<name>=value)."
            )

    def __getattr__(self, name):
        # ``clf.module__width`` reads the parameter, as skorch's attributes do.
        params = vars(self).get("_module_params", {})
        if name.startswith(_PREFIX) and name in params:
            return params[name]
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    # ------------------------------------------------------------ parameters

    def get_params(self, deep=True):
        """Get the parameters, ``module__*`` included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return {**super().get_params(deep=deep), **self._module_params}

    def set_params(self, **params):
        """Set the parameters, ``module__*`` ones included (new ones too).

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        module_params, others = split_module_params(params)
        # The name of **module_params itself: kept, and refused by fit.
        keyword = others.pop("module_params", _ABSENT)
        if keyword is not _ABSENT:
            module_params["module_params"] = keyword
        self._store_module_params(module_params)
        return super().set_params(**others) if others else self

    # -------------------------------------------------------------- network

    def _check_architecture(self):
        self._check_module_params()
        if isinstance(self.module, nn.Module):
            raise ValueError(
                f"module must be an nn.Module class or a function returning a "
                f"module, got the instance {_describe(type(self.module))}(...): "
                f"pass the class itself, with its arguments as "
                f"module__<name>=value, so that each fit builds (and seeds) its "
                f"own module."
            )
        self._factory_arguments(1, 1)  # raises for a module__ it does not take

    def _factory_arguments(self, n_features, n_outputs):
        """The keyword arguments of ``module`` for data of these sizes."""
        arguments = {
            name.removeprefix(_PREFIX): value
            for name, value in self._module_params.items()
        }
        try:
            signature = inspect.signature(self.module)
        except (TypeError, ValueError):  # a builtin: pass what was given
            return arguments
        parameters = signature.parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        unknown = [name for name in arguments if name not in parameters]
        if unknown and not takes_any:
            raise ValueError(
                f"module__{unknown[0]} is not an argument of "
                f"{_describe(self.module)}{signature}."
            )
        sizes = {"n_features_in": n_features, "n_outputs": n_outputs}
        for name in DATA_SIZES:
            if name in parameters and name not in arguments:
                arguments[name] = sizes[name]
        return arguments

    def _call_module(self, n_features, n_outputs):
        """``module(**arguments)``, its errors said as ours."""
        arguments = self._factory_arguments(n_features, n_outputs)
        listed = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        call = f"{_describe(self.module)}({listed})"
        try:
            # On copies, as clone copies the parameters: fit trains (and
            # converts) the module it builds, never a value of module__* (a
            # pretrained encoder, say), and each fit starts from the same one.
            module = self.module(**copy.deepcopy(arguments))
        except Exception as exc:
            raise ValueError(f"building the module {call} failed: {exc!r}") from exc
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"module must build a torch.nn.Module; {call} returned a "
                f"{type(module).__name__}."
            )
        if not any(p.requires_grad for p in module.parameters()):
            raise ValueError(f"the module {call} has no parameters to train.")
        return module

    def _build_module(self, X, n_outputs, dtype, device):
        with (
            torch.inference_mode(False),
            OwnRandomness(stream_seed(self._seed, _INIT_STREAM)),
        ):
            module = self._call_module(X.shape[1], n_outputs)
        module = module.to(device=device, dtype=dtype)
        _check_outputs(module, X, n_outputs, dtype, device)
        return module

    def _penalized_weights(self):
        # What sklearn's alpha penalizes in an MLP: the weights, not the
        # biases; in a module, every parameter of 2 or more dimensions (linear
        # and convolution weights, embeddings), not biases or norm scales;
        # nor a frozen one (requires_grad=False): training leaves it as it is.
        return [
            p for p in self.module_.parameters() if p.dim() >= 2 and p.requires_grad
        ]

    def _training_randomness(self, seed, device):
        return contextlib.nullcontext()  # around the module's forward instead

    def _stack(self, spec):
        frozen = [
            name
            for name, p in self.module_.named_parameters()
            if not p.requires_grad and p.dim() >= 2
        ]
        if frozen and spec.solver.name == "adamw" and spec.settings.alpha > 0:
            # AdamW's decoupled decay shrinks every weight it steps.
            raise ValueError(
                f"solver='adamw' with alpha={spec.settings.alpha} would decay the "
                f"frozen parameters {frozen} of the module (requires_grad=False). "
                "Use solver='adam' (alpha is then an L2 penalty on the trainable "
                "weights only), set alpha=0, or register them as buffers."
            )
        stack = super()._stack(spec)
        if isinstance(stack, ModuleStack):
            stack.randomness = OwnRandomness(stream_seed(spec.seed, _TRAINING_STREAM))
        return stack

    # ----------------------------------------------------------------- state

    def _meta_module(self, n_features, n_outputs):
        """The module the parameters build for these sizes, allocating nothing."""
        with torch.inference_mode(False), torch.device("meta"), OwnRandomness(0):
            return self._call_module(n_features, n_outputs)

    def _module_values(self):
        entries = self.module_.state_dict()
        try:
            expected = self._meta_module(self.n_features_in_, self.n_outputs_)
        except (TypeError, ValueError) as exc:
            raise TypeError(str(exc)) from None
        mismatch = _state_mismatch(expected.state_dict(), entries)
        if mismatch:  # module_ replaced after fit: it travels as torch objects
            raise TypeError(f"module_ is not what module builds: {mismatch}")
        dtype = next(self.module_.parameters()).dtype
        return {
            "dtype": str(dtype).removeprefix("torch."),
            "names": list(entries),
            "arrays": [t.detach().cpu().numpy() for t in entries.values()],
        }

    def _rebuild_module(self, saved, state):
        if not isinstance(saved, dict) or set(saved) != {"dtype", "names", "arrays"}:
            raise ValueError("the module state needs the entries dtype, names, arrays.")
        dtype = _DTYPES.get(saved["dtype"]) if isinstance(saved["dtype"], str) else None
        if dtype is None:
            raise ValueError(f"unsupported module dtype {saved['dtype']!r}.")
        self._check_architecture()
        module = self._meta_module(state["n_features_in_"], state["n_outputs_"])
        expected = module.state_dict()
        names, arrays = saved["names"], saved["arrays"]
        if not isinstance(names, list) or names != list(expected):
            raise ValueError(
                f"the module state names {names!r}; the parameters build a "
                f"module of {list(expected)}."
            )
        if not isinstance(arrays, list) or len(arrays) != len(names):
            raise ValueError("the module state needs one array per name.")
        tensors = {}
        for name, array in zip(names, arrays, strict=True):
            meta = expected[name]
            want = dtype if meta.is_floating_point() else meta.dtype
            numpy_dtype = torch.empty(0, dtype=want).numpy().dtype
            if (
                not isinstance(array, np.ndarray)
                or isinstance(array, np.matrix)
                or array.dtype != numpy_dtype
                or array.shape != tuple(meta.shape)
            ):
                raise ValueError(
                    f"module array {name!r} must be a numpy array of shape "
                    f"{tuple(meta.shape)} and dtype {numpy_dtype} (what the "
                    f"parameters build), got {_array_description(array)}."
                )
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"module array {name!r} holds NaN or infinite values.")
            tensors[name] = torch.tensor(array)  # own, writable memory
        module.load_state_dict(tensors, assign=True)
        if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
            # Tensors outside the state_dict (non-persistent buffers): build
            # it for real, its parameters' sizes now known to be the file's.
            with torch.inference_mode(False), OwnRandomness(0):
                module = self._call_module(state["n_features_in_"], state["n_outputs_"])
            module.to(dtype).load_state_dict(tensors)
        return module.eval()


def _array_description(array):
    if isinstance(array, np.ndarray):
        return f"shape {array.shape} and dtype {array.dtype}"
    return type(array).__name__


def _state_mismatch(expected, entries):
    """How two state dicts differ in names or shapes, or None."""
    if list(expected) != list(entries):
        return f"entries {list(entries)}, expected {list(expected)}"
    for name, tensor in entries.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            shape, want = tuple(tensor.shape), tuple(expected[name].shape)
            return f"{name!r} has shape {shape}, expected {want}"
    return None


def _check_outputs(module, X, n_outputs, dtype, device):
    """Raise ValueError unless ``module`` maps rows of ``X`` to
    ``(n_rows, n_outputs)`` outputs (run on two rows, in eval mode)."""
    rows = X[:2]
    batch = (
        dense_rows(rows, dtype, device)
        if sp.issparse(rows)
        else _as_tensor(rows, dtype, device)
    )
    expected = (batch.shape[0], n_outputs)
    training = module.training
    try:
        with torch.no_grad():
            outputs = module.eval()(batch)
    except Exception as exc:
        raise ValueError(
            f"the module failed on a batch of X of shape {tuple(batch.shape)} "
            f"({dtype}): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        module.train(training)
    if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != expected:
        got = (
            f"shape {tuple(outputs.shape)}"
            if isinstance(outputs, torch.Tensor)
            else f"a {type(outputs).__name__}"
        )
        raise ValueError(
            f"the module must return one row of {n_outputs} output(s) per "
            f"sample: shape {expected} for a batch of {batch.shape[0]} rows, "
            f"got {got}. Give it n_outputs (a parameter of that name receives "
            f"the number the targets need) or reshape its output."
        )
