"""A FuncStack of M modules must compute what each module computes alone.

Each module alone trains through ModuleStack (autograd): the stack's losses and
gradients, and a few epochs of the loop, must equal those, model by model.
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skorchlite._engine.data import OneModelData, StackedData, TrainingData
from skorchlite._engine.func_stack import FuncStack, func_stack_error
from skorchlite._engine.loop import History, StackTraining
from skorchlite._engine.network import Dropout, dropout_generator
from skorchlite._engine.solvers import SOLVERS
from skorchlite._engine.spec import FitSpec, SolverSettings
from skorchlite._engine.stack import ModuleStack
from skorchlite._targets import BinaryTarget, ContinuousTarget, MulticlassTarget

TARGETS = {
    "binary": BinaryTarget(np.array([0, 1])),
    "multiclass": MulticlassTarget(np.arange(3)),
    "regression": ContinuousTarget(2, "squared_error"),
}

M, N_ROWS, N_FEATURES = 3, 13, 64


class Skip(nn.Module):
    """An MLP with a skip connection (not an nn.Sequential)."""

    def __init__(self, n_features_in, n_outputs, hidden=8):
        super().__init__()
        self.l1 = nn.Linear(n_features_in, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        return self.out(h + self.l2(h))


class SmallCNN(nn.Module):
    """A convolution on the 64 features as an 8 x 8 image."""

    def __init__(self, n_features_in, n_outputs, channels=2):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3)
        self.out = nn.Linear(channels * 6 * 6, n_outputs)

    def forward(self, x):
        h = torch.relu(self.conv(x.reshape(-1, 1, 8, 8)))
        return self.out(h.flatten(1))


def sequential(n_features_in, n_outputs):
    return nn.Sequential(
        nn.Linear(n_features_in, 6), nn.Tanh(), nn.Linear(6, n_outputs)
    )


MODULES = {"skip": Skip, "cnn": SmallCNN, "sequential": sequential}


def make_module(kind, n_outputs, seed, n_features=N_FEATURES):
    """A float64 module with values drawn from its own generator."""
    module = MODULES[kind](n_features, n_outputs).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5, generator=generator)
    return module


def make_y(target, n_models, n_rows, generator):
    if target == "multiclass":
        return torch.randint(0, 3, (n_models, n_rows), generator=generator)
    n_outputs = TARGETS[target].n_outputs
    if target == "binary":
        shape = (n_models, n_rows, n_outputs)
        return torch.randint(0, 2, shape, generator=generator).double()
    shape = (n_models, n_rows, n_outputs)
    return torch.randn(shape, dtype=torch.float64, generator=generator)


def make_case(kind, target, weighted, seed=0):
    """M modules and each one's batch: ``(modules, X, y, w, n_real)``."""
    generator = torch.Generator().manual_seed(seed)
    n_outputs = TARGETS[target].n_outputs
    modules = [make_module(kind, n_outputs, seed + m) for m in range(M)]
    shape = (M, N_ROWS, N_FEATURES)
    X = torch.randn(shape, dtype=torch.float64, generator=generator)
    y = make_y(target, M, N_ROWS, generator)
    w, n_real = None, N_ROWS
    if weighted:
        w = 3 * torch.rand(M, N_ROWS, dtype=torch.float64, generator=generator)
        w[1] = 0.0  # a batch whose weights are all zero
        n_real = torch.full((M,), float(N_ROWS), dtype=torch.float64)
    return modules, X, y, w, n_real


def weights_of(module):
    return [p for p in module.parameters() if p.dim() >= 2]


def alone(module, target, X, y, w, n_real):
    """Model ``m``'s gradients through ModuleStack (autograd)."""
    stack = ModuleStack(module, weights_of(module))
    return stack.gradients(
        target, X[None], y[None], None if w is None else w[None], n_real
    )


