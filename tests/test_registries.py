"""The registries: each solver, activation and target knows what it implies,
and the code that asks them refuses what an entry does not offer."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from skorchlite import TorchMLPClassifier, TorchMLPRegressor
from skorchlite._batched import BatchedGroup, BatchedJob
from skorchlite._mlp import ACTIVATIONS, activation_of, build_mlp
from skorchlite._solvers import SOLVERS
from skorchlite._targets import TARGETS


def _job(solver="adam", activation="relu"):
    estimator = SimpleNamespace(solver=solver, activation=activation)
    return BatchedJob(estimator, None, torch.zeros(2, 1), torch.zeros(2))


@pytest.mark.parametrize(
    "solver", [s for s in SOLVERS if not SOLVERS[s].stacked_update]
)
def test_the_stacked_loop_refuses_a_solver_without_a_stacked_update(solver):
    with pytest.raises(ValueError, match=f"solver='{solver}' has no stacked update"):
        BatchedGroup([_job(solver=solver)])


@pytest.mark.parametrize(
    "activation", [a for a in ACTIVATIONS if not ACTIVATIONS[a].closed_form]
)
def test_the_stacked_loop_refuses_an_activation_without_a_closed_form(activation):
    with pytest.raises(ValueError, match="no closed-form derivative"):
        BatchedGroup([_job(activation=activation)])


def test_every_parameter_value_has_its_entry():
    # The estimators' parameter constraints are the registries' keys.
    for estimator in (TorchMLPClassifier, TorchMLPRegressor):
        constraints = estimator._parameter_constraints
        assert constraints["solver"][0].options == set(SOLVERS)
        assert constraints["activation"][0].options == set(ACTIVATIONS)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_builds_and_is_recognized(name):
    module = build_mlp(
        3,
        [4],
        2,
        activation=name,
        dropout=0.0,
        random_state=np.random.RandomState(0),
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    assert activation_of(module[1]) is ACTIVATIONS[name]
    if ACTIVATIONS[name].closed_form:
        x = torch.linspace(-2, 2, 9, dtype=torch.float64)
        assert torch.allclose(ACTIVATIONS[name].function(x.clone()), module[1](x))


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_stochastic_solver_builds_its_optimizer(solver):
    spec = SOLVERS[solver]
    if not spec.stochastic:
        assert not hasattr(TorchMLPClassifier(solver=solver), "partial_fit")
        return
    estimator = TorchMLPClassifier(solver=solver)
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    optimizer = spec.optimizer(estimator, module)
    assert isinstance(optimizer, torch.optim.Optimizer)
    decays = {group.get("weight_decay", 0.0) for group in optimizer.param_groups}
    # A decoupled decay is the optimizer's; otherwise alpha is the loss's L2 term.
    assert (estimator.alpha in decays) == spec.decoupled_decay


def test_targets_are_named_as_persistence_stores_them():
    assert set(TARGETS) == {
        "binary",
        "multiclass",
        "multilabel-indicator",
        "continuous",
    }
    assert all(TARGETS[name].name == name for name in TARGETS)
    assert [name for name in TARGETS if TARGETS[name].regression] == ["continuous"]
