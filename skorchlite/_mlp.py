"""The activation registry, and the network built from MLP parameters."""

import itertools
import math
from dataclasses import dataclass

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
    """

    name: str
    module: type
    init_factor: float = 6.0
    function: object = None
    derivative: object = None

    @property
    def closed_form(self):
        return self.derivative is not None


ACTIVATIONS = {
    activation.name: activation
    for activation in (
        Activation("identity", nn.Identity, 6.0, lambda x: x, _identity_derivative),
        Activation("logistic", nn.Sigmoid, 2.0, torch.sigmoid_, _logistic_derivative),
        Activation("tanh", nn.Tanh, 6.0, torch.tanh_, _tanh_derivative),
        Activation("relu", nn.ReLU, 6.0, torch.relu_, _relu_derivative),
        Activation("gelu", nn.GELU),
        Activation("silu", nn.SiLU),
        Activation("leaky_relu", nn.LeakyReLU),
        Activation("elu", nn.ELU),
    )
}
_BY_MODULE = {activation.module: activation for activation in ACTIVATIONS.values()}


def activation_of(layer):
    """The :class:`Activation` of a module, or None if it is not one of ours."""
    return _BY_MODULE.get(type(layer))


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
    activation = ACTIVATIONS[activation]
    factor = activation.init_factor
    layers = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        linear = nn.Linear(fan_in, fan_out, dtype=torch.float64, device="meta")
        linear = linear.to_empty(device="cpu")
        bound = math.sqrt(factor / (fan_in + fan_out))
        coef = random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = random_state.uniform(-bound, bound, fan_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(coef.T))
            linear.bias.copy_(torch.from_numpy(intercept))
        layers.append(linear)
        if index < len(widths) - 2:
            layers.append(activation.module())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def linear_layers(module):
    """The ``nn.Linear`` layers of ``module``, input to output (in the order
    they were registered, for modules other than ``nn.Sequential``)."""
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
