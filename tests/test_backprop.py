"""The closed-form gradients must equal autograd's on the same objective."""

import pytest
import torch
from torch import nn

from skorchlite._backprop import ClosedFormBackprop
from skorchlite._mlp import build_mlp, linear_layers
from skorchlite._training import FunctionalAdamStep, Objective

N_ROWS, N_FEATURES = 13, 4


def make_case(target, activation, n_hidden_layers, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n_outputs = {"binary": 1, "multiclass": 3, "multilabel": 3}[target]
    module = build_mlp(
        N_FEATURES,
        [5] * n_hidden_layers,
        n_outputs,
        activation=activation,
        dropout=0.0,
        generator=generator,
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    X = torch.randn(N_ROWS, N_FEATURES, dtype=torch.float64, generator=generator)
    if target == "multiclass":
        y = torch.randint(0, 3, (N_ROWS,), generator=generator)
        loss_fn = nn.CrossEntropyLoss(reduction="none")
    else:
        y = torch.randint(0, 2, (N_ROWS, n_outputs), generator=generator).double()
        loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    return module, X, y, loss_fn


def gradients(module):
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "logistic"])
@pytest.mark.parametrize("n_hidden_layers", [0, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_gradients_and_loss_match_autograd(
    target, activation, n_hidden_layers, weighted, alpha
):
    module, X, y, loss_fn = make_case(target, activation, n_hidden_layers)
    weights = [layer.weight for layer in linear_layers(module)]
    objective = Objective(loss_fn, weights, alpha)
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
    module, X, y, loss_fn = make_case("binary", "relu", 1)
    objective = Objective(
        loss_fn, [layer.weight for layer in linear_layers(module)], 1.0
    )
    ClosedFormBackprop.for_module(module, objective)(
        X, y, torch.zeros(N_ROWS, dtype=torch.float64)
    )
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1)),
        nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)),
    ],
    ids=["gelu", "dropout", "no-bias"],
)
def test_other_networks_fall_back_to_autograd(module):
    objective = Objective(nn.BCEWithLogitsLoss(reduction="none"), [], 0.0)
    assert ClosedFormBackprop.for_module(module, objective) is None


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
