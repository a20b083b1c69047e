"""The closed-form gradients must equal autograd's on the same objective."""

import numpy as np
import pytest
import torch
from torch import nn

from skorchlite._backprop import ClosedFormBackprop
from skorchlite._mlp import build_mlp, linear_layers
from skorchlite._targets import (
    BinaryTarget,
    ContinuousTarget,
    MulticlassTarget,
    MultilabelTarget,
)
from skorchlite._training import FunctionalAdamStep, Objective

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


def gradients(module):
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "logistic"])
@pytest.mark.parametrize("n_hidden_layers", [0, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_gradients_and_loss_match_autograd(
    target, activation, n_hidden_layers, weighted, alpha
):
    module, X, y, target = make_case(target, activation, n_hidden_layers)
    weights = [layer.weight for layer in linear_layers(module)]
    objective = Objective(target, weights, alpha)
    w = torch.rand(N_ROWS, dtype=torch.float64) * 3 if weighted else None

    backprop = ClosedFormBackprop.for_module(module, objective)
    assert backprop is not None
    total = backprop(X, y, w)
    if not weighted and alpha:  # the training loop adds it, for both paths
        objective.add_penalty_gradient(N_ROWS)
    closed_form = gradients(module)

    module.zero_grad()
    loss = objective(module(X), y, w) if weighted else objective.mean_loss(module(X), y)
    loss.backward()
    if not weighted and alpha:
        objective.add_penalty_gradient(N_ROWS)

    torch.testing.assert_close(total, loss.detach() * N_ROWS)
    for ours, reference in zip(closed_form, gradients(module), strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_zero_weight_batch_keeps_gradients_finite():
    module, X, y, target = make_case("binary", "relu", 1)
    objective = Objective(
        target, [layer.weight for layer in linear_layers(module)], 1.0
    )
    ClosedFormBackprop.for_module(module, objective)(
        X, y, torch.zeros(N_ROWS, dtype=torch.float64)
    )
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


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
        nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)),
        _Net(),
    ],
    ids=["gelu", "dropout", "no-bias", "not-sequential"],
)
def test_other_networks_fall_back_to_autograd(module):
    objective = Objective(TARGETS["binary"], [], 0.0)
    assert ClosedFormBackprop.for_module(module, objective) is None


def test_trainer_trains_a_module_that_is_not_sequential():
    from skorchlite._training import (
        History,
        LearningRateSchedule,
        Trainer,
        TrainingData,
    )

    module = _Net().double()
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 2, dtype=torch.float64, generator=generator)
    y = (X[:, :1] > 0).double()
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    objective = Objective(
        TARGETS["binary"], [layer.weight for layer in linear_layers(module)], 1e-4
    )
    trainer = Trainer(
        module,
        optimizer,
        objective,
        max_grad_norm=None,
        schedule=LearningRateSchedule(optimizer, "constant", 0.05, 0.5),
        tol=0.0,
        n_iter_no_change=100,
    )
    assert trainer.backprop is None
    history = History()
    data = TrainingData(X, y, None, torch.device("cpu"), torch.float64)
    trainer.run(
        data, history, max_epochs=30, batch_size=10, shuffle=True, generator=generator
    )
    assert history.n_iter == 30
    assert history.loss_curve[-1] < history.loss_curve[0] / 2


@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
def test_functional_adam_step_equals_optimizer_step(optimizer_class):
    modules = [make_case("multiclass", "relu", 1)[0] for _ in range(2)]
    X, y = make_case("multiclass", "relu", 1)[1:3]
    optimizers = [
        optimizer_class(module.parameters(), lr=0.05, weight_decay=0.01, fused=True)
        for module in modules
    ]
    steps = [optimizers[0].step, FunctionalAdamStep.for_optimizer(optimizers[1])]
    assert steps[1] != optimizers[1].step
    for _ in range(5):
        for module, optimizer, step in zip(modules, optimizers, steps, strict=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(module(X), y).backward()
            step()
    for reference, functional in zip(*(m.parameters() for m in modules), strict=True):
        assert torch.equal(reference, functional)
    assert optimizers[1].state_dict()["state"][0]["step"] == 5


def test_other_optimizers_keep_their_own_step():
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    assert FunctionalAdamStep.for_optimizer(optimizer) == optimizer.step
