"""The activation registry, and the network built from MLP parameters."""

import contextlib
import itertools
import math
from dataclasses import dataclass
from numbers import Integral

import torch
from torch import nn


def _identity_derivative(delta, activation):
    return delta


def _relu_derivative(delta, activation):
    # The kernel autograd uses for ReLU: ~10x faster here than multiplying by
    # the boolean mask ``activation > 0``.
    return torch.ops.aten.threshold_backward(delta, activation, 0)


def _tanh_derivative(delta, activation):
    return delta.mul_(1 - activation.square())


def _logistic_derivative(delta, activation):
    return delta.mul_(activation * (1 - activation))


@dataclass(frozen=True)
class Activation:
    """One hidden activation: its module, initialization and derivative.

    Attributes
    ----------
    name : str
        The ``activation`` parameter's value.
    module : type
        The ``torch.nn`` module class.
    init_factor : float
        Glorot's factor of the initial weights' range (MLPClassifier: 2 for
        the logistic, 6 otherwise).
    function, derivative : callable or None
        The closed form, for :mod:`skorchlite._backprop` and the batched
        search: ``function`` applied in place to the fresh pre-activation,
        ``derivative(delta, activation)`` written with its output (in place
        where cheaper). None where autograd computes the gradient.
    doc : str
        One RST sentence: the docs' description of this ``activation`` value.
    """

    name: str
    module: type
    init_factor: float = 6.0
    function: object = None
    derivative: object = None
    doc: str = ""

    @property
    def closed_form(self):
        return self.derivative is not None


ACTIVATIONS = {
    activation.name: activation
    for activation in (
        Activation(
            "identity",
            nn.Identity,
            6.0,
            lambda x: x,
            _identity_derivative,
            doc="no activation, ``x`` itself (the network is a linear model).",
        ),
        Activation(
            "logistic",
            nn.Sigmoid,
            2.0,
            torch.sigmoid_,
            _logistic_derivative,
            doc="the logistic sigmoid, ``1 / (1 + exp(-x))``.",
        ),
        Activation(
            "tanh",
            nn.Tanh,
            6.0,
            torch.tanh_,
            _tanh_derivative,
            doc="the hyperbolic tangent, ``tanh(x)``.",
        ),
        Activation(
            "relu",
            nn.ReLU,
            6.0,
            torch.relu_,
            _relu_derivative,
            doc="the rectified linear unit, ``max(0, x)``.",
        ),
        Activation(
            "gelu",
            nn.GELU,
            doc="``torch.nn.GELU``, ``x * Phi(x)`` with ``Phi`` the normal CDF.",
        ),
        Activation(
            "silu",
            nn.SiLU,
            doc="``torch.nn.SiLU``, ``x * sigmoid(x)``.",
        ),
        Activation(
            "leaky_relu",
            nn.LeakyReLU,
            doc="``torch.nn.LeakyReLU``, ``max(0, x) + 0.01 * min(0, x)``.",
        ),
        Activation(
            "elu",
            nn.ELU,
            doc="``torch.nn.ELU``, ``x`` where ``x > 0``, else ``exp(x) - 1``.",
        ),
    )
}
_BY_MODULE = {activation.module: activation for activation in ACTIVATIONS.values()}


def activation_of(layer):
    """The :class:`Activation` of a module, or None if it is not one of ours."""
    return _BY_MODULE.get(type(layer))


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose masks come from a generator the fit owns.

    ``torch.nn.functional.dropout`` draws from torch's global generator, which
    concurrent fits would share. While :func:`dropout_generator` attaches a
    generator, training-mode masks are drawn from it, as ``nn.Dropout`` draws
    them on the CPU: ``bernoulli_(1 - p)`` in the input's shape, divided by
    ``1 - p``. In eval mode (and with ``p = 0``) it is the identity; without a
    generator it is a plain ``nn.Dropout``.

    Examples
    --------
    >>> import torch
    >>> layer = Dropout(0.5)
    >>> with dropout_generator(layer, seed=0, device=torch.device("cpu")):
    ...     sorted(layer(torch.ones(2, 4)).unique().tolist())
    [0.0, 2.0]
    >>> layer.eval()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    generator = None

    def forward(self, input):
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(input)
        if self.p == 1:
            return input * 0.0
        noise = torch.empty_like(input).bernoulli_(1 - self.p, generator=self.generator)
        noise.div_(1 - self.p)
        return input.mul_(noise) if self.inplace else input * noise

    def __getstate__(self):
        # A copy (pickle, deepcopy) does not share the fit's random stream.
        state = super().__getstate__().copy()
        state.pop("generator", None)
        return state


@contextlib.contextmanager
def dropout_generator(module, seed, device):
    """Draw the dropout masks of ``module`` from one new generator inside.

    The generator lives on ``device`` and is seeded with ``seed``; the layers
    share it, drawing in forward order. It is detached on exit.
    """
    layers = [layer for layer in module.modules() if isinstance(layer, Dropout)]
    if not layers:
        yield
        return
    generator = torch.Generator(device=device).manual_seed(seed)
    for layer in layers:
        layer.generator = generator
    try:
        yield
    finally:
        for layer in layers:
            layer.generator = None


