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

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_blobs, make_moons

import skorchlite.model_selection
from skorchlite import BatchedGridSearchCV, TorchMLPClassifier
from skorchlite._batched import History, _pad_permutation
from skorchlite._training import Trainer, TrainingData

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


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])  # closed form, autograd
def test_a_single_fit_epoch_stays_on_the_device(solver, weighted, sparse, activation):
    X, y = make_moons(100, noise=0.2, random_state=0)
    weights = np.random.default_rng(0).random(100) if weighted else None
    clf = _fitted(X, y, weights, solver=solver, activation=activation, alpha=1e-3)
    data = clf._to_training_data(X, y, weights)
    clf.module_.to(META)
    data = TrainingData(
        X=sp.csr_matrix(X) if sparse else data.X.to(META),
        y=data.y.to(META),
        sample_weight=None if weights is None else data.sample_weight.to(META),
        device=META,
        dtype=data.dtype,
    )
    # torch's fused kernels have no meta version: the plain update.
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[solver](
        clf.module_.parameters(), lr=0.1, foreach=False
    )
    trainer = Trainer(
        clf.module_,
        optimizer,
        clf._objective(),
        max_grad_norm=1.0,
        schedule=None,
        tol=1e-4,
        n_iter_no_change=10,
    )
    with torch.enable_grad():
        loss = trainer._epoch(data, 32, torch.randperm(100))
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
    # Set up on the CPU as the group's run does (that reads values), then
    # move every tensor to the stand-in device.
    group.histories = [History() for _ in group.jobs]
    group._stack_data()
    group._stack_parameters()
    group._stack_validation()
    group._hyperparameters()
    for holder in (group, group.update):
        for name, value in list(vars(holder).items()):
            if isinstance(value, torch.Tensor):
                setattr(holder, name, value.to(META))
    group.device = META
    group._view_layers()
    permutations = torch.stack(
        [_pad_permutation(torch.randperm(n), group.n_rows) for n in group.n_samples]
    ).to(META)
    with torch.no_grad():
        losses, step = group._epoch(0, permutations)
        assert losses.device == META
        if group.validating:
            assert all(t.device == META for t in group._validation_scores())
        group._keep([0])  # models that stopped leave the stack
        losses, _ = group._epoch(step, permutations[:1])
    assert losses.device == META and losses.shape == (1,)
