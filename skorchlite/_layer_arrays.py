"""``coefs_`` and ``intercepts_``: the module's weights as numpy arrays.

MLPClassifier keeps its weights in these lists, so code that edits them
(pruning, copying weights from another model, teaching examples) changes its
predictions. Ours keep theirs in the module; the lists below read and write
those:

- on the CPU each array is a view of a parameter's memory, so
  ``clf.coefs_[0][:] = 0`` changes the module;
- elsewhere (a GPU) the arrays are read-only copies, so an in-place edit
  raises instead of silently changing nothing;
- assigning an item (``clf.coefs_[0] = W``) or the whole list
  (``clf.coefs_ = [...]``) copies the checked values into the module, on any
  device.
"""

import numpy as np
import torch

from ._engine.network import linear_layers

#: The attribute of each kind of layer array, and the layer's tensor behind it.
_TENSORS = {"coefs_": "weight", "intercepts_": "bias"}


def read_layer_arrays(module, name):
    """The ``coefs_`` or ``intercepts_`` of ``module``, as a :class:`LayerArrays`.

    Parameters
    ----------
    module : torch.nn.Module
        The network; its ``nn.Linear`` layers give one array each.
    name : {"coefs_", "intercepts_"}
        Which arrays: the weights, of shape (fan_in, fan_out), or the biases.

    Returns
    -------
    arrays : LayerArrays
        A list whose items write into ``module`` when assigned.
    """
    return LayerArrays([_as_array(t) for t in _tensors(module, name)], module, name)


def write_layer_arrays(module, name, arrays):
    """Copy ``arrays`` into ``module``'s weights (or biases), all or none.

    Raises
    ------
    ValueError
        If ``arrays`` is not a list or tuple of one real, finite array per
        layer, each of the layer's shape, within range of the module's dtype.
    """
    tensors = _tensors(module, name)
    if not isinstance(arrays, list | tuple):
        raise ValueError(
            f"{name} must be a list of {len(tensors)} arrays (one per layer), got "
            f"{type(arrays).__name__}."
        )
    if len(arrays) != len(tensors):
        raise ValueError(
            f"{name} must hold {len(tensors)} arrays (one per layer), got "
            f"{len(arrays)}: the number of layers cannot change after fit."
        )
    values = [
        _checked(array, tensor, f"{name}[{index}]")
        for index, (array, tensor) in enumerate(zip(arrays, tensors, strict=True))
    ]
    with torch.no_grad():
        for tensor, value in zip(tensors, values, strict=True):
            value = torch.from_numpy(value)
            tensor.copy_(value.T if tensor.ndim == 2 else value)


class LayerArrays(list):
    """A list of ``coefs_`` or ``intercepts_`` arrays that writes into its module.

    Every change to the list (``arrays[0] = W``, ``arrays[:] = [...]``) is
    checked and copied into the module, or raises ``ValueError`` and changes
    nothing; changes of length (``append``, ``del``) always raise. A copy,
    deep copy or pickle of it is a plain list.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, arrays, module, name):
        super().__init__(arrays)
        self._module = module
        self._name = name

    def __reduce_ex__(self, protocol):
        return list, (list(self),)

    def __copy__(self):
        return list(self)


def _write_through(method):
    def mutate(self, *args):
        items = list(self)
        result = method(items, *args)
        write_layer_arrays(self._module, self._name, items)
        list.__setitem__(self, slice(None), read_layer_arrays(self._module, self._name))
        return self if result is items else result

    mutate.__name__ = method.__name__
    mutate.__doc__ = f"``list.{method.__name__}``, written into the module."
    return mutate


for _method in (
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "__imul__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "reverse",
    "sort",
):
    setattr(LayerArrays, _method, _write_through(getattr(list, _method)))


def _tensors(module, name):
    return [getattr(layer, _TENSORS[name]) for layer in linear_layers(module)]


def _as_array(tensor):
    """A writable view of a CPU tensor (transposed for weights), else a
    read-only copy: an in-place edit of a copy would silently change nothing."""
    tensor = tensor.detach()
    on_cpu = tensor.device.type == "cpu"
    array = (tensor if on_cpu else tensor.cpu()).numpy()
    if tensor.ndim == 2:
        array = array.T
    if not on_cpu:
        array.flags.writeable = False
    return array


def _checked(array, tensor, where):
    """``array`` as a numpy array of ``tensor``'s dtype, shape (transposed for
    weights) and values, or a ValueError naming what is wrong."""
    dtype = torch.empty(0, dtype=tensor.dtype).numpy().dtype
    shape = tuple(tensor.shape[::-1])
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"{where} must hold real numbers, got an array of dtype {array.dtype}."
        )
    if array.shape != shape:
        raise ValueError(
            f"{where} has shape {array.shape}; this layer needs shape {shape}."
        )
    # The saved state refuses non-finite weights, so a model with them could
    # not be loaded again.
    with np.errstate(over="ignore"):
        converted = array.astype(dtype)
    if not np.isfinite(converted).all():
        beyond = np.isfinite(array).all()
        raise ValueError(
            f"{where} holds values beyond the range of {dtype}, the precision "
            "of this network."
            if beyond
            else f"{where} holds NaN or infinite values."
        )
    return converted
