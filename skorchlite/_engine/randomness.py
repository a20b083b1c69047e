"""Random draws of a user's module from the fit's own generator.

A module draws random numbers where we do not write the code: its
``__init__`` (``nn.Linear`` initializes its weights with
``nn.init.kaiming_uniform_``) and, in training mode, its forward
(``nn.Dropout``, ``F.dropout``, ``torch.randn_like`` noise). Left alone, all
of them draw from torch's global generator, which a fit must neither seed nor
read (fits run in threads at once). :class:`OwnRandomness` is a
:class:`torch.overrides.TorchFunctionMode`: while it is active (in the thread
that entered it only: torch keeps modes per thread) every call of a routed
function below draws from one ``torch.Generator`` per device, seeded from the
fit's seed, instead of the global one. The dropout functions are written out
(torch's kernels take no generator): ``bernoulli_(1 - p)`` masks scaled by
``1 / (1 - p)``, as ``nn.Dropout`` computes on the CPU, and the alpha dropout
ones as ``nn.AlphaDropout`` does. So are the functions that draw in Python
after handing themselves to the mode (which handles them switched off, their
draws unseen): ``F.gumbel_softmax`` and the fractional max poolings; and
``torch.randint_like``, the ``*_like`` sampler with a range.

Draws that happen inside a C++ kernel we do not route (``F.rrelu`` in
training, a custom extension) still use the global generator: the user
guide's "Your own module" page lists what is routed.
"""

import functools
import inspect
import math

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

# Builtin samplers that take ``generator=`` (Python functions that take one,
# such as torch.nn.init's, are found by their signature: _takes_generator).
# A mode handles a call with itself switched off, so a Python function that
# draws inside (torch.nn.init.kaiming_uniform_ calls uniform_) must get the
# generator itself: its inner calls are not seen.
_SAMPLERS = {
    torch.Tensor.uniform_,
    torch.Tensor.normal_,
    torch.Tensor.bernoulli_,
    torch.Tensor.bernoulli,
    torch.Tensor.random_,
    torch.Tensor.exponential_,
    torch.Tensor.geometric_,
    torch.Tensor.cauchy_,
    torch.Tensor.log_normal_,
    torch.Tensor.multinomial,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.randperm,
    torch.normal,
    torch.bernoulli,
    torch.multinomial,
    torch.poisson,
}


def _like(sampler):
    """``torch.rand_like``-style functions as an in-place sampler of a new
    tensor (they take no generator)."""

    def draw(generator, input, *args, **kwargs):
        kwargs.pop("memory_format", None)
        out = torch.empty_like(input, **kwargs)
        return sampler(out, *args, generator=generator)

    return draw


def _dropout(generator, input, p=0.5, training=True, inplace=False):
    """``F.dropout`` with masks from ``generator``."""
    return _masked(generator, input, p, training, inplace, input.shape)


def _feature_dropout(unbatched_dim):
    """``F.dropout1d/2d/3d`` with masks from the generator: one value per
    channel. ``unbatched_dim`` is the input rank without a batch dimension
    (``dropout2d`` has none: torch reads a 3-D input as ``(N, C, L)``)."""

    def dropout(generator, input, p=0.5, training=True, inplace=False):
        channel_dims = 1 if input.dim() == unbatched_dim else 2
        shape = (*input.shape[:channel_dims], *[1] * (input.dim() - channel_dims))
        return _masked(generator, input, p, training, inplace, shape)

    return dropout


def _alpha_dropout(feature):
    """``F.alpha_dropout`` (``feature``: ``F.feature_alpha_dropout``, one
    value per channel) with masks from the generator, as torch's kernel
    computes it."""

    def dropout(generator, input, p=0.5, training=False, inplace=False):
        if not training or p == 0 or input.numel() == 0:
            return input
        if p == 1:
            return input.mul_(0.0) if inplace else input * 0.0
        shape = (*input.shape[:2], *[1] * (input.dim() - 2)) if feature else input.shape
        noise = input.new_empty(shape).bernoulli_(1 - p, generator=generator)
        a = 1.0 / math.sqrt((_SELU_ALPHA * _SELU_ALPHA * p + 1) * (1 - p))
        b = noise.add(-1).mul_(_SELU_ALPHA * a).add_(_SELU_ALPHA * a * p)
        noise.mul_(a)
        return input.mul_(noise).add_(b) if inplace else input * noise + b

    return dropout


_SELU_ALPHA = 1.7580993408473766


def _gumbel_softmax(generator, logits, tau=1, hard=False, eps=1e-10, dim=-1):
    """``F.gumbel_softmax`` with its Gumbel noise from ``generator``."""
    gumbels = (
        -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format)
        .exponential_(generator=generator)
        .log()
    )
    y_soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.max(dim, keepdim=True)[1]
    y_hard = torch.zeros_like(
        logits, memory_format=torch.legacy_contiguous_format
    ).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


