"""Build the ``torch.nn.Sequential`` network from MLPClassifier-style parameters."""

import itertools
import math

import torch
from torch import nn

ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def build_mlp(
    n_features,
    hidden_layer_sizes,
    n_outputs,
    *,
    activation,
    dropout,
    generator,
    dtype,
    device,
):
    """Build a multi-layer perceptron with Glorot-uniform initial weights.

    The layout is ``Linear -> activation [-> Dropout]`` per hidden layer and a
    final ``Linear`` producing logits. Weights are drawn exactly as
    ``MLPClassifier`` draws them (uniform in ``+-sqrt(factor / (fan_in +
    fan_out))``, factor 2 for the logistic activation and 6 otherwise), from
    ``generator`` so that the global torch RNG is never touched.

    Parameters
    ----------
    n_features : int
        Width of the input.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer; empty for a linear model.
    n_outputs : int
        Number of logits.
    activation : str
        A key of ``ACTIVATIONS``.
    dropout : float
        Dropout probability after each hidden activation; 0 adds no layer.
    generator : torch.Generator
        CPU generator the initial weights are drawn from.
    dtype : torch.dtype
    device : torch.device

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> import torch
    >>> net = build_mlp(2, [8], 1, activation="relu", dropout=0.0,
    ...                 generator=torch.Generator().manual_seed(0),
    ...                 dtype=torch.float32, device=torch.device("cpu"))
    >>> net
    Sequential(
      (0): Linear(in_features=2, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=1, bias=True)
    )
    """
    widths = [n_features, *hidden_layer_sizes, n_outputs]
    factor = 2.0 if activation == "logistic" else 6.0
    layers = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        # Drawn in float64 whatever ``dtype`` (like MLPClassifier, which casts
        # its float64 draws): float32 and float64 models start from the same
        # weights, where drawing in float32 would consume the generator
        # differently.
        linear = nn.Linear(fan_in, fan_out, dtype=torch.float64, device="meta")
        linear = linear.to_empty(device="cpu")
        bound = math.sqrt(factor / (fan_in + fan_out))
        with torch.no_grad():
            nn.init.uniform_(linear.weight, -bound, bound, generator=generator)
            nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        layers.append(linear)
        if index < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def linear_layers(module):
    """The ``nn.Linear`` layers of ``module``, input to output."""
    return [layer for layer in module if isinstance(layer, nn.Linear)]
