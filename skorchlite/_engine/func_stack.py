"""``M`` copies of one user module as a stack, through :mod:`torch.func`.

A :class:`FuncStack` holds the parameters of ``M`` modules of one architecture
(same parameter names and shapes, different values) as ``(M, *shape)``
tensors, and runs them as one: ``vmap`` of ``functional_call`` over the
stacked tensors, its backward one ``vjp``. It has the interface the loop uses
on :class:`~skorchlite._engine.stack.MLPStack`, so the batched search can train
any module that :func:`func_stack_error` accepts, not only our MLPs.

Not every module can be vmapped over its parameters: one whose training mode
updates buffers in place (batch norm's running statistics), one whose forward
branches on its data, one that draws random numbers in training (dropout: each
model's fit draws its masks from its own ``torch.Generator``, and ``vmap``
with ``randomness="different"`` draws one ``(M, ...)`` tensor from a single
generator, so only model 0 would get its own masks), and one that mixes the
rows of a batch (batch statistics, which the zero rows padding a smaller
training set would change). :func:`func_stack_error` says which; such modules
train by ordinary fits.
"""

import copy

import torch
from torch.func import functional_call, stack_module_state, vjp, vmap

from .stack import weighted_losses


class FuncStack:
    """``M`` modules of one architecture, their gradients from ``torch.func``.

    Parameters
    ----------
    module : torch.nn.Module
        The architecture: its forward runs on the stacked tensors (its own
        parameters and buffers are never read). Its mode (``train()`` or
        ``eval()``) is the stack's.
    params : list of torch.Tensor
        Each parameter of ``module`` stacked ``(M, *shape)``, in the order of
        ``module.named_parameters()``; the solver updates them in place.
    buffers : list of torch.Tensor
        Each buffer stacked likewise (constants: training updates none).
    penalized : list of str, optional
        The names of the parameters under the L2 penalty; by default those
        with two or more dimensions (weights, not biases or norm scales)
        that the module does not freeze (``requires_grad=False`` ones get
        zero gradients: they stay as they are).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from skorchlite._targets import BinaryTarget
    >>> nets = [nn.Linear(2, 1).double() for _ in range(3)]
    >>> stack = FuncStack.of_modules(nets)
    >>> X = torch.randn(3, 4, 2, dtype=torch.float64)
    >>> y = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)
    >>> y = y.expand(3, 4, 1)
    >>> loss, grads, _ = stack.gradients(BinaryTarget(np.array([0, 1])), X, y, None, 4)
    >>> loss.shape, [g.shape for g in grads]
    (torch.Size([3]), [torch.Size([3, 1, 2]), torch.Size([3, 1])])
    >>> loss_2 = nn.functional.binary_cross_entropy_with_logits(nets[2](X[2]), y[2])
    >>> loss_2.backward()
    >>> torch.allclose(grads[0][2], nets[2].weight.grad)
    True
    """

    dropout = None

    def __init__(self, module, params, buffers, penalized=None):
        self.module = module
        self.param_names = [name for name, _ in module.named_parameters()]
        self.buffer_names = [name for name, _ in module.named_buffers()]
        self.params = list(params)
        self.buffers = list(buffers)
        #: Parameters the module froze (requires_grad=False): never trained.
        self._frozen = [not p.requires_grad for _, p in module.named_parameters()]
        if penalized is None:
            penalized = [
                n
                for n, p in module.named_parameters()
                if p.dim() >= 2 and p.requires_grad
            ]
        unknown = set(penalized) - set(self.param_names)
        if unknown:
            raise ValueError(f"no parameters named {sorted(unknown)} to penalize")
        self._penalized = [name in set(penalized) for name in self.param_names]

    @classmethod
    def of_modules(cls, modules, penalized_names=None):
        """The stack of ``modules`` (copies of one architecture, in order).

        Raises ValueError when their parameters or buffers differ in name,
        shape, dtype or device. The modules are left as they are: the stack
        holds copies of their tensors, and a copy of the first as its
        architecture.
        """
        first = _layout(modules[0])
        for index, module in enumerate(modules[1:], start=1):
            if _layout(module) != first:
                raise ValueError(
                    f"module {index} differs from module 0 in its parameters or "
                    "buffers (names, shapes, dtypes or devices)"
                )
        params, buffers = stack_module_state(list(modules))
        template = copy.deepcopy(modules[0])
        return cls(
            template,
            [params[name].detach() for name, _ in template.named_parameters()],
            [buffers[name] for name, _ in template.named_buffers()],
            penalized_names,
        )

    @property
    def weights(self):
        """The stacked parameters under the L2 penalty."""
        return [p for p, pen in zip(self.params, self._penalized, strict=True) if pen]

    def _forward(self, params, X):
        """Each model's outputs ``(M, B, n_outputs)`` for rows ``X`` ``(M, B, F)``."""

        def one(params, buffers, x):
            state = (
                dict(zip(self.param_names, params, strict=True)),
                dict(zip(self.buffer_names, buffers, strict=True)),
            )
            return functional_call(self.module, state, (x,))

        return vmap(one)(tuple(params), tuple(self.buffers), X)

    def outputs(self, X):
        """The eval-mode outputs ``(M, B, n_outputs)`` of rows ``X``."""
        training = self.module.training
        self.module.eval()
        try:
            return self._forward(self.params, X)
        finally:
            self.module.train(training)

    def gradients(self, target, X, y, w, n_real, start=None):
        """Each model's batch loss and its gradient, without the L2 term.

        The contract of :meth:`MLPStack.gradients
        <skorchlite._engine.stack.MLPStack.gradients>`: ``X`` ``(M, B, F)``,
        ``y`` ``(M, B, n_outputs)`` (class indices: ``(M, B)``), ``w``
        ``(M, B)`` or None, ``n_real`` an int or ``(M,)``; returns ``(loss
        (M,), grads, weight_sum)``, ``grads`` shaped as :attr:`params`. The
        loss and its gradient with respect to the outputs are the target's
        (:func:`~skorchlite._engine.stack.weighted_losses`); ``vjp`` carries
        that gradient back to the parameters. ``start`` is unused.
        """
        # vjp reads the current values: the solver updates params in place.
        outputs, backward = vjp(lambda params: self._forward(params, X), self.params)
        with torch.no_grad():
            if y.dim() == 3:  # the outputs along dim 1, as the MLPs lay them out
                y = y.mT
            losses, delta = target.losses_and_delta(outputs.mT, y, dim=1)
            loss, delta, weight_sum = weighted_losses(losses, delta, w, n_real)
        (grads,) = backward(delta.mT)
        # Contiguous like the parameters: torch's fused Adam kernel reads a
        # gradient's memory in its parameter's layout, whatever its strides
        # (vjp gives a Linear weight's gradient transposed).
        grads = [
            torch.zeros_like(g) if frozen else g.contiguous()
            for g, frozen in zip(grads, self._frozen, strict=True)
        ]
        return loss, grads, weight_sum

    def keep(self, rows):
        """Keep the models of ``rows`` (a list of ints)."""
        index = torch.tensor(rows, device=self.params[0].device)
        self.params = [p[index] for p in self.params]
        self.buffers = [b[index] for b in self.buffers]

    def train(self):
        """Training mode (the architecture's)."""
        self.module.train()

    def eval(self):
        """Eval mode (the architecture's)."""
        self.module.eval()