def check_hidden_layer_sizes(hidden_layer_sizes):
    """The hidden widths as a list of ints, or a ValueError naming the parameter.

    Examples
    --------
    >>> check_hidden_layer_sizes((10, 5))
    [10, 5]
    >>> check_hidden_layer_sizes(7)
    [7]
    """
    sizes = hidden_layer_sizes
    # A 0-d numpy array has __iter__ but cannot be iterated.
    iterable = hasattr(sizes, "__iter__") and getattr(sizes, "ndim", 1) != 0
    sizes = list(sizes) if iterable else [sizes]
    wrong = [
        size
        for size in sizes
        if not isinstance(size, Integral) or isinstance(size, bool)
    ]
    if wrong:
        raise ValueError(
            "hidden_layer_sizes must hold positive integers (the width of each "
            f"hidden layer), got {hidden_layer_sizes!r}: {wrong[0]!r} is of type "
            f"{type(wrong[0]).__name__}."
        )
    if any(size <= 0 for size in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
    return [int(size) for size in sizes]


def n_parameters(widths):
    """Number of weights and biases of the Linear layers chaining ``widths``."""
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(widths))


def _allocation_failed(exc):
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError)
        and any(word in str(exc) for word in ("alloc", "memory", "overflow"))
    )


def build_mlp(
    n_features,
    hidden_layer_sizes,
    n_outputs,
    *,
    activation,
    dropout,
    random_state,
    dtype,
    device,
):
    """Build a multi-layer perceptron with Glorot-uniform initial weights.

    The layout is ``Linear -> activation [-> Dropout]`` per hidden layer and a
    final ``Linear`` producing logits. Weights are drawn exactly as
    ``MLPClassifier`` draws them: uniform in ``+-sqrt(factor / (fan_in +
    fan_out))`` (factor 2 for the logistic activation, 6 otherwise), drawn in
    float64 from a numpy ``RandomState`` in the same order, so that an int
    ``random_state`` gives MLPClassifier's very initial weights. The global
    RNGs are never touched.

    Parameters
    ----------
    n_features : int
        Width of the input.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer; empty for a linear model.
    n_outputs : int
        Number of logits.
    activation : str
        A name in ``ACTIVATIONS``.
    dropout : float
        Dropout probability after each hidden activation; 0 adds no layer.
    random_state : numpy.random.RandomState
        The generator the initial weights are drawn from.
    dtype : torch.dtype
    device : torch.device

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    MemoryError
        If the network cannot be allocated; it says how many bytes it needs.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> net = build_mlp(2, [8], 1, activation="relu", dropout=0.0,
    ...                 random_state=np.random.RandomState(0),
    ...                 dtype=torch.float32, device=torch.device("cpu"))
    >>> net
    Sequential(
      (0): Linear(in_features=2, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=1, bias=True)
    )
    """
    widths = [n_features, *hidden_layer_sizes, n_outputs]
    try:
        network = _build(widths, ACTIVATIONS[activation], dropout, random_state)
        return network.to(device=device, dtype=dtype)
    except (RuntimeError, MemoryError) as exc:
        if not _allocation_failed(exc):
            raise
        n_bytes = n_parameters(widths) * dtype.itemsize
        raise MemoryError(
            f"hidden_layer_sizes={list(hidden_layer_sizes)} makes a network of "
            f"{n_parameters(widths):,} weights, which needs {n_bytes:,} bytes "
            f"({n_bytes / 2**30:,.1f} GiB) in {dtype} on {device} (and as much "
            "again for the gradients and each optimizer state) but could not be "
            "allocated. Use smaller hidden layers."
        ) from exc


def _build(widths, activation, dropout, random_state):
    """The float64 CPU network (``build_mlp`` moves it)."""
    layers = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        bound = math.sqrt(activation.init_factor / (fan_in + fan_out))
        coef = random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = random_state.uniform(-bound, bound, fan_out)
        # Built on the meta device, which allocates nothing, then given the
        # drawn parameters: to_empty and torch.nn.utils.skip_init would import
        # sympy, ~0.4 s on the first fit of a process (measured here).
        linear = nn.Linear(fan_in, fan_out, dtype=torch.float64, device="meta")
        linear.weight = nn.Parameter(torch.from_numpy(coef.T.copy()))
        linear.bias = nn.Parameter(torch.from_numpy(intercept))
        layers.append(linear)
        if index < len(widths) - 2:
            layers.append(activation.module())
            if dropout > 0:
                layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


def linear_layers(module):
    """The ``nn.Linear`` layers of ``module``, input to output (in the order
    they were registered, for modules other than ``nn.Sequential``)."""
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
