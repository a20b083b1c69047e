"""The forward and backward pass of a stack of MLPs: the gradient math, once.

A stack holds ``M`` networks of one shape: for each Linear layer a weight
``(M, out, in)`` and a bias ``(M, out)``. A single fit is a stack of one whose
tensors are views of its module's own parameters (``weight[None]``), so the
update writes into the module; the batched search stacks many models (hidden
widths zero-padded to the widest, :mod:`skorchlite._engine.batched`).

The gradients are written out in closed form, as ``MLPClassifier``'s
``_backprop``: on these small networks a step is dominated by per-operator
overhead, and autograd's engine alone was ~60% of a step here (~270 us of
~450 us on a 2 -> 100 -> 1 network). The activations' derivatives are torch's
own backward kernels (:mod:`skorchlite._engine.activations`), the output
gradient is the target's (:mod:`skorchlite._targets`). Activations are kept
as ``(M, width, batch)``: batched products with few output columns are slow on
the CPU, and elementwise steps need their operands in one memory layout.

A module that is not such a network (one the user changed) trains through
:class:`ModuleStack`, with autograd, behind the same interface.
"""

import contextlib

import torch
from torch import nn

from .activations import activation_of
from .network import Dropout, linear_layers


def _matmul(a, b):
    """``a @ b`` for stacks of matrices, in the faster orientation.

    Batched GEMMs with few output columns are slow on the CPU (a 200 x 100 by
    100 x 1 product per model ran ~4x slower than its transpose here), so the
    product is computed as ``(b.mT @ a.mT).mT`` when that has more columns.
    """
    if b.shape[2] < a.shape[1]:
        # Contiguous like the parameters: torch's fused Adam kernel reads a
        # gradient's memory in its parameter's layout, whatever its strides.
        return torch.bmm(b.mT, a.mT).mT.contiguous()
    return torch.bmm(a, b)


def weighted_losses(losses, delta, w, n_real):
    """Each model's batch loss, and ``delta`` scaled to its gradient.

    The loss is the mean over the batch's rows, or ``sum(w * l) / sum(w)``
    with weights (a batch whose weights are all zero falls back to its row
    count ``n_real``, so the L2 term stays bounded without a host sync).

    Returns ``(loss (M,), delta, weight_sum)``; ``weight_sum`` is the batch's
    rows (an int) when unweighted, else an ``(M, 1)`` tensor.
    """
    if w is None:
        n_rows = losses.shape[1]
        # A float: an int operand costs torch a cast of its own (~1.5 us).
        return losses.sum(dim=1) / float(n_rows), delta.div_(float(n_rows)), n_rows
    weight_sum = w.sum(dim=1)
    weight_sum = torch.where(weight_sum > 0, weight_sum, n_real)
    loss = (losses * w).sum(dim=1) / weight_sum
    weight_sum = weight_sum[:, None]
    return loss, delta.mul_((w / weight_sum)[:, None, :]), weight_sum