def assert_each_model_alone(stack, modules, target, X, y, w, n_real):
    with torch.no_grad():  # as the loop calls it
        loss, grads, weight_sum = stack.gradients(target, X, y, w, n_real)
    assert [g.shape for g in grads] == [p.shape for p in stack.params]
    # torch's fused Adam reads a gradient in its parameter's memory layout.
    assert all(g.is_contiguous() for g in grads)
    for m, module in enumerate(modules):
        n = n_real if isinstance(n_real, int) else n_real[m]
        ref_loss, ref_grads, ref_sum = alone(
            module, target, X[m], y[m], None if w is None else w[m], n
        )
        torch.testing.assert_close(loss[m], ref_loss[0], rtol=1e-12, atol=1e-14)
        for g, ref in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g[m], ref[0], rtol=1e-10, atol=1e-12)
        if w is None:
            assert weight_sum == ref_sum == N_ROWS
        else:
            torch.testing.assert_close(weight_sum[m], ref_sum[0])
    return grads


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", list(MODULES))
def test_gradients_are_each_module_alone(kind, target, weighted):
    modules, X, y, w, n_real = make_case(kind, target, weighted)
    stack = FuncStack.of_modules(modules)
    grads = assert_each_model_alone(stack, modules, TARGETS[target], X, y, w, n_real)
    if weighted:  # the model of zero weights: zero loss and gradients
        assert all(not g[1].any() for g in grads)


def test_weights_are_the_penalized_parameters():
    modules = [make_module("cnn", 1, seed) for seed in range(M)]
    stack = FuncStack.of_modules(modules)
    assert stack.param_names == ["conv.weight", "conv.bias", "out.weight", "out.bias"]
    assert [w.shape for w in stack.weights] == [(M, 2, 1, 3, 3), (M, 1, 72)]
    assert all(any(w is p for p in stack.params) for w in stack.weights)
    stack = FuncStack.of_modules(modules, ["out.weight", "conv.bias"])
    assert [w.shape for w in stack.weights] == [(M, 2), (M, 1, 72)]
    with pytest.raises(ValueError, match="no parameters named"):
        FuncStack.of_modules(modules, ["conv"])


def test_the_modules_stay_as_they_are():
    modules = [make_module("skip", 1, seed) for seed in range(M)]
    before = [copy.deepcopy(m.state_dict()) for m in modules]
    stack = FuncStack.of_modules(modules)
    for p in stack.params:
        p.add_(1.0)
    for module, state in zip(modules, before, strict=True):
        for name, value in module.state_dict().items():
            torch.testing.assert_close(value, state[name], rtol=0, atol=0)


def test_the_next_gradients_read_in_place_updates():
    modules, X, y, w, n_real = make_case("skip", "regression", False)
    target = TARGETS["regression"]
    stack = FuncStack.of_modules(modules)
    first = stack.gradients(target, X, y, w, n_real)[1]
    with torch.no_grad():
        for p, g in zip(stack.params, first, strict=True):
            p.sub_(0.1 * g)  # as the solver writes: into the tensors
        for m, module in enumerate(modules):
            for q, p in zip(module.parameters(), stack.params, strict=True):
                q.copy_(p[m])
    second = assert_each_model_alone(stack, modules, target, X, y, w, n_real)
    assert not torch.equal(first[0], second[0])


def test_keep_keeps_the_models_of_rows():
    modules, X, y, w, n_real = make_case("cnn", "multiclass", True)
    w[1] = 1.0
    stack = FuncStack.of_modules(modules)
    stack.keep([2, 0])
    kept = [modules[2], modules[0]]
    for p, name in zip(stack.params, stack.param_names, strict=True):
        expected = torch.stack([m.get_parameter(name).detach() for m in kept])
        torch.testing.assert_close(p, expected, rtol=0, atol=0)
    rows = [2, 0]
    assert_each_model_alone(
        stack, kept, TARGETS["multiclass"], X[rows], y[rows], w[rows], n_real[rows]
    )


def test_outputs_are_each_module_in_eval_mode():
    modules = [make_module("skip", 3, seed) for seed in range(M)]
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(M, 5, N_FEATURES, dtype=torch.float64, generator=generator)
    stack = FuncStack.of_modules(modules)
    stack.train()
    outputs = stack.outputs(X)
    assert outputs.shape == (M, 5, 3)
    assert stack.module.training
    for m, module in enumerate(modules):
        torch.testing.assert_close(outputs[m], module.eval()(X[m]))


def test_of_modules_refuses_different_architectures():
    with pytest.raises(ValueError, match="module 1 differs from module 0"):
        FuncStack.of_modules([make_module("skip", 1, 0), make_module("skip", 2, 0)])


def _example_X(n_features=N_FEATURES):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, n_features, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize("kind", list(MODULES))
def test_these_modules_stack(kind):
    module = make_module(kind, 2, 0)
    assert func_stack_error(module, _example_X()) is None
    assert module.training  # left as it was


class _Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.linear(x)
        return -self.linear(x)


class _FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        return self.linear(nn.functional.dropout(x, 0.5, self.training))


