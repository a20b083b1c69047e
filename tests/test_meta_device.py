"""Training steps keep to the device of their data: checked on the CPU, with
torch's "meta" device standing in for a GPU.

No GPU has run these paths yet (benchmarks/gpu_check.py does, where there is
one). What a CPU can check: an epoch whose tensors all live on another device
never combines them with a CPU tensor of more than one element, which torch
refuses on a GPU as it does on "meta" (``Tensor on device cpu is not on the
expected device meta!``). Meta tensors hold no values, so only the epochs run
there, not the reads of losses between them.
"""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_blobs, make_moons

import skorchlite.model_selection
from skorchlite import BatchedGridSearchCV, TorchMLPClassifier
from skorchlite._engine.data import OneModelData, StackedData
from skorchlite._engine.loop import History, StackTraining
from skorchlite._engine.stack import MLPStack

META = torch.device("meta")


def _fitted(X, y, weights=None, **params):
    clf = TorchMLPClassifier((8,), max_iter=1, random_state=0, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X, y, sample_weight=weights)


def test_meta_device_refuses_cpu_tensors():
    # What the tests below rely on.
    with pytest.raises(RuntimeError, match="not on the expected device meta"):
        torch.ones(3, device=META) + torch.ones(3)


def _on_meta(data):
    if data is None:
        return None
    X = data.X if data.is_sparse else data.X.to(META)
    w = data.sample_weight
    return replace(
        data, X=X, y=data.y.to(META), sample_weight=None if w is None else w.to(META)
    ), data


def _meta_epoch(stack, data, specs):
    """One epoch of ``specs`` on ``stack`` and ``data`` (all on META)."""
    solver = specs[0].solver
    state = solver.new_state(stack.params, [spec.settings for spec in specs])
    histories = [History() for _ in specs]
    training = StackTraining(solver, stack, data, None, specs, histories, state)
    with torch.no_grad():
        return training, training._epoch()


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_single_fit_epoch_stays_on_the_device(solver, weighted, sparse, dropout):
    X, y = make_moons(100, noise=0.2, random_state=0)
    weights = np.random.default_rng(0).random(100) if weighted else None
    clf = _fitted(X, y, weights, solver=solver, alpha=1e-3, max_grad_norm=1.0)
    spec = clf._fit_spec(sp.csr_matrix(X) if sparse else X, y, weights, False, 0)
    clf.module_.to(META)
    data = _on_meta(spec.data)[0]
    data = replace(data, device=META)
    spec = replace(spec, data=data, dropout=0.0)
    stack = clf._stack(spec)
    assert isinstance(stack, MLPStack)
    _, loss = _meta_epoch(stack, OneModelData(data, 32), [spec])
    assert loss.device == META
    assert all(p.device == META for p in clf.module_.parameters())


CASES = {
    "binary adam": (make_moons(200, noise=0.2, random_state=0), {}),
    "multiclass sgd": (
        make_blobs(200, n_features=4, centers=3, random_state=0),
        {"solver": "sgd"},
    ),
    "adamw early stopping": (
        make_blobs(200, n_features=4, centers=3, random_state=0),
        {"solver": "adamw", "early_stopping": True},
    ),
    "logistic, clipped, weighted": (
        make_moons(200, noise=0.2, random_state=0),
        {"activation": "logistic", "max_grad_norm": 1.0},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stacked_epoch_stays_on_the_device(case, monkeypatch):
    (X, y), params = CASES[case]
    groups = []
    real = skorchlite.model_selection.train_groups
    monkeypatch.setattr(
        skorchlite.model_selection,
        "train_groups",
        lambda runs: (groups.extend(runs), real(runs)),
    )
    fit_params = {}
    if "weighted" in case:
        fit_params["sample_weight"] = np.random.default_rng(0).random(len(X))
    grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-3, 1e-2]}
    estimator = TorchMLPClassifier(max_iter=2, random_state=0, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BatchedGridSearchCV(estimator, grid, cv=2).fit(X, y, **fit_params)
    group = groups[0]
    # Stacked on the CPU as the group's run does (that reads values), then
    # every tensor moved to the stand-in device.
    stack = group._stack()
    stack.params = [p.to(META) for p in stack.params]
    if stack.grad_mask is not None:
        stack.grad_mask = [m.to(META) for m in stack.grad_mask]
    specs = [
        replace(job.spec, data=_on_meta(job.spec.data)[0], validation=None)
        for job in group.jobs
    ]
    data = StackedData(
        [spec.data for spec in specs],
        [job.data_key for job in group.jobs],
        group.batch_size,
    )
    training, losses = _meta_epoch(stack, data, specs)
    assert losses.device == META
    with torch.no_grad():
        training.alive = training.alive[:1]
        for part in (stack, data, training.state):
            part.keep([0])  # models that stopped leave the stack
        losses = training._epoch()
    assert losses.device == META and losses.shape == (1,)