def _randint_like(generator, input, *args, **kwargs):
    """``torch.randint_like(input, high)`` or ``(input, low, high)``."""
    low, high = kwargs.pop("low", 0), kwargs.pop("high", None)
    if len(args) == 1:
        (high,) = args
    elif args:
        low, high = args
    kwargs.pop("memory_format", None)
    return torch.empty_like(input, **kwargs).random_(low, high, generator=generator)


def _fractional_max_pool(func, dims):
    """A ``F.fractional_max_pool2d/3d`` function given ``_random_samples``
    drawn from the generator (torch draws them with ``torch.rand``)."""

    def pool(generator, input, *args, **kwargs):
        names = ("kernel_size", "output_size", "output_ratio", "return_indices")
        kwargs.update(zip(names, args, strict=False))
        if kwargs.get("_random_samples") is None:
            n_batch = 1 if input.dim() == dims + 1 else input.size(0)
            kwargs["_random_samples"] = torch.rand(
                n_batch,
                input.size(-dims - 1),
                dims,
                dtype=input.dtype,
                device=input.device,
                generator=generator,
            )
        return func(input, **kwargs)

    return pool


def _masked(generator, input, p, training, inplace, shape):
    if not training or p == 0:
        return input
    if p == 1:
        return input.mul_(0.0) if inplace else input * 0.0
    mask = input.new_empty(shape).bernoulli_(1 - p, generator=generator)
    mask.div_(1 - p)
    return input.mul_(mask) if inplace else input * mask


_WRITTEN_OUT = {
    torch.rand_like: _like(lambda t, generator: t.uniform_(0, 1, generator=generator)),
    torch.randn_like: _like(lambda t, generator: t.normal_(0, 1, generator=generator)),
    F.dropout: _dropout,
    torch.dropout: lambda generator, input, p, train: _dropout(
        generator, input, p, train
    ),
    F.dropout1d: _feature_dropout(2),
    F.dropout2d: _feature_dropout(None),
    F.dropout3d: _feature_dropout(4),
    F.alpha_dropout: _alpha_dropout(feature=False),
    F.feature_alpha_dropout: _alpha_dropout(feature=True),
    torch.alpha_dropout: lambda generator, input, p, train: _alpha_dropout(False)(
        generator, input, p, train
    ),
    torch.feature_alpha_dropout: lambda generator, input, p, train: _alpha_dropout(
        True
    )(generator, input, p, train),
    F.gumbel_softmax: _gumbel_softmax,
    torch.randint_like: _randint_like,
}
# F.fractional_max_pool2d and its variants hand their own name, or the one
# of the function choosing between them, to the mode.
for _dims, _pools in (
    (
        2,
        (
            F.fractional_max_pool2d,
            F.fractional_max_pool2d_with_indices,
            F._fractional_max_pool2d,
        ),
    ),
    (
        3,
        (
            F.fractional_max_pool3d,
            F.fractional_max_pool3d_with_indices,
            F._fractional_max_pool3d,
        ),
    ),
):
    for _pool in _pools:
        _WRITTEN_OUT[_pool] = _fractional_max_pool(_pool, _dims)

#: The builtins whose draws come from the fit's generator (besides every
#: Python function taking ``generator=``, such as torch.nn.init's).
ROUTED = frozenset(_SAMPLERS | set(_WRITTEN_OUT))


class OwnRandomness(TorchFunctionMode):
    """Route the random draws of the block to generators seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Seeds one ``torch.Generator`` per device the block draws on.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> with OwnRandomness(0):
    ...     a = nn.Linear(3, 2).weight
    >>> with OwnRandomness(0):
    ...     b = nn.Linear(3, 2).weight
    >>> torch.equal(a, b)
    True
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = int(seed)
        self._generators = {}

    def generator(self, device):
        """The block's generator on ``device`` (None on the meta device, whose
        tensors hold no values to draw)."""
        device = torch.device(device)
        if device.type == "meta":
            return None
        if device.type != "cpu" and device.index is None:
            index = torch.get_device_module(device).current_device()
            device = torch.device(device.type, index)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self._generators[device]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _WRITTEN_OUT:
            tensor = args[0] if args else kwargs["input"]
            generator = self.generator(tensor.device)
            if generator is not None:
                return _WRITTEN_OUT[func](generator, *args, **kwargs)
        if (func in _SAMPLERS or _takes_generator(func)) and kwargs.get(
            "generator"
        ) is None:
            kwargs["generator"] = self.generator(_device_of(args, kwargs))
        return func(*args, **kwargs)


@functools.cache
def _takes_generator(func):
    try:
        return "generator" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _device_of(args, kwargs):
    """Where a sampling call draws: its tensor's device, else ``device=``."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    return kwargs.get("device") or "cpu"
