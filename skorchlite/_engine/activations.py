"""The activation registry: each ``activation`` value and everything it implies.

An entry owns its torch module (what ``module_`` holds), its forward and
derivative for the closed-form backward of :mod:`skorchlite._engine.stack`,
its initialization factor, and its ONNX lowering. The derivatives are torch's
own backward kernels (``torch.ops.aten.*_backward``, what autograd runs for
the module), so the closed form computes autograd's very numbers without its
bookkeeping.

Adding an activation is adding one entry here; ``tests/test_conformance.py``
then trains, stacks, saves and exports it without being edited.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

_aten = torch.ops.aten


@dataclass(frozen=True)
class Activation:
    """One hidden activation.

    Attributes
    ----------
    name : str
        The ``activation`` parameter's value.
    module : type
        The ``torch.nn`` module class (built with its default arguments).
    forward : callable
        ``forward(pre) -> out`` on the pre-activation; it may overwrite
        ``pre`` (``in_place``).
    derivative : callable
        ``derivative(delta, pre, out)``: the gradient with respect to the
        pre-activation, given ``delta``, the gradient with respect to the
        output (a buffer it may overwrite: the kernels' ``out=`` variants
        save an allocation per layer). When ``in_place``, ``pre`` has been
        overwritten by ``out`` and only ``out`` may be read.
    onnx : callable or None
        ``onnx(graph, x) -> name``: the ONNX nodes of the activation (see
        :class:`skorchlite._skl2onnx._Graph`); None if it has none (exporting
        then says so).
    in_place : bool
        Whether ``forward`` overwrites its input (saves a buffer per layer
        when the derivative reads only the output).
    init_factor : float
        Glorot's factor of the initial weights' range (MLPClassifier: 2 for
        the logistic, 6 otherwise).
    doc : str
        One sentence for the parameter's documentation.
    """

    name: str
    module: type
    forward: object
    derivative: object
    onnx: object = None
    in_place: bool = False
    init_factor: float = 6.0
    doc: str = ""


def _gelu_onnx(graph, x):
    # torch's default (exact) GELU: x * (1 + erf(x / sqrt 2)) / 2.
    scaled = graph.node("Mul", [x, graph.constant(1 / math.sqrt(2))])
    erf_plus_one = graph.node("Add", [graph.node("Erf", [scaled]), graph.constant(1)])
    return graph.node(
        "Mul", [graph.node("Mul", [x, erf_plus_one]), graph.constant(0.5)]
    )


def _silu_onnx(graph, x):
    return graph.node("Mul", [x, graph.node("Sigmoid", [x])])


ACTIVATIONS = {
    activation.name: activation
    for activation in (
        Activation(
            "identity",
            nn.Identity,
            forward=lambda pre: pre,
            derivative=lambda delta, pre, out: delta,
            onnx=lambda graph, x: x,
            in_place=True,
            doc="no activation, ``x`` itself (the network is a linear model).",
        ),
        Activation(
            "logistic",
            nn.Sigmoid,
            forward=torch.sigmoid_,
            derivative=lambda delta, pre, out: _aten.sigmoid_backward.grad_input(
                delta, out, grad_input=delta
            ),
            onnx=lambda graph, x: graph.node("Sigmoid", [x]),
            in_place=True,
            init_factor=2.0,
            doc="the logistic sigmoid, ``1 / (1 + exp(-x))``.",
        ),
        Activation(
            "tanh",
            nn.Tanh,
            forward=torch.tanh_,
            derivative=lambda delta, pre, out: _aten.tanh_backward.grad_input(
                delta, out, grad_input=delta
            ),
            onnx=lambda graph, x: graph.node("Tanh", [x]),
            in_place=True,
            doc="the hyperbolic tangent, ``tanh(x)``.",
        ),
        Activation(
            "relu",
            nn.ReLU,
            forward=torch.relu_,
            derivative=lambda delta, pre, out: _aten.threshold_backward.grad_input(
                delta, out, 0, grad_input=delta
            ),
            onnx=lambda graph, x: graph.node("Relu", [x]),
            in_place=True,
            doc="the rectified linear unit, ``max(0, x)``.",
        ),
        Activation(
            "gelu",
            nn.GELU,
            forward=torch.nn.functional.gelu,
            derivative=lambda delta, pre, out: _aten.gelu_backward(delta, pre),
            onnx=_gelu_onnx,
            doc="``torch.nn.GELU``, ``x * Phi(x)`` with ``Phi`` the normal CDF.",
        ),
        Activation(
            "silu",
            nn.SiLU,
            forward=torch.nn.functional.silu,
            derivative=lambda delta, pre, out: _aten.silu_backward(delta, pre),
            onnx=_silu_onnx,
            doc="``torch.nn.SiLU``, ``x * sigmoid(x)``.",
        ),
        Activation(
            "leaky_relu",
            nn.LeakyReLU,
            forward=lambda pre: torch.nn.functional.leaky_relu_(pre, 0.01),
            derivative=lambda delta, pre, out: _aten.leaky_relu_backward(
                delta, out, 0.01, True
            ),
            onnx=lambda graph, x: graph.node("LeakyRelu", [x], alpha=0.01),
            in_place=True,
            doc="``torch.nn.LeakyReLU``, ``max(0, x) + 0.01 * min(0, x)``.",
        ),
        Activation(
            "elu",
            nn.ELU,
            forward=lambda pre: torch.nn.functional.elu_(pre),
            derivative=lambda delta, pre, out: _aten.elu_backward(
                delta, 1.0, 1, 1, True, out
            ),
            onnx=lambda graph, x: graph.node("Elu", [x], alpha=1.0),
            in_place=True,
            doc="``torch.nn.ELU``, ``x`` where ``x > 0``, else ``exp(x) - 1``.",
        ),
    )
}
_BY_MODULE = {activation.module: activation for activation in ACTIVATIONS.values()}


def activation_of(layer):
    """The :class:`Activation` of a module, or None if it is not one of ours.

    Only modules built with the default arguments count: a ``LeakyReLU`` of
    another slope is not the entry's.
    """
    activation = _BY_MODULE.get(type(layer))
    if activation is None or repr(layer) != repr(activation.module()):
        return None
    return activation