def _layout(module):
    """What stacking needs equal: each parameter's and buffer's name, shape,
    dtype and device."""
    return [
        (kind, name, tuple(t.shape), t.dtype, t.device)
        for kind, named in (
            ("param", module.named_parameters),
            ("buffer", module.named_buffers),
        )
        for name, t in named()
    ]


def func_stack_error(module, example_X):
    """Why copies of ``module`` cannot train as a :class:`FuncStack`, or None.

    Runs two copies on ``example_X`` in training mode, forward and backward,
    and in eval mode; ``module`` is left as it is, and nothing draws random
    numbers (``vmap`` refuses random operations before they draw).

    Parameters
    ----------
    module : torch.nn.Module
    example_X : torch.Tensor
        At least 2 rows of the module's input ``(B, F)``, on its device and in
        its dtype (a batch of the training rows).

    Returns
    -------
    str or None
        The reason, completing "the module ...": ``"draws random numbers in
        training (dropout)"``, ``"cannot be vmapped: <torch's message>"``.
    """
    if not any(True for _ in module.parameters()):
        return "has no parameters"
    if any(getattr(m, "track_running_stats", False) for m in module.modules()):
        return "updates buffers in training (batch norm's running statistics)"
    stack = FuncStack.of_modules([module, module])
    X = example_X.expand(2, *example_X.shape)
    buffers = [b.clone() for b in stack.buffers]
    try:
        stack.train()
        outputs = _forward_and_backward(stack, X)
        stack.eval()
        _forward_and_backward(stack, X)
    except Exception as exc:
        message = str(exc)
        if "random operation" in message:
            return "draws random numbers in training (dropout)"
        if "mutate a captured Tensor" in message:
            return "updates buffers in place in its forward"
        return f"cannot be vmapped: {message.splitlines()[0]}"
    if outputs.dim() != 3:
        return f"returns {outputs.dim() - 1}-d outputs, not (rows, outputs)"
    if any(not torch.equal(a, b) for a, b in zip(buffers, stack.buffers, strict=True)):
        return "updates buffers in place in its forward"
    # Rows padding a smaller training set must not change the other rows.
    n_rows = example_X.shape[0] // 2
    stack.train()
    alone = stack._forward(stack.params, X[:, :n_rows])
    scale = outputs.abs().max().item()
    if not torch.allclose(alone, outputs[:, :n_rows], rtol=1e-4, atol=1e-4 * scale):
        return "mixes the rows of a batch (batch statistics)"
    return None


def _forward_and_backward(stack, X):
    """The outputs of ``stack`` on ``X``, after a backward pass through them."""
    outputs, backward = vjp(lambda params: stack._forward(params, X), stack.params)
    backward(torch.ones_like(outputs))
    return outputs