class MLPStack:
    """``M`` MLPs of one shape, with closed-form gradients.

    Parameters
    ----------
    params : list of torch.Tensor
        ``[W_0, b_0, W_1, b_1, ...]``, ``W_l`` of shape ``(M, out, in)`` and
        ``b_l`` of shape ``(M, out)``.
    activation : skorchlite._engine.activations.Activation
        The hidden layers' activation.
    dropout : DropoutMasks or None
        Draws the training-mode dropout masks.
    grad_mask : list of torch.Tensor or None
        Multiplies the gradients (zero on padded units whose outgoing weights
        would otherwise learn: the activation of 0 is not 0).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skorchlite._targets import BinaryTarget
    >>> import numpy as np
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    >>> stack = MLPStack.of_module(net)
    >>> X = torch.randn(1, 4, 2, dtype=torch.float64)
    >>> y = torch.tensor([[[0.0], [1.0], [1.0], [0.0]]], dtype=torch.float64)
    >>> target = BinaryTarget(np.array([0, 1]))
    >>> loss, grads, _ = stack.gradients(target, X, y, None, 4)
    >>> torch.nn.functional.binary_cross_entropy_with_logits(net(X[0]), y[0]).backward()
    >>> torch.allclose(grads[0][0], net[0].weight.grad)
    True
    """

    def __init__(self, params, activation, dropout=None, grad_mask=None):
        self.params = params
        self.activation = activation
        self.dropout = dropout
        self.grad_mask = grad_mask

    @classmethod
    def of_module(cls, module, dropout=None):
        """A stack of one viewing ``module``'s parameters, or None if the
        module is not one of our MLPs (``Linear`` layers with biases
        alternating with one registry activation, and our dropout)."""
        if not isinstance(module, nn.Sequential):
            return None
        layers = [layer for layer in module if not isinstance(layer, Dropout)]
        linears = linear_layers(module)
        if len(layers) != 2 * len(linears) - 1:
            return None
        activations = {activation_of(layer) for layer in layers[1::2]}
        if (
            None in activations
            or len(activations) > 1
            or any(
                type(layer) is not nn.Linear or layer.bias is None
                for layer in layers[::2]
            )
        ):
            return None
        activation = activations.pop() if activations else None
        params = [p[None] for layer in linears for p in (layer.weight, layer.bias)]
        return cls(params, activation, dropout)

    @property
    def weights(self):
        """The weights (under the L2 penalty), not the biases."""
        return self.params[::2]

    def forward(self, X, start=None):
        """Each model's logits ``(M, n_outputs, B)`` for rows ``X`` ``(M, B, in)``.

        Also returns each layer's input, each hidden layer's pre-activation
        and activation (before dropout), and the dropout masks: dropout
        applies while training, when ``start`` (the batch's first row in the
        epoch) is given.
        """
        inputs, pres, outs, masks = [X.mT], [], [], []
        params = self.params
        for layer in range(0, len(params) - 2, 2):
            pre = torch.baddbmm(
                params[layer + 1][:, :, None], params[layer], inputs[-1]
            )
            out = self.activation.forward(pre)
            pres.append(pre)
            outs.append(out)
            if self.dropout is None or start is None:
                inputs.append(out)
            else:
                masks.append(self.dropout.mask(layer // 2, out, start))
                inputs.append(out * masks[-1])
        logits = torch.baddbmm(params[-1][:, :, None], params[-2], inputs[-1])
        return logits, inputs, pres, outs, masks

    def outputs(self, X):
        """The eval-mode outputs ``(M, B, n_outputs)`` of rows ``X``."""
        return self.forward(X)[0].mT

    def gradients(self, target, X, y, w, n_real, start=None):
        """Each model's batch loss and its gradient, without the L2 term.

        ``X`` is ``(M, B, in)``; ``y`` ``(M, B, n_outputs)`` (class indices:
        ``(M, B)``); ``w`` ``(M, B)`` or None; ``n_real`` (int or ``(M,)``)
        counts each model's rows that are not padding.

        Returns ``(loss (M,), grads, weight_sum)`` (see
        :func:`weighted_losses`); ``grads`` is shaped as :attr:`params`.
        """
        with torch.no_grad():  # the gradients are written out, not recorded
            return self._gradients(target, X, y, w, n_real, start)

    def _gradients(self, target, X, y, w, n_real, start):
        logits, inputs, pres, outs, masks = self.forward(X, start)
        if y.dim() == 3:  # outputs in the activations' layout (M, outputs, B)
            y = y.mT.contiguous()
        losses, delta = target.losses_and_delta(logits, y, dim=1)
        loss, delta, weight_sum = weighted_losses(losses, delta, w, n_real)
        grads = [None] * len(self.params)
        for layer in range(len(self.params) // 2 - 1, -1, -1):
            grads[2 * layer] = _matmul(delta, inputs[layer].mT)
            grads[2 * layer + 1] = delta.sum(dim=2)
            if layer:
                weight = self.params[2 * layer]
                if weight.shape[1] == 1:  # one output: an outer product
                    delta = weight.mT * delta
                else:
                    delta = torch.bmm(weight.mT, delta)
                if masks:
                    delta = delta.mul_(masks[layer - 1])
                delta = self.activation.derivative(
                    delta, pres[layer - 1], outs[layer - 1]
                )
        if self.grad_mask is not None:
            for grad, mask in zip(grads, self.grad_mask, strict=True):
                grad.mul_(mask)
        return loss, grads, weight_sum

    def keep(self, rows):
        """Keep the models of ``rows`` (a list of ints)."""
        index = torch.tensor(rows, device=self.params[0].device)
        self.params = [p[index] for p in self.params]
        if self.grad_mask is not None:
            self.grad_mask = [m[index] for m in self.grad_mask]
        if self.dropout is not None:
            self.dropout.keep(rows)

    def train(self):
        """Training mode (a no-op: the stack's dropout follows ``start``)."""

    def eval(self):
        """Eval mode (a no-op)."""


class ModuleStack:
    """Any module as a stack of one, its gradients from autograd.

    For modules that are not our MLPs (one the user changed, or the user's
    own); the interface of :class:`MLPStack`. The module's own dropout layers
    draw their masks: our :class:`~skorchlite._engine.network.Dropout` from
    the fit's generator (:func:`~skorchlite._engine.network.dropout_generator`),
    any other draw of a user's module from ``randomness``, a context entered
    around each forward (:class:`~skorchlite._engine.randomness.OwnRandomness`:
    only the module's own calls then pay for its interception).
    """

    dropout = None
    randomness = contextlib.nullcontext()

    def __init__(self, module, penalized):
        self.module = module
        parameters = list(module.parameters())
        self._parameters = parameters
        self.params = [p.detach()[None] for p in parameters]
        #: The ids of the parameters under the L2 penalty.
        self._penalized = {id(p) for p in penalized}

    @property
    def weights(self):
        return [
            view
            for p, view in zip(self._parameters, self.params, strict=True)
            if id(p) in self._penalized
        ]

    def outputs(self, X):
        with self.randomness:
            return self.module(X[0])[None]

    def gradients(self, target, X, y, w, n_real, start=None):
        for p in self._parameters:
            p.grad = None
        with torch.enable_grad():
            with self.randomness:
                outputs = self.module(X[0])
            losses = target.loss_function()(outputs, y[0])
            if w is None:
                loss = losses.mean()
            else:
                weight_sum = w[0].sum()
                weight_sum = torch.where(weight_sum > 0, weight_sum, n_real)
                loss = (losses * w[0]).sum() / weight_sum
            loss.backward()
        grads = [
            torch.zeros_like(p)[None] if p.grad is None else p.grad[None]
            for p in self._parameters
        ]
        weight_sum = losses.shape[0] if w is None else weight_sum.reshape(1, 1)
        return loss.detach()[None], grads, weight_sum

    def keep(self, rows):
        raise ValueError("a module stack holds one model")

    def train(self):
        self.module.train()

    def eval(self):
        self.module.eval()


def stack_of(module, penalized, dropout=None):
    """The closed-form stack of ``module``, or its autograd stand-in."""
    stack = MLPStack.of_module(module, dropout)
    return ModuleStack(module, penalized) if stack is None else stack


def penalty(stack, l2, weight_sum):
    """Each model's L2 term ``0.5 * l2 * ||W||^2 / weight_sum``, (M,)."""
    squares = sum(w.square().sum(dim=tuple(range(1, w.dim()))) for w in stack.weights)
    return 0.5 * _column(l2, squares) * squares / _flat(weight_sum)


def add_penalty_gradient(stack, grads, l2, weight_sum):
    """Add the L2 term's gradient ``l2 * W / weight_sum`` to ``grads``."""
    weights = {id(w) for w in stack.weights}
    for param, grad in zip(stack.params, grads, strict=True):
        if id(param) not in weights:
            continue
        if isinstance(l2, float) and isinstance(weight_sum, int):
            grad.add_(param, alpha=l2 / weight_sum)
        else:
            scale = _column(l2, grad) / _flat(weight_sum)
            grad.addcmul_(param, scale.view(-1, *[1] * (grad.dim() - 1)))


def clip_gradients(grads, max_norm):
    """Scale each model's gradient to a global norm of at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_``'s rule, per model)."""
    if max_norm is None:
        return
    squares = sum(g.square().sum(dim=tuple(range(1, g.dim()))) for g in grads)
    scale = (_column(max_norm, squares) / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view(-1, *[1] * (grad.dim() - 1)))


def full_batch_objective(stack, target, X, y, w, l2):
    """The objective of one model on all its rows, penalty included, and its
    gradient (for L-BFGS): ``(loss (0-d), grads)``."""
    n_rows = X.shape[1]
    loss, grads, weight_sum = stack.gradients(
        target, X, y, w, n_rows if w is None else torch.tensor(n_rows)
    )
    if l2:
        loss = loss + penalty(stack, l2, weight_sum)
        add_penalty_gradient(stack, grads, l2, weight_sum)
    return loss[0], [g[0] for g in grads]


def _column(values, like):
    """A float, or a list of per-model values as an (M,) tensor like ``like``."""
    if isinstance(values, float | int):
        return float(values)
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _flat(weight_sum):
    return weight_sum if isinstance(weight_sum, int) else weight_sum.reshape(-1)


class DropoutMasks:
    """Each model's dropout masks, drawn as its own fit draws them.

    Model ``m`` draws from its own generator (seeded as its fit seeds the
    generator of :func:`skorchlite._engine.network.dropout_generator`), mask by
    mask in forward order, in the shape of its own batch and layer
    ``(rows, width)``, scaled by ``1 / (1 - p)``.
    """

    def __init__(self, ps, seeds, widths, n_samples, batch_size, device):
        self.ps = list(ps)
        self.generators = [
            torch.Generator(device=device).manual_seed(seed) for seed in seeds
        ]
        self.widths = list(widths)  # each model's hidden widths
        self.n_samples = list(n_samples)
        self.batch_size = batch_size

    @classmethod
    def of(cls, specs, modules):
        """The masks of the fits ``specs`` of ``modules`` (their stack's
        order), or None when none of them drops out."""
        if not any(spec.dropout for spec in specs):
            return None
        return cls(
            [spec.dropout for spec in specs],
            [spec.seed for spec in specs],
            [[layer.out_features for layer in linear_layers(m)[:-1]] for m in modules],
            [spec.data.n_samples for spec in specs],
            specs[0].batch_size,
            specs[0].data.device,
        )

    def mask(self, layer, activation, start):
        """The masks ``(M, width, B)`` of hidden ``layer`` for a batch."""
        mask = torch.zeros_like(activation)
        for row, p in enumerate(self.ps):
            if not p:
                mask[row] = 1.0
                continue
            n_rows = min(self.batch_size, self.n_samples[row] - start)
            width = self.widths[row][layer]
            noise = torch.empty(
                n_rows, width, dtype=mask.dtype, device=self.generators[row].device
            )
            noise.bernoulli_(1 - p, generator=self.generators[row]).div_(1 - p)
            mask[row, :width, :n_rows] = noise.T.to(mask.device)
        return mask

    def keep(self, rows):
        for name in ("ps", "generators", "widths", "n_samples"):
            values = getattr(self, name)
            setattr(self, name, [values[row] for row in rows])