def _mlp(*layers):
    return nn.Sequential(nn.Linear(4, 3), *layers, nn.Linear(3, 1))


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (_mlp(nn.BatchNorm1d(3)), "updates buffers in training"),
        (_mlp(nn.BatchNorm1d(3, track_running_stats=False)), "mixes the rows"),
        (_Branches(), "cannot be vmapped: vmap: It looks like you're attempting"),
        (_mlp(nn.Dropout(0.2)), "draws random numbers in training (dropout)"),
        (_mlp(Dropout(0.2)), "draws random numbers in training (dropout)"),
        (_FunctionalDropout(), "draws random numbers in training (dropout)"),
        (nn.Sequential(nn.ReLU()), "has no parameters"),
    ],
    ids=[
        "batchnorm",
        "batch-statistics",
        "data-dependent-branch",
        "dropout",
        "our-dropout",
        "functional-dropout",
        "no-parameters",
    ],
)
def test_func_stack_error_says_why(module, reason):
    module = module.double()
    assert reason in func_stack_error(module, _example_X(4))


def test_our_dropout_with_its_generator_cannot_stack_either():
    module = _mlp(Dropout(0.2)).double()
    with dropout_generator(module, seed=0, device=torch.device("cpu")):
        reason = func_stack_error(module, _example_X(4))
    assert reason == "draws random numbers in training (dropout)"


def _spec(data, alpha, seed):
    settings = SolverSettings(
        learning_rate_init=0.01,
        learning_rate="constant",
        power_t=0.5,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        alpha=alpha,
        max_iter=4,
        max_fun=15000,
        tol=1e-4,
    )
    return FitSpec(
        data=data,
        validation=None,
        target=TARGETS["binary"],
        solver=SOLVERS["adam"],
        settings=settings,
        seed=seed,
        batch_size=16,
        max_epochs=4,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=100,
        max_grad_norm=None,
        dropout=0.0,
        validation_batch_size=64,
    )


def test_the_loop_trains_each_model_as_its_own_fit():
    # Training sets of 40 and 38 rows (3 batches of 16 each: the smaller one
    # padded), L2 terms, sample weights, shuffling: the loop of the batched
    # search on a FuncStack against each model's single fit.
    generator = torch.Generator().manual_seed(0)
    modules = [make_module("skip", 1, seed, n_features=5) for seed in range(M)]
    specs = []
    for m, n_rows in enumerate([40, 38, 40]):
        X = torch.randn(n_rows, 5, dtype=torch.float64, generator=generator)
        y = (X[:, :1] > 0).double()
        w = None
        if m == 2:
            w = torch.rand(n_rows, dtype=torch.float64, generator=generator)
        data = TrainingData(X, y, w, torch.device("cpu"), torch.float64)
        specs.append(_spec(data, alpha=[0.0, 0.1, 1.0][m], seed=m))
    stack = FuncStack.of_modules(modules)
    solver = SOLVERS["adam"]
    state = solver.new_state(stack.params, [spec.settings for spec in specs])
    histories = [History() for _ in specs]
    data = StackedData([spec.data for spec in specs], list(range(M)), 16)
    outcomes = StackTraining(solver, stack, data, None, specs, histories, state).run()

    for module, spec, outcome, history in zip(
        modules, specs, outcomes, histories, strict=True
    ):
        single = ModuleStack(module, weights_of(module))
        single_state = solver.new_state(single.params, [spec.settings])
        single_history = History()
        solver.train(spec, single, single_history, single_state)
        np.testing.assert_allclose(
            history.loss_curve, single_history.loss_curve, rtol=1e-10
        )
        for final, p in zip(outcome.final, module.parameters(), strict=True):
            torch.testing.assert_close(final, p.detach(), rtol=1e-9, atol=1e-12)


def test_one_model_data_is_a_stack_of_one():
    # A FuncStack of one trains a single fit's OneModelData as well.
    module = make_module("sequential", 1, 0, n_features=5)
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(20, 5, dtype=torch.float64, generator=generator)
    data = TrainingData(X, (X[:, :1] > 0).double(), None, X.device, X.dtype)
    spec = _spec(data, alpha=0.1, seed=0)
    stack = FuncStack.of_modules([module])
    state = SOLVERS["adam"].new_state(stack.params, [spec.settings])
    training = StackTraining(
        SOLVERS["adam"], stack, OneModelData(data, 16), None, [spec], [History()], state
    )
    outcome = training.run()[0]
    assert outcome.n_iter == 4
