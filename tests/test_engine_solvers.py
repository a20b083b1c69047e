"""Every stackable solver's update is its torch optimizer, step by step.

Parametrized over the solver registry: a new entry is held to the torch
optimizer it names (:meth:`Solver.reference`) without being listed here.
"""

import dataclasses

import numpy as np
import pytest
import torch

from skorchlite._engine.solvers import SOLVERS
from skorchlite._engine.spec import SolverSettings

STACKABLE = [name for name, solver in SOLVERS.items() if solver.stack_error() is None]
SHAPES = [(4, 3), (4,), (2, 4), (2,)]  # a 3 -> 4 -> 2 network's parameters


def settings(**changes):
    base = SolverSettings(
        learning_rate_init=0.01,
        learning_rate="constant",
        power_t=0.5,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        alpha=0.01,
        max_iter=200,
        max_fun=15000,
        tol=1e-4,
    )
    return dataclasses.replace(base, **changes)


# Three models: two sharing everything (one kernel call), one different.
MODELS = [
    settings(),
    settings(),
    settings(learning_rate_init=0.05, beta_1=0.8, beta_2=0.99, momentum=0.5, alpha=0.1),
]


def gradient(step, model, shape):
    generator = torch.Generator().manual_seed(1000 * step + 10 * model + len(shape))
    return torch.randn(shape, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize("name", STACKABLE)
@pytest.mark.parametrize("nesterov", [True, False])
def test_stacked_update_equals_the_torch_optimizer(name, nesterov):
    solver = SOLVERS[name]
    models = [dataclasses.replace(m, nesterovs_momentum=nesterov) for m in MODELS]
    generator = torch.Generator().manual_seed(0)
    initial = [
        torch.randn(3, *s, dtype=torch.float64, generator=generator) for s in SHAPES
    ]
    stacked = [p.clone() for p in initial]
    state = solver.new_state(stacked, models)
    references = []
    for m, model in enumerate(models):
        params = [p[m].clone().requires_grad_() for p in initial]
        references.append((params, solver.reference(params, model)))
    for step in range(6):
        grads = [torch.stack([gradient(step, m, s) for m in range(3)]) for s in SHAPES]
        solver.update(state, stacked, grads)
        for m, (params, optimizer) in enumerate(references):
            for p, g in zip(params, grads, strict=True):
                p.grad = g[m].clone()
            optimizer.step()
    for m, (params, _) in enumerate(references):
        for ours, theirs in zip(stacked, params, strict=True):
            torch.testing.assert_close(ours[m], theirs.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name", STACKABLE)
def test_saved_state_round_trips(name):
    solver = SOLVERS[name]
    params = [torch.zeros(1, *s, dtype=torch.float64) for s in SHAPES]
    state = solver.new_state(params, [MODELS[2]])
    for step in range(3):
        solver.update(state, params, [gradient(step, 0, s)[None] for s in SHAPES])
    entries = solver.export_state(state)
    names = solver.entry_names(params, MODELS[2])
    assert all(set(entry) == names for entry in entries)
    restored = solver.import_state(entries, params, MODELS[2], 0.01)
    for name_, tensors in state.tensors.items():
        for a, b in zip(tensors, restored.tensors[name_], strict=True):
            assert torch.equal(a, b)
    again = solver.export_state(restored)
    for entry, entry_again in zip(entries, again, strict=True):
        assert entry.keys() == entry_again.keys()
        for key in entry:
            assert np.array_equal(entry[key], entry_again[key]), key
