"""torch's optimizers, without the lazy import of ``torch._dynamo``.

``torch.optim.Optimizer`` wraps ``add_param_group`` (called by every
constructor), ``zero_grad``, ``state_dict``, ``load_state_dict`` and ``step``
in decorators that import ``torch._dynamo`` (and sympy) on their first call:
0.73 s on the first fit of a process here, against ~0.3 ms for the optimizer
itself. A Ctrl-C landing inside that import also left the process unable to
fit again (``partially initialized module 'torch._dynamo'``).

The classes below are torch's own optimizers, state and arithmetic included
(``isinstance(optimizer, torch.optim.Adam)`` holds and ``state_dict`` is
torch's), with those methods taken from under their decorators. In eager
mode, which is all a fit uses, the decorators only disable dynamo and set
``torch.no_grad``; ``step`` keeps the ``no_grad``. Should a future torch stop
exposing the undecorated functions (``__wrapped__``), the decorated ones are
used: slower on the first fit, and still correct.
"""

import inspect

import torch


def _undecorated(function):
    """``function`` from under its ``functools.wraps`` decorators."""
    return inspect.unwrap(function)


def _no_grad_step(optimizer_class):
    """``optimizer_class.step`` without its decorators, under ``no_grad``."""
    step = _undecorated(optimizer_class.step)

    @torch.no_grad()
    def no_grad_step(self, *args, **kwargs):
        return step(self, *args, **kwargs)

    no_grad_step.__doc__ = step.__doc__
    return no_grad_step


class _WithoutDynamo:
    """The bookkeeping methods of ``torch.optim.Optimizer``, undecorated."""

    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)
    load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)


class Adam(_WithoutDynamo, torch.optim.Adam):
    """:class:`torch.optim.Adam` that imports no ``torch._dynamo``."""

    step = _no_grad_step(torch.optim.Adam)


class AdamW(_WithoutDynamo, torch.optim.AdamW):
    """:class:`torch.optim.AdamW` that imports no ``torch._dynamo``."""

    step = _no_grad_step(torch.optim.AdamW)


class SGD(_WithoutDynamo, torch.optim.SGD):
    """:class:`torch.optim.SGD` that imports no ``torch._dynamo``."""

    step = _no_grad_step(torch.optim.SGD)
