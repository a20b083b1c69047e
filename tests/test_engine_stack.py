"""The stack's closed-form gradients must equal autograd's on the same objective.

Parametrized over every entry of the activation registry, and every target.
"""

import numpy as np
import pytest
import torch
from torch import nn

from skorchlite._engine.activations import ACTIVATIONS
from skorchlite._engine.network import build_mlp
from skorchlite._engine.stack import (
    MLPStack,
    ModuleStack,
    add_penalty_gradient,
    full_batch_objective,
    stack_of,
)
from skorchlite._targets import (
    BinaryTarget,
    ContinuousTarget,
    MulticlassTarget,
    MultilabelTarget,
)

TARGETS = {
    "binary": BinaryTarget(np.array([0, 1])),
    "multiclass": MulticlassTarget(np.arange(3)),
    "multilabel": MultilabelTarget(np.arange(3)),
    "squared_error": ContinuousTarget(1, "squared_error"),
    "squared_error-3": ContinuousTarget(3, "squared_error"),
    "poisson": ContinuousTarget(2, "poisson"),
}

N_ROWS, N_FEATURES = 13, 4


def make_case(target, activation, n_hidden_layers, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n_outputs = TARGETS[target].n_outputs
    module = build_mlp(
        N_FEATURES,
        [5] * n_hidden_layers,
        n_outputs,
        activation=activation,
        dropout=0.0,
        random_state=np.random.RandomState(seed),
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    X = torch.randn(N_ROWS, N_FEATURES, dtype=torch.float64, generator=generator)
    if target == "multiclass":
        y = torch.randint(0, 3, (N_ROWS,), generator=generator)
    elif target.startswith("squared_error"):
        y = torch.randn(N_ROWS, n_outputs, dtype=torch.float64, generator=generator)
    elif target == "poisson":  # counts, zeros included
        y = torch.randint(0, 5, (N_ROWS, n_outputs), generator=generator).double()
    else:
        y = torch.randint(0, 2, (N_ROWS, n_outputs), generator=generator).double()
    return module, X, y, TARGETS[target]


def objective(module, target, X, y, w, alpha):
    """The objective autograd differentiates: weighted mean loss + L2 term."""
    losses = target.loss_function()(module(X), y)
    weight_sum = len(y) if w is None else w.sum()
    loss = losses.mean() if w is None else (losses * w).sum() / weight_sum
    squares = sum(m.weight.square().sum() for m in module if isinstance(m, nn.Linear))
    return loss + 0.5 * alpha * squares / weight_sum


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize(
    ("n_hidden_layers", "weighted", "alpha"),
    [(2, False, 0.0), (2, True, 0.3), (0, False, 0.3)],
    ids=["plain", "weighted-l2", "linear-l2"],
)
def test_gradients_and_loss_match_autograd(
    target, activation, n_hidden_layers, weighted, alpha
):
    module, X, y, target = make_case(target, activation, n_hidden_layers)
    w = torch.rand(N_ROWS, dtype=torch.float64) * 3 if weighted else None
    stack = MLPStack.of_module(module)
    assert stack is not None
    loss, grads = full_batch_objective(
        stack, target, X[None], y[None], None if w is None else w[None], alpha
    )

    module.zero_grad()
    reference = objective(module, target, X, y, w, alpha)
    reference.backward()
    torch.testing.assert_close(loss, reference.detach())
    for ours, parameter in zip(grads, module.parameters(), strict=True):
        torch.testing.assert_close(ours, parameter.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_a_stack_of_many_is_each_model_alone(activation):
    cases = [make_case("multiclass", activation, 1, seed=seed) for seed in range(3)]
    X, y = cases[0][1], cases[0][2]
    stacks = [MLPStack.of_module(module) for module, *_ in cases]
    stacked = MLPStack(
        [torch.cat(ps) for ps in zip(*(s.params for s in stacks), strict=True)],
        ACTIVATIONS[activation],
    )
    target = TARGETS["multiclass"]
    X3, y3 = X.expand(3, -1, -1), y.expand(3, -1)
    loss, grads, _ = stacked.gradients(target, X3, y3, None, N_ROWS)
    for m, stack in enumerate(stacks):
        alone, alone_grads, _ = stack.gradients(target, X[None], y[None], None, N_ROWS)
        torch.testing.assert_close(loss[m], alone[0])
        for g, a in zip(grads, alone_grads, strict=True):
            torch.testing.assert_close(g[m], a[0], rtol=1e-12, atol=1e-14)


def test_zero_weight_batch_keeps_gradients_finite():
    module, X, y, target = make_case("binary", "relu", 1)
    stack = MLPStack.of_module(module)
    w = torch.zeros(1, N_ROWS, dtype=torch.float64)
    loss, grads, weight_sum = stack.gradients(target, X[None], y[None], w, N_ROWS)
    add_penalty_gradient(stack, grads, 1.0, weight_sum)
    assert torch.isfinite(loss).all()
    assert all(torch.isfinite(g).all() for g in grads)


class _Net(nn.Module):
    """A module of ours' layers that is not an nn.Sequential."""

    def __init__(self, seed=0):
        super().__init__()
        # Initialized from its own seed: the global RNG's state depends on
        # which tests ran before in this process.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.hidden = nn.Linear(2, 8)
            self.out = nn.Linear(8, 1)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X)))


@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.2), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Tanh()),
        _Net(),
    ],
    ids=["other-slope", "batchnorm", "no-bias", "ends-in-activation", "not-sequential"],
)
def test_other_networks_train_through_autograd(module):
    assert MLPStack.of_module(module) is None
    module = module.double()
    stack = stack_of(module, [])
    assert isinstance(stack, ModuleStack)
    X = torch.randn(1, 6, 2, dtype=torch.float64)
    y = torch.zeros(1, 6, module(X[0]).shape[1], dtype=torch.float64)
    loss, grads, _ = stack.gradients(BinaryTarget(np.array([0, 1])), X, y, None, 6)
    module.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(module(X[0]), y[0]).backward()
    torch.testing.assert_close(
        loss[0],
        nn.functional.binary_cross_entropy_with_logits(module(X[0]), y[0]).detach(),
    )
    for g, p in zip(grads, module.parameters(), strict=True):
        torch.testing.assert_close(g[0], p.grad)
