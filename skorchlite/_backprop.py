"""Closed-form gradients for plain multi-layer perceptrons.

On the small networks this package mostly trains, a step is dominated by
per-operator overhead, and autograd's engine alone was ~60% of a step here
(~270 us of ~450 us on a 2 -> 100 -> 1 network). For the networks whose
backward pass is a handful of matrix products (Linear layers with activations
that have a closed form in the registry of :mod:`skorchlite._mlp`, no dropout;
the output gradient comes from the target registry, :mod:`skorchlite._targets`)
the gradients are written out here, like ``MLPClassifier``'s ``_backprop``;
anything else goes through autograd.
"""

import torch
from torch import nn

from ._mlp import activation_of, linear_layers


class ClosedFormBackprop:
    """Set ``.grad`` of a plain MLP's parameters for one batch, without autograd.

    Computes the same objective as :class:`skorchlite._training.Objective`.
    Use :meth:`for_module`, which returns None for networks it cannot handle.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from skorchlite._targets import BinaryTarget
    >>> from skorchlite._training import Objective
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    >>> objective = Objective(BinaryTarget(np.array([0, 1])),
    ...                       [net[0].weight, net[2].weight], alpha=0.0)
    >>> backprop = ClosedFormBackprop.for_module(net, objective)
    >>> X = torch.randn(4, 2, dtype=torch.float64)
    >>> y = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)
    >>> total = backprop(X, y, None)
    >>> manual = net[0].weight.grad.clone()
    >>> net.zero_grad()
    >>> objective.mean_loss(net(X), y).backward()
    >>> torch.allclose(manual, net[0].weight.grad)
    True
    """

    def __init__(self, linears, activations, objective):
        self.linears = linears
        self.activations = activations
        self.objective = objective

    @classmethod
    def for_module(cls, module, objective):
        """A backprop for ``module``, or None if it needs autograd.

        Only our own networks qualify: an ``nn.Sequential`` of biased
        ``Linear`` layers alternating with activations that have a closed form.
        """
        if not isinstance(module, nn.Sequential):
            return None
        layers = list(module)
        linears = linear_layers(module)
        # Expect Linear, activation, Linear, activation, ..., Linear.
        if len(layers) != 2 * len(linears) - 1:
            return None
        activations = [activation_of(layer) for layer in layers[1::2]]
        if any(a is None or not a.closed_form for a in activations) or any(
            not isinstance(layer, nn.Linear) or layer.bias is None
            for layer in layers[::2]
        ):
            return None
        return cls(linears, activations, objective)

    def __call__(self, X, y, w):
        """Set the gradients for batch ``(X, y, w)``; return its loss times its rows.

        The loss is the weighted objective with its L2 penalty when ``w`` is
        given, and the plain mean loss otherwise (the training loop adds the
        penalty's gradient and value for unweighted batches).
        """
        with torch.no_grad():
            outputs = [X]
            for linear, activation in zip(self.linears, self.activations, strict=False):
                outputs.append(activation.function(_linear(linear, outputs[-1])))
            logits = _linear(self.linears[-1], outputs[-1])
            loss, delta, weight_sum = self._loss_and_delta(logits, y, w)
            self._backward(outputs, delta, weight_sum, penalize=w is not None)
        return loss

    def _loss_and_delta(self, logits, y, w):
        """Loss times rows, its gradient with respect to the logits, sum(w)."""
        objective = self.objective
        n_rows = y.shape[0]
        losses, delta = objective.target.losses_and_delta(logits, y)
        if w is None:
            return losses.sum(), delta.div_(n_rows), n_rows
        weight_sum = w.sum()
        weight_sum = torch.where(weight_sum > 0, weight_sum, n_rows)
        loss = (losses * w).sum() / weight_sum
        if objective.alpha:
            loss = loss + objective.penalty(weight_sum)
        return loss * n_rows, delta.mul_((w / weight_sum).unsqueeze(1)), weight_sum

    def _backward(self, outputs, delta, weight_sum, penalize):
        """Backpropagate ``delta``; ``outputs[i]`` is the input of linear ``i``.

        A weighted batch's loss includes the L2 penalty, so its gradient is
        added here; the training loop adds it for unweighted batches.
        """
        alpha = self.objective.alpha if penalize else 0.0
        for index in range(len(self.linears) - 1, -1, -1):
            linear = self.linears[index]
            linear.weight.grad = delta.t().mm(outputs[index])
            linear.bias.grad = delta.sum(dim=0)
            if alpha:
                linear.weight.grad.add_(linear.weight * (alpha / weight_sum))
            if index:
                delta = delta.mm(linear.weight)
                delta = self.activations[index - 1].derivative(delta, outputs[index])


def _linear(linear, X):
    return torch.addmm(linear.bias, X, linear.weight.t())
