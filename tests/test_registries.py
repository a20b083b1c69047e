"""The registries: each solver, activation and target knows what it implies,
and the code that asks them refuses what an entry does not offer."""

import numpy as np
import pytest
import torch

from skorchlite import TorchMLPClassifier, TorchMLPRegressor
from skorchlite._base import prepare_fit
from skorchlite._engine.activations import ACTIVATIONS, activation_of
from skorchlite._engine.batched import BatchedJob, stack_error
from skorchlite._engine.network import build_mlp
from skorchlite._engine.solvers import SOLVERS
from skorchlite._targets import TARGETS


@pytest.mark.parametrize("solver", [s for s in SOLVERS if SOLVERS[s].stack_error()])
def test_a_search_refuses_to_stack_a_solver_that_says_so(solver):
    X, y = np.random.RandomState(0).normal(size=(20, 2)), np.arange(20) % 2
    estimator = TorchMLPClassifier((3,), solver=solver, max_iter=2, random_state=0)
    spec = prepare_fit(estimator, X, y, None)
    job = BatchedJob(estimator.module_, spec, 0)
    assert stack_error(job) == SOLVERS[solver].stack_error()


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
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    assert torch.equal(ACTIVATIONS[name].forward(x.clone()), module[1](x))


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_partial_fit_is_offered_as_the_solver_says(solver):
    error = SOLVERS[solver].partial_fit_error()
    assert hasattr(TorchMLPClassifier(solver=solver), "partial_fit") == (error is None)


def test_targets_are_named_as_persistence_stores_them():
    assert set(TARGETS) == {
        "binary",
        "multiclass",
        "multilabel-indicator",
        "continuous",
    }
    assert all(TARGETS[name].name == name for name in TARGETS)
    assert [name for name in TARGETS if TARGETS[name].regression] == ["continuous"]
