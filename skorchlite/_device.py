"""Device and dtype policy: where the module lives and in which precision."""

import contextlib
import copy

import numpy as np
import torch


def resolve_device(device):
    """Turn the ``device`` parameter into an available :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA if available, then MPS, then the CPU. Anything else
        is parsed by :class:`torch.device` and must be present on this machine.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not a device or the device is not available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device. Use 'auto', 'cpu', "
            "'cuda', 'cuda:N', 'mps' or a torch.device."
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} was requested but CUDA is not available on "
                "this machine (torch.cuda.is_available() is False). Use "
                "device='cpu' or device='auto'."
            )
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r} was requested but this machine has only "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "device='mps' was requested but MPS is not available on this machine. "
            "Use device='cpu' or device='auto'."
        )
    if device.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(
            f"device={str(device)!r} is not supported; use 'auto', 'cpu', 'cuda' "
            "or 'mps'."
        )
    return device


def resolve_dtype(dtype, X_dtype, device):
    """Choose the torch floating dtype of the module.

    ``dtype=None`` follows ``MLPClassifier`` on the CPU (float32 input trains in
    float32, anything else in float64; the estimator passes float64 for
    ``solver="lbfgs"``) and uses float32 on accelerators, where float64 is slow
    (CUDA) or missing (MPS).

    Examples
    --------
    >>> import numpy as np
    >>> resolve_dtype(None, np.dtype("float64"), torch.device("cpu"))
    torch.float64
    >>> resolve_dtype("float32", np.dtype("float64"), torch.device("cpu"))
    torch.float32
    """
    if dtype is None:
        if device.type == "cpu" and X_dtype != np.float32:
            return torch.float64
        return torch.float32
    if dtype == "float64" and device.type == "mps":
        raise ValueError(
            "dtype='float64' is not supported on MPS devices; use dtype='float32'."
        )
    return getattr(torch, dtype)


def module_device(module):
    """The device that holds ``module``'s parameters."""
    return next(module.parameters()).device


def module_on_cpu(module):
    """``module`` itself if it lives on the CPU, else a CPU copy of it."""
    if module_device(module).type == "cpu":
        return module
    return copy.deepcopy(module).to("cpu")


def tensors_to_cpu(obj):
    """Recursively move the tensors inside dicts/lists (a state_dict) to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {key: tensors_to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(tensors_to_cpu(value) for value in obj)
    return obj


def without_inference_tensors(module, optimizer_state=None):
    """Replace ``module``'s inference tensors by ordinary copies, in place.

    Tensors created under ``torch.inference_mode()`` (a model unpickled,
    deep-copied or loaded there) can never be updated in place outside it, so
    such a model could not be trained. Call this before building an optimizer
    over ``module``: parameters that are replaced are new objects.

    Parameters
    ----------
    module : torch.nn.Module
    optimizer_state : dict or None
        An optimizer ``state_dict``; returned with its inference tensors copied.

    Returns
    -------
    dict or None
        ``optimizer_state``, fixed.
    """
    with torch.inference_mode(False):
        for submodule in module.modules():
            for name, parameter in list(submodule.named_parameters(recurse=False)):
                if parameter.is_inference():
                    setattr(
                        submodule,
                        name,
                        torch.nn.Parameter(
                            parameter.clone(), requires_grad=parameter.requires_grad
                        ),
                    )
            for name, buffer in list(submodule.named_buffers(recurse=False)):
                if buffer.is_inference():
                    setattr(submodule, name, buffer.clone())
        return _clone_inference_tensors(optimizer_state)


def _clone_inference_tensors(obj):
    if isinstance(obj, torch.Tensor):
        return obj.clone() if obj.is_inference() else obj
    if isinstance(obj, dict):
        return {key: _clone_inference_tensors(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_clone_inference_tensors(value) for value in obj)
    return obj


# Below this many floating-point operations per step, extra CPU threads cost
# more in synchronization than they save (and oversubscribe the cores when
# several fits run at once, e.g. GridSearchCV(n_jobs=-1)).
SINGLE_THREAD_MAX_FLOPS = 50_000_000


def cpu_threads_for(module, batch_rows, backward):
    """The number of torch CPU threads worth using for batches of ``batch_rows``.

    Small networks run on one thread; larger ones use ``torch.get_num_threads()``
    (which ``torch.set_num_threads``, ``OMP_NUM_THREADS`` and joblib's workers
    control).

    Examples
    --------
    >>> from torch import nn
    >>> cpu_threads_for(nn.Sequential(nn.Linear(2, 100), nn.Linear(100, 1)), 200, True)
    1
    """
    # The weights (parameters of 2 or more dimensions) of any module: for an
    # MLP, its Linear layers' (a convolution's work is underestimated).
    n_weights = sum(p.numel() for p in module.parameters() if p.dim() >= 2)
    flops = (6 if backward else 2) * batch_rows * n_weights
    return 1 if flops < SINGLE_THREAD_MAX_FLOPS else torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch CPU threads, then restore the setting."""
    previous = torch.get_num_threads()
    if n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
