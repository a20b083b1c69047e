"""The solver registry: each ``solver`` value and everything it implies.

An entry builds its torch optimizer for a fit, says whether it is stochastic
(minibatches, epochs, ``partial_fit``), whether ``alpha`` is an L2 term or a
decoupled weight decay, which learning-rate schedule applies, and how the
batched search updates stacked parameters, if it can: a solver without a
stacked update is not batched (never trained as another solver).
"""

import torch

from . import _optim
from ._mlp import linear_layers


class Solver:
    """One value of the ``solver`` parameter."""

    name = None
    #: One RST sentence: the docs' description of this ``solver`` value.
    doc = ""
    #: Minibatch epochs (and partial_fit); else full-batch iterations.
    stochastic = True
    #: ``alpha`` is a decoupled weight decay, not an L2 term of the loss.
    decoupled_decay = False
    #: The update of the batched search's stacked parameters, or None.
    stacked_update = None
    #: The optimizer's state of one parameter, as pickling stores it: each
    #: entry's name and kind ("count": a positive step number; "array": shaped
    #: like the parameter; "nonnegative": such an array, >= 0).
    state_entries = {}

    def optimizer(self, estimator, module):
        """The torch optimizer of a fit of ``estimator`` on ``module``."""
        raise NotImplementedError

    def schedule_policy(self, estimator):
        """The ``learning_rate`` policy this solver follows."""
        return "constant"


class SGD(Solver):
    name = "sgd"
    doc = (
        "``torch.optim.SGD``, with ``momentum``, ``nesterovs_momentum`` and the "
        "``learning_rate`` schedule."
    )
    state_entries = {"momentum_buffer": "array"}

    def optimizer(self, estimator, module):
        return _optim.SGD(
            module.parameters(),
            lr=estimator.learning_rate_init,
            momentum=estimator.momentum,
            nesterov=estimator.nesterovs_momentum and estimator.momentum > 0,
        )

    def schedule_policy(self, estimator):
        return estimator.learning_rate


def _adam_options(estimator, module):
    return dict(
        lr=estimator.learning_rate_init,
        betas=(estimator.beta_1, estimator.beta_2),
        eps=estimator.epsilon,
        fused=next(module.parameters()).device.type in {"cpu", "cuda"},
    )


_ADAM_STATE = {"step": "count", "exp_avg": "array", "exp_avg_sq": "nonnegative"}


class Adam(Solver):
    name = "adam"
    doc = "``torch.optim.Adam``."
    state_entries = _ADAM_STATE

    def optimizer(self, estimator, module):
        return _optim.Adam(module.parameters(), **_adam_options(estimator, module))


class AdamW(Solver):
    name = "adamw"
    doc = (
        "``torch.optim.AdamW``: ``alpha`` is its decoupled ``weight_decay`` of the "
        "weights (not the biases)."
    )
    decoupled_decay = True
    state_entries = _ADAM_STATE

    def optimizer(self, estimator, module):
        linears = linear_layers(module)
        groups = [
            {
                "params": [layer.weight for layer in linears],
                "weight_decay": estimator.alpha,
            },
            {"params": [layer.bias for layer in linears], "weight_decay": 0.0},
        ]
        return _optim.AdamW(groups, **_adam_options(estimator, module))


class LBFGS(Solver):
    """Full-batch L-BFGS; :func:`skorchlite._training.fit_lbfgs` runs it."""

    name = "lbfgs"
    doc = (
        "full-batch L-BFGS: scipy's L-BFGS-B, run as scikit-learn's MLPs run it "
        "(``max_iter``, ``max_fun`` and ``tol`` stop it by the same rule), on the "
        "loss and gradients torch computes."
    )
    stochastic = False


# --------------------------------------------------- stacked (batched) updates


def _column(values, like):
    return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None]


def _scalar_or_column(values, like):
    """A Python float when all models share the value (cheaper in the update)."""
    if len(set(values)) == 1:
        return float(values[0])
    return _column(values, like)


class StackedSGD:
    """torch's SGD (momentum, Nesterov) on rows of stacked parameters."""

    def __init__(self, estimators, flat, is_weight, lr_col):
        self.momentum = _column([e.momentum for e in estimators], flat)
        self.nesterov = torch.tensor(
            [e.nesterovs_momentum and e.momentum > 0 for e in estimators],
            device=flat.device,
        )[:, None]
        self.buffer = None

    def step(self, flat, grad, step, lr_col):
        if self.buffer is None:
            self.buffer = grad.clone()
        else:
            self.buffer.mul_(self.momentum).add_(grad)
        direction = torch.where(
            self.nesterov, grad + self.momentum * self.buffer, self.buffer
        )
        flat.sub_(direction * lr_col)

    def keep(self, index):
        """Keep the state of rows ``index`` (models still training)."""
        self.momentum = self.momentum[index]
        self.nesterov = self.nesterov[index]
        if self.buffer is not None:
            self.buffer = self.buffer[index]


class StackedAdam:
    """torch's Adam (or AdamW, with ``decoupled``) on rows of stacked parameters."""

    def __init__(self, estimators, flat, is_weight, lr_col, decoupled=False):
        self.beta_1 = _scalar_or_column([e.beta_1 for e in estimators], flat)
        self.beta_2 = _scalar_or_column([e.beta_2 for e in estimators], flat)
        self.epsilon = _scalar_or_column([e.epsilon for e in estimators], flat)
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.decay = None
        if decoupled:
            # Adam's learning rate is constant: so is the decay factor.
            alpha = _column([e.alpha for e in estimators], flat)
            self.decay = 1 - lr_col * alpha * is_weight

    def step(self, flat, grad, step, lr_col):
        beta_1, beta_2 = self.beta_1, self.beta_2
        if self.decay is not None:
            flat.mul_(self.decay)
        self.exp_avg.lerp_(grad, 1 - beta_1)
        if isinstance(beta_2, float):
            self.exp_avg_sq.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
        else:
            self.exp_avg_sq.mul_(beta_2).addcmul_(grad, grad * (1 - beta_2))
        step_size = lr_col / (1 - beta_1**step)
        bias_correction2_sqrt = (1 - beta_2**step) ** 0.5
        denom = self.exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(self.epsilon)
        flat.addcdiv_(self.exp_avg * -step_size, denom)

    def keep(self, index):
        for name in ("beta_1", "beta_2", "epsilon", "exp_avg", "exp_avg_sq", "decay"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                setattr(self, name, value[index])


class StackedAdamW(StackedAdam):
    def __init__(self, estimators, flat, is_weight, lr_col):
        super().__init__(estimators, flat, is_weight, lr_col, decoupled=True)


SGD.stacked_update = StackedSGD
Adam.stacked_update = StackedAdam
AdamW.stacked_update = StackedAdamW

#: Every solver by its name.
SOLVERS = {solver.name: solver() for solver in (Adam, AdamW, SGD, LBFGS)}
