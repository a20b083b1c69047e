"""TorchClassifier and TorchRegressor on modules of the user's own, tested from
the outside: what a demanding scikit-learn and PyTorch user (or an attacker
handing over a file) would try.

The three modules are defined at the top level, so that pickle, joblib,
skops and mlflow can find them by reference: a non-Sequential network with a
skip connection, one drawing random numbers in training (``nn.Dropout``,
``F.dropout`` and ``torch.randn_like`` noise) and a small CNN that reshapes
the 64 features of ``load_digits`` into 8x8 images.
"""

import concurrent.futures
import contextlib
import copy
import io
import json
import pickle
import random
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import compute_sample_weight
from sklearn.utils.estimator_checks import estimator_checks_generator
from torch import nn
from torch.nn import functional as F

import skorchlite
import skorchlite._device
from skorchlite import BatchedGridSearchCV, TorchClassifier, TorchRegressor

# --------------------------------------------------------------- the modules


class SkipNet(nn.Module):
    """Not a Sequential: a hidden layer with a skip connection around a block,
    initialized by torch.nn.init functions besides the layers' own."""

    def __init__(self, n_features_in, n_outputs, width=8):
        super().__init__()
        self.inner = nn.Linear(n_features_in, width)
        self.block = nn.Linear(width, width)
        self.out = nn.Linear(width, n_outputs)
        nn.init.orthogonal_(self.block.weight)
        nn.init.normal_(self.out.bias, std=0.1)

    def forward(self, X):
        h = torch.relu(self.inner(X))
        return self.out(h + torch.tanh(self.block(h)))


class DropoutNet(nn.Module):
    """Random in training four ways: F.dropout on the inputs, nn.Dropout on
    the hidden layer, and noise from torch.randn_like and torch.rand."""

    def __init__(
        self, n_features_in, n_outputs, width=16, p=0.3, p_input=0.1, noise=0.1
    ):
        super().__init__()
        self.hidden = nn.Linear(n_features_in, width)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(width, n_outputs)
        self.p_input = p_input
        self.noise = noise

    def forward(self, X):
        h = torch.relu(self.hidden(F.dropout(X, self.p_input, self.training)))
        if self.training and self.noise:
            uniform = torch.rand(h.shape, dtype=h.dtype) - 0.5
            h = h + self.noise * (torch.randn_like(h) + uniform)
        return self.out(self.drop(h))


class DigitsCNN(nn.Module):
    """A convolution over the 8x8 images of load_digits, given as 64 features.

    It does not take ``n_features_in``: the signature decides what it gets."""

    def __init__(self, n_outputs, channels=2):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3)
        self.out = nn.Linear(channels * 36, n_outputs)

    def forward(self, X):
        images = X.reshape(-1, 1, 8, 8)
        return self.out(torch.relu(self.conv(images)).flatten(1))


class BufferNet(nn.Module):
    """Buffers besides parameters: BatchNorm's running statistics (and its
    int64 batch count), and a non-persistent buffer outside the state_dict."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_features_in)
        self.out = nn.Linear(n_features_in, n_outputs)
        self.register_buffer("scale", torch.full((1,), 0.5), persistent=False)

    def forward(self, X):
        return self.out(self.norm(X) * self.scale * 2)


#: Random operations a module may use in training, on a hidden layer (n, 16).
RANDOM_OPS = {
    "rand_like": lambda h: h + 0.1 * torch.rand_like(h),
    "normal": lambda h: torch.normal(h, 0.1),
    "bernoulli": lambda h: h * torch.bernoulli(torch.full_like(h, 0.8)),
    "randperm": lambda h: h[:, torch.randperm(h.shape[1])],
    "distributions": lambda h: torch.distributions.Normal(h, 0.1).rsample(),
    "randint_like": lambda h: h * torch.randint_like(h, 2),
    "gumbel_softmax": lambda h: F.gumbel_softmax(h, tau=1.0),
    "alpha_dropout": lambda h: F.alpha_dropout(h, 0.2, True),
    "AlphaDropout": nn.AlphaDropout(0.2),
    "feature_alpha_dropout": lambda h: F.feature_alpha_dropout(h[..., None], 0.2, True)[
        ..., 0
    ],
    "fractional_max_pool2d": lambda h: (
        F.fractional_max_pool2d(h.reshape(-1, 1, 4, 4), 2, output_size=2)
        .flatten(1)
        .repeat(1, 4)
    ),
}


class RandomOpNet(nn.Module):
    """A hidden layer of 16 to which ``RANDOM_OPS[op]`` applies in training."""

    def __init__(self, n_features_in, n_outputs, op="rand_like"):
        super().__init__()
        self.hidden = nn.Linear(n_features_in, 16)
        self.out = nn.Linear(16, n_outputs)
        self.op = op

    def forward(self, X):
        h = torch.relu(self.hidden(X))
        return self.out(RANDOM_OPS[self.op](h) if self.training else h)


class PenaltyProbe(nn.Module):
    """Parameters alpha must treat apart: a vector and a matrix that get no
    gradient (so only the penalty or weight decay moves them) and a frozen
    layer (requires_grad=False), listed in an order where even positions are
    not the weights."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.vector = nn.Parameter(torch.ones(4))
        self.matrix = nn.Parameter(torch.ones(3, 3))
        self.frozen = nn.Linear(n_features_in, 8)
        # Values exact in float32 and float64 alike.
        nn.init.constant_(self.frozen.weight, 0.125)
        nn.init.constant_(self.frozen.bias, 0.5)
        self.frozen.requires_grad_(False)
        self.out = nn.Linear(8, n_outputs)

    def forward(self, X):
        return self.out(torch.relu(self.frozen(X)))


class WithEncoder(nn.Module):
    """Fine-tunes an encoder given as an argument (a pretrained one, say)."""

    def __init__(self, encoder, n_outputs):
        super().__init__()
        self.encoder = encoder
        self.out = nn.Linear(encoder.out_features, n_outputs)

    def forward(self, X):
        return self.out(torch.relu(self.encoder(X)))


def sequential_factory(n_features_in, n_outputs, width=8):
    """A function, not a class, returning the module."""
    return nn.Sequential(
        nn.Linear(n_features_in, width), nn.Tanh(), nn.Linear(width, n_outputs)
    )


#: What recording_factory built, in order: copies of the initial state_dict.
INITIAL_STATES = []


def recording_factory(n_features_in, n_outputs, width=8):
    """SkipNet, remembering its initial weights (as the fit built them)."""
    module = SkipNet(n_features_in, n_outputs, width)
    if not next(module.parameters()).is_meta:
        INITIAL_STATES.append(
            {k: v.detach().clone() for k, v in module.state_dict().items()}
        )
    return module


# ------------------------------------------------------------- bad modules


def raising_factory(n_features_in, n_outputs):
    raise RuntimeError("the factory is broken")


def not_a_module_factory(n_features_in, n_outputs):
    return lambda X: X


class ThreeOutputs(nn.Module):
    """Ignores n_outputs: always three logits."""

    def __init__(self, n_features_in):
        super().__init__()
        self.out = nn.Linear(n_features_in, 3)

    def forward(self, X):
        return self.out(X)


class Squeezed(nn.Module):
    """The classic mistake for a binary target: logits of shape (n,)."""

    def __init__(self, n_features_in):
        super().__init__()
        self.out = nn.Linear(n_features_in, 1)

    def forward(self, X):
        return self.out(X).squeeze(-1)


class TupleOutputs(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.out = nn.Linear(n_features_in, n_outputs)

    def forward(self, X):
        return self.out(X), X


class FiveFeatures(nn.Module):
    """Hard-codes 5 input features: its forward raises on any other width."""

    def __init__(self, n_outputs):
        super().__init__()
        self.out = nn.Linear(5, n_outputs)

    def forward(self, X):
        return self.out(X)


class FlakyNet(nn.Module):
    """Raises in its forward in the middle of training."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.out = nn.Linear(n_features_in, n_outputs)
        self.calls = 0

    def forward(self, X):
        if self.training:
            self.calls += 1
            if self.calls > 3:
                raise RuntimeError("flaky forward")
        return self.out(X)


MODULES = [SkipNet, DropoutNet, DigitsCNN]
#: DropoutNet's randomness switched off.
QUIET = {"module__p": 0.0, "module__p_input": 0.0, "module__noise": 0}
#: A module__* parameter of each module, and two values of it.
SIZE_PARAMS = {
    SkipNet: ("module__width", 4, 12),
    DropoutNet: ("module__width", 4, 12),
    DigitsCNN: ("module__channels", 1, 3),
}


def _size_of(module, name):
    """The size ``name`` (a module__* parameter) gave the fitted ``module``."""
    if name == "module__channels":
        return module.conv.out_channels
    first = module.inner if isinstance(module, SkipNet) else module.hidden
    return first.out_features


def _path(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


# ------------------------------------------------------------------ data


def _digits(n=150):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def _targets(kind, n=150):
    """(X, y) of the digits for a kind of target."""
    X, y = _digits(n)
    if kind == "binary":
        return X, np.array(["even", "odd"])[y % 2]
    if kind == "multiclass":
        return X, y
    if kind == "multilabel":
        return X, np.column_stack([y % 2, y >= 5, np.isin(y, [0, 6, 8, 9])]).astype(int)
    if kind == "regression":
        return X, X[:, :32].mean(axis=1)
    if kind == "regression2":
        return X, np.column_stack([X[:, :32].mean(axis=1), X[:, 32:].std(axis=1)])
    raise AssertionError(kind)


def _fit(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


def _partial_fit(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.partial_fit(X, y, **fit_params)


def _classifier(module=SkipNet, **params):
    return TorchClassifier(
        module,
        **{"max_iter": 5, "learning_rate_init": 0.01, "random_state": 0, **params},
    )


def _regressor(module=SkipNet, **params):
    return TorchRegressor(
        module,
        **{"max_iter": 5, "learning_rate_init": 0.01, "random_state": 0, **params},
    )


def _weights(estimator):
    return [p.detach().clone() for p in estimator.module_.parameters()]


def _assert_same_weights(a, b):
    a = a if isinstance(a, list) else _weights(a)
    b = b if isinstance(b, list) else _weights(b)
    assert len(a) == len(b)
    differ = [
        i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not torch.equal(x, y)
    ]
    assert not differ, f"parameters {differ} differ"


def _assert_different_weights(a, b):
    pairs = zip(_weights(a), _weights(b), strict=True)
    assert any(not torch.equal(x, y) for x, y in pairs)


def _global_random_states():
    return (
        torch.random.get_rng_state(),
        np.random.get_state()[1].copy(),  # noqa: NPY002 (the legacy global one)
        random.getstate(),
    )


def _assert_same_global_states(before, after):
    untouched = torch.equal(before[0], after[0])
    assert untouched, "torch's global generator changed"
    assert_array_equal(before[1], after[1])
    assert before[2] == after[2]


def _assert_no_mode_left_active():
    # With a TorchFunctionMode of ours still active, torch.rand would draw
    # from its generator, not from the global one just seeded.
    torch.manual_seed(1234)
    a = torch.rand(4)
    torch.manual_seed(1234)
    b = torch.rand(4)
    assert torch.equal(a, b)


# ------------------------------------------------- scikit-learn's own checks


CHECKED = [
    TorchClassifier(
        SkipNet, module__width=16, max_iter=30, learning_rate_init=0.03, random_state=0
    ),
    TorchRegressor(
        SkipNet, module__width=16, max_iter=30, learning_rate_init=0.03, random_state=0
    ),
]
# Skipped by sklearn itself unless SCIPY_ARRAY_API=1 is set before scipy is
# imported: it would only report a skip.
NOT_RUN = {"check_array_api_input"}


def _check_name(check):
    return getattr(check, "func", check).__name__


@pytest.mark.parametrize(
    "estimator, check",
    [
        pytest.param(estimator, check, id=f"{type(estimator).__name__}-{name}")
        for configured in CHECKED
        for estimator, check in estimator_checks_generator(configured)
        if (name := _check_name(check)) not in NOT_RUN
    ],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------- parameters


def test_module_params_are_parameters_of_get_params_set_params_and_clone():
    clf = TorchClassifier(SkipNet, module__width=5, max_iter=3)
    params = clf.get_params()
    assert params["module"] is SkipNet
    assert params["module__width"] == 5
    assert clf.get_params(deep=False)["module__width"] == 5

    assert clf.set_params(module__width=7, max_iter=4) is clf
    assert (clf.module__width, clf.max_iter) == (7, 4)

    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    twin.set_params(module__width=2)
    assert clf.module__width == 7  # a clone is independent

    # A new module__ parameter, and a new module in the same call.
    clf.set_params(module=DropoutNet, module__p=0.0)
    assert clf.get_params()["module__p"] == 0.0
    assert clone(clf).get_params()["module__p"] == 0.0


def test_set_params_refuses_names_that_are_no_parameter():
    with pytest.raises(ValueError, match="Invalid parameter 'widht'"):
        TorchClassifier(SkipNet).set_params(widht=3)


@pytest.mark.parametrize("module", MODULES)
def test_module_params_reach_the_module(module):
    name, small, _ = SIZE_PARAMS[module]
    X, y = _digits()
    clf = _fit(_classifier(module, **{name: small}), X, y)
    assert _size_of(clf.module_, name) == small
    # set_params then refit rebuilds the module with the new value.
    _fit(clf.set_params(**{name: small + 1}), X, y)
    assert _size_of(clf.module_, name) == small + 1


@pytest.mark.parametrize("module", MODULES)
def test_grid_search_over_module_params(module):
    name, small, large = SIZE_PARAMS[module]
    X, y = _digits(120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(
            _classifier(module, max_iter=3), {name: [small, large]}, cv=2
        ).fit(X, y)
    assert list(search.cv_results_[f"param_{name}"]) == [small, large]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_params_[name]
    assert search.best_estimator_.get_params()[name] == best
    assert _size_of(search.best_estimator_.module_, name) == best


def test_grid_search_over_the_module_itself_in_a_pipeline():
    X, y = _digits(120)
    pipe = make_pipeline(
        StandardScaler(), _classifier(SkipNet, max_iter=3, module__width=8)
    )
    assert pipe.get_params()["torchclassifier__module__width"] == 8
    pipe.set_params(torchclassifier__module__width=6)
    assert pipe[-1].module__width == 6
    grid = [
        {"torchclassifier__module": [SkipNet], "torchclassifier__module__width": [3]},
        {
            "torchclassifier__module": [DigitsCNN],
            "torchclassifier__module__width": [None],
        },
    ]
    # DigitsCNN takes no width: the second candidate must fail to fit, with
    # the error sklearn reports for it (error_score="raise").
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid[:1], cv=2).fit(X, y)
        assert search.best_estimator_[-1].module_.inner.out_features == 3
        with pytest.raises(ValueError, match="module__width is not an argument"):
            GridSearchCV(pipe, grid[1:], cv=2, error_score="raise").fit(X, y)


def test_repr_shows_the_module_and_its_parameters():
    clf = TorchClassifier(SkipNet, module__width=5, max_iter=3)
    text = repr(clf)
    assert "SkipNet" in text
    assert "module__width=5" in text
    assert "max_iter=3" in text
    html = clf._repr_html_()
    assert "module__width" in html
    assert "module__width=3" in repr(TorchRegressor(DigitsCNN, module__width=3))


def test_get_params_lists_pipeline_nested_module_params():
    pipe = make_pipeline(StandardScaler(), TorchRegressor(SkipNet, module__width=4))
    assert pipe.get_params()["torchregressor__module__width"] == 4


# ------------------------------------------------------- fitting behaviour


def test_partial_fit_with_classes_not_all_in_the_first_batch():
    X, y = _digits(200)
    clf = _classifier(SkipNet)
    first = y < 5
    with pytest.raises(ValueError, match="classes"):
        clone(clf).partial_fit(X[first], y[first])
    clf.partial_fit(X[first], y[first], classes=np.arange(10))
    assert_array_equal(clf.classes_, np.arange(10))
    assert clf.predict_proba(X).shape == (len(X), 10)
    t = clf.t_
    clf.partial_fit(X[~first], y[~first])
    assert clf.t_ == t + (~first).sum()
    assert len(clf.loss_curve_) == 2
    with pytest.raises(ValueError):
        clf.partial_fit(X, y + 20)  # classes it was not told about


@pytest.mark.parametrize(
    "module, module_params",
    [(SkipNet, {}), (DigitsCNN, {}), (DropoutNet, QUIET)],
    ids=["SkipNet", "DigitsCNN", "DropoutNet-quiet"],
)
def test_partial_fit_epochs_equal_fit_epochs(module, module_params):
    # Each partial_fit call is one epoch continuing the solver's state: on a
    # module drawing nothing in training, k calls train as a fit of
    # max_iter=k does.
    X, y = _digits()
    params = dict(n_iter_no_change=100, batch_size=50, shuffle=False, **module_params)
    fitted = _fit(_classifier(module, max_iter=3, **params), X, y)
    stepped = _classifier(module, **params)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=np.arange(10))
    assert stepped.t_ == fitted.t_ == 3 * len(X)
    assert_allclose(stepped.loss_curve_, fitted.loss_curve_, rtol=1e-10)
    for a, b in zip(_weights(stepped), _weights(fitted), strict=True):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def test_warm_start_continues_from_the_fitted_weights():
    # Plain full-batch gradient descent has no state besides the weights:
    # 3 epochs, then 2 more with warm_start, are 5 epochs.
    X, y = _digits()
    params = dict(
        solver="sgd",
        momentum=0.0,
        batch_size=len(X),
        learning_rate_init=0.1,
        dtype="float64",
        n_iter_no_change=100,
    )
    warm = _fit(_classifier(SkipNet, max_iter=3, **params), X, y)
    _fit(warm.set_params(warm_start=True, max_iter=2), X, y)
    straight = _fit(_classifier(SkipNet, max_iter=5, **params), X, y)
    for a, b in zip(_weights(warm), _weights(straight), strict=True):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    # Without warm_start a refit starts again from the same initial weights.
    cold = _fit(_classifier(SkipNet, max_iter=2, **params), X, y)
    refit = _fit(clone(cold), X, y)
    _fit(refit, X, y)
    _assert_same_weights(refit, cold)


def _best_epoch(scores):
    """The epoch (from 1) early stopping restores: of equally good, the latest."""
    return len(scores) - int(np.argmax(scores[::-1]))


def _assert_restores_the_best_epoch(make, X, y):
    """Fits ``make(**params)`` until one goes past its best epoch, then checks
    that its weights are the same fit's stopped at that epoch."""
    tried = []
    for learning_rate in (0.05, 0.1, 0.2, 0.02):
        params = dict(
            early_stopping=True,
            n_iter_no_change=3,
            validation_fraction=0.3,
            learning_rate_init=learning_rate,
            max_iter=60,
        )
        model = _fit(make(**params), X, y)
        scores = model.validation_scores_
        assert len(scores) == model.n_iter_ == len(model.loss_curve_)
        assert model.best_validation_score_ == max(scores)
        best = _best_epoch(scores)
        tried.append(scores)
        if best == len(scores):
            continue  # stopped at its best: nothing to restore
        stopped = _fit(make(**{**params, "max_iter": best}), X, y)
        assert stopped.validation_scores_ == scores[:best]
        _assert_same_weights(model, stopped)
        return
    raise AssertionError(f"no fit went past its best epoch: {tried}")


@pytest.mark.parametrize("module", MODULES)
def test_early_stopping_restores_the_best_epoch(module):
    X, y = _digits(200)
    _assert_restores_the_best_epoch(lambda **p: _classifier(module, **p), X, y)


def test_early_stopping_regressor_restores_the_best_epoch():
    X, y = _targets("regression", 200)
    _assert_restores_the_best_epoch(lambda **p: _regressor(DropoutNet, **p), X, y)


@pytest.mark.parametrize(
    "module, module_params",
    # DropoutNet's dropout and noise switched off: random masks per row
    # cannot equal repeated rows.
    [(SkipNet, {}), (DigitsCNN, {}), (DropoutNet, QUIET)],
    ids=["SkipNet", "DigitsCNN", "DropoutNet-quiet"],
)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_integer_sample_weights_equal_repeated_rows(module, module_params, solver):
    X, y = _digits(80)
    w = np.random.default_rng(0).integers(0, 4, len(X))
    params = dict(
        solver=solver, dtype="float64", max_iter=15, alpha=0.01, **module_params
    )
    weighted = _fit(
        _classifier(module, batch_size=len(X), **params), X, y, sample_weight=w
    )
    X_rep, y_rep = np.repeat(X, w, axis=0), np.repeat(y, w)
    repeated = _fit(_classifier(module, batch_size=len(X_rep), **params), X_rep, y_rep)
    assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-7)
    if solver == "lbfgs":
        assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-7)
    else:
        # Not rtol=1e-7: for unweighted fits the reported loss adds the L2
        # term of the weights after each epoch's steps (a documented shortcut,
        # see tests/test_mlp_port.py), for weighted fits the one before each.
        assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-3)


@pytest.mark.parametrize("module", MODULES)
def test_class_weight_equals_sample_weight(module):
    X, y = _targets("binary", 100)
    params = dict(dtype="float64", max_iter=8, shuffle=False)
    if module is DropoutNet:
        params.update(QUIET)
    by_class = _fit(
        _classifier(module, class_weight={"even": 3, "odd": 1}, **params), X, y
    )
    by_row = _fit(
        _classifier(module, **params), X, y, sample_weight=np.where(y == "even", 3, 1)
    )
    assert_allclose(by_class.predict_proba(X), by_row.predict_proba(X), rtol=1e-10)

    X, y = _digits(100)
    balanced = _fit(_classifier(module, class_weight="balanced", **params), X, y)
    by_row = _fit(
        _classifier(module, **params),
        X,
        y,
        sample_weight=compute_sample_weight("balanced", y),
    )
    assert_allclose(balanced.predict_proba(X), by_row.predict_proba(X), rtol=1e-10)


class DecayProbe(PenaltyProbe):
    """PenaltyProbe without the frozen layer."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__(n_features_in, n_outputs)
        self.frozen.requires_grad_(True)


def test_adamw_decays_the_weights_of_any_layout_not_vectors():
    X, y = _digits(60)
    clf = _fit(_classifier(DecayProbe, solver="adamw", alpha=1.0, max_iter=3), X, y)
    assert_array_equal(clf.module_.vector.detach().numpy(), 1.0)
    assert (clf.module_.matrix.detach().numpy() < 1).all()


def test_adamw_refuses_to_decay_a_frozen_layer():
    # AdamW's decoupled decay would shrink the frozen weights it steps.
    X, y = _digits(60)
    with pytest.raises(ValueError, match=r"would decay the frozen parameters"):
        _fit(_classifier(PenaltyProbe, solver="adamw", alpha=1.0, max_iter=2), X, y)
    clf = _fit(_classifier(PenaltyProbe, solver="adamw", alpha=0.0, max_iter=2), X, y)
    assert_array_equal(clf.module_.frozen.weight.detach().numpy(), 0.125)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_alpha_moves_exactly_the_penalized_trainable_parameters(solver):
    # alpha penalizes "parameters of two or more dimensions" (with adamw:
    # decays them); a frozen layer is not trained, by the penalty or
    # otherwise, and the vector without gradient stays as it is.
    X, y = _digits(60)
    clf = _fit(_classifier(PenaltyProbe, solver=solver, alpha=1.0, max_iter=5), X, y)
    values = {k: v.detach().numpy() for k, v in clf.module_.named_parameters()}
    assert_array_equal(values["frozen.weight"], 0.125, err_msg="frozen.weight moved")
    assert_array_equal(values["frozen.bias"], 0.5, err_msg="frozen.bias moved")
    assert_array_equal(values["vector"], 1.0, err_msg="the vector moved")
    assert (np.abs(values["matrix"]) < 1).all(), "the penalty must shrink the matrix"
    # Still frozen after a round trip, and through more training.
    loaded = pickle.loads(pickle.dumps(clf))
    assert not loaded.module_.frozen.weight.requires_grad
    if solver != "lbfgs":
        _partial_fit(loaded, X, y)
        _partial_fit(clf, X, y)
        _assert_same_weights(loaded, clf)
        assert_array_equal(loaded.module_.frozen.weight.detach().numpy(), 0.125)


def test_batched_search_trains_a_frozen_layer_as_fit_does():
    # BatchedGridSearchCV promises GridSearchCV's results; a frozen layer
    # must stay frozen in its batched training too (alpha=0: no penalty).
    X, y = _digits(90)
    estimator = _classifier(PenaltyProbe, alpha=0.0)
    grid = {"learning_rate_init": [0.01, 0.03]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        batched = BatchedGridSearchCV(estimator, grid, cv=2).fit(X, y)
        ordinary = GridSearchCV(estimator, grid, cv=2).fit(X, y)
    assert_allclose(
        batched.cv_results_["mean_test_score"],
        ordinary.cv_results_["mean_test_score"],
        atol=1e-8,
    )


def test_a_module_given_as_an_argument_is_not_changed_by_fit():
    # sklearn's rule: fit does not change the parameters. A pretrained
    # encoder passed as module__encoder is copied, not fine-tuned in place,
    # and two fits of the same estimator give the same model.
    X, y = _digits()
    encoder = nn.Linear(64, 8)
    original = copy.deepcopy(encoder.state_dict())
    clf = _classifier(WithEncoder, module__encoder=encoder)
    first = _fit(clf, X, y).predict_proba(X)
    assert clf.module__encoder is encoder
    for name, value in encoder.state_dict().items():
        unchanged = value.dtype == original[name].dtype and torch.equal(
            value, original[name]
        )
        assert unchanged, f"fit changed encoder.{name}"
    assert_array_equal(_fit(clf, X, y).predict_proba(X), first)
    # Loading does not train the loaded copy's encoder either.
    loaded = pickle.loads(pickle.dumps(clf))
    assert_array_equal(loaded.predict_proba(X), first)
    _partial_fit(loaded, X, y)
    for name, value in loaded.module__encoder.state_dict().items():
        assert torch.equal(value, original[name]), f"partial_fit changed {name}"


def test_dtype_float64_trains_and_predicts_in_float64():
    X, y = _digits()
    clf = _fit(_classifier(DigitsCNN, dtype="float64"), X.astype(np.float32), y)
    assert all(p.dtype == torch.float64 for p in clf.module_.parameters())
    assert clf.predict_proba(X).dtype == np.float64
    loaded = pickle.loads(pickle.dumps(clf))
    assert all(p.dtype == torch.float64 for p in loaded.module_.parameters())
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_max_grad_norm_bounds_each_step():
    # One full-batch SGD step of learning rate 1 and no momentum moves the
    # weights by exactly the clipped gradient: its norm is max_grad_norm.
    X, y = _digits()
    INITIAL_STATES.clear()
    params = dict(
        solver="sgd",
        momentum=0.0,
        batch_size=len(X),
        learning_rate_init=1.0,
        alpha=0.0,
        max_iter=1,
        dtype="float64",
    )
    clf = _fit(_classifier(recording_factory, max_grad_norm=1e-3, **params), X, y)
    (initial,) = INITIAL_STATES
    step = torch.cat(
        [(p.detach() - initial[k]).flatten() for k, p in clf.module_.named_parameters()]
    )
    # torch's clipping scales by max_norm / (norm + 1e-6).
    assert step.norm().item() == pytest.approx(1e-3, rel=1e-4)
    unclipped = _fit(_classifier(recording_factory, **params), X, y)
    step = torch.cat(
        [
            (p.detach() - initial[k]).flatten()
            for k, p in unclipped.module_.named_parameters()
        ]
    )
    assert step.norm().item() > 1e-2


def test_verbose_prints_the_epochs(capsys):
    X, y = _digits(60)
    _fit(_classifier(SkipNet, max_iter=2, verbose=True), X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out
    assert "Iteration 2, loss = " in out


def test_fit_inside_inference_mode_still_trains():
    X, y = _digits()
    outside = _fit(_classifier(SkipNet), X, y)
    with torch.inference_mode():
        inside = _fit(_classifier(SkipNet), X, y)
    _assert_same_weights(inside, outside)
    assert_array_equal(inside.predict_proba(X), outside.predict_proba(X))


# ----------------------------------------------------------- reproducibility


@pytest.mark.parametrize("module", MODULES)
def test_same_random_state_same_model_different_different(module):
    X, y = _digits()
    a = _fit(_classifier(module, random_state=3), X, y)
    b = _fit(_classifier(module, random_state=3), X, y)
    _assert_same_weights(a, b)
    assert a.loss_curve_ == b.loss_curve_
    c = _fit(_classifier(module, random_state=4), X, y)
    _assert_different_weights(a, c)


def test_same_random_state_same_initial_weights():
    X, y = _digits(60)
    INITIAL_STATES.clear()
    for seed in (0, 0, 1):
        _fit(_classifier(recording_factory, random_state=seed, max_iter=1), X, y)
    first, again, other = INITIAL_STATES
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert all(not torch.equal(first[k], other[k]) for k in first if "weight" in k)


def test_dropout_training_is_seeded_by_random_state():
    # Same initial weights (the init stream), yet the training draws differ
    # between seeds only if dropout and noise take them from the fit's seed:
    # compare against the same module with its randomness switched off.
    X, y = _digits()
    on = _fit(_classifier(DropoutNet, shuffle=False), X, y)
    on_again = _fit(_classifier(DropoutNet, shuffle=False), X, y)
    off = _fit(_classifier(DropoutNet, shuffle=False, **QUIET), X, y)
    _assert_same_weights(on, on_again)
    _assert_different_weights(on, off)
    # In eval mode (predict) nothing is random.
    assert not on.module_.training
    assert_array_equal(on.predict_proba(X), on.predict_proba(X))


@pytest.mark.parametrize("module", MODULES)
def test_fit_and_predict_leave_the_global_generators_alone(module):
    X, y = _digits()
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002
    random.seed(0)
    threads = torch.get_num_threads()
    before = _global_random_states()
    clf = _fit(_classifier(module, early_stopping=True), X, y)
    clf.predict(X)
    clf.predict_proba(X)
    _partial_fit(_classifier(module), X, y, classes=np.arange(10)).partial_fit(X, y)
    _fit(_classifier(module, random_state=None), X, y)  # a seed of its own
    pickle.loads(pickle.dumps(clf)).predict(X)
    _assert_same_global_states(before, _global_random_states())
    assert torch.get_num_threads() == threads
    _assert_no_mode_left_active()


@pytest.mark.parametrize("module", MODULES)
def test_a_prior_manual_seed_does_not_change_the_fit(module):
    X, y = _digits()
    torch.manual_seed(1)
    a = _fit(_classifier(module), X, y)
    torch.manual_seed(2)
    torch.rand(100)
    b = _fit(_classifier(module), X, y)
    _assert_same_weights(a, b)


def test_random_state_none_gives_different_fits():
    X, y = _digits()
    a = _fit(_classifier(DropoutNet, random_state=None), X, y)
    b = _fit(_classifier(DropoutNet, random_state=None), X, y)
    _assert_different_weights(a, b)


@pytest.mark.parametrize("module", MODULES)
def test_fits_in_threads_equal_sequential_fits(module):
    X, y = _digits()

    def fit(seed):
        return _fit(_classifier(module, random_state=seed), X, y)

    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    expected = torch.rand(3)
    after = torch.random.get_rng_state()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(fit, seed) for seed in range(4)]
        # Meanwhile this thread's draws are the global generator's, unrouted,
        # and nothing else draws from it.
        while not all(future.done() for future in futures):
            torch.random.set_rng_state(before)
            assert torch.equal(torch.rand(3), expected)
        threaded = [future.result() for future in futures]
    assert torch.equal(torch.random.get_rng_state(), after)
    for seed, model in enumerate(threaded):
        _assert_same_weights(model, fit(seed))
    _assert_different_weights(threaded[0], threaded[1])


@pytest.mark.parametrize("op", list(RANDOM_OPS))
def test_random_ops_in_training_draw_from_the_fits_generator(op):
    X, y = _digits(60)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    a = _fit(_classifier(RandomOpNet, module__op=op, shuffle=False), X, y)
    untouched = torch.equal(before, torch.random.get_rng_state())
    assert untouched, f"{op} drew from torch's global generator"
    torch.rand(10)  # another global state: the fit must not depend on it
    b = _fit(_classifier(RandomOpNet, module__op=op, shuffle=False), X, y)
    _assert_same_weights(a, b)


def test_failing_fits_leave_no_randomness_mode_behind():
    X, y = _digits()
    for module in (raising_factory, FiveFeatures, FlakyNet):
        with pytest.raises((ValueError, RuntimeError)):
            _classifier(module, batch_size=20).fit(X, y)
        _assert_no_mode_left_active()


def test_a_failed_fit_leaves_the_estimator_unfitted():
    X, y = _digits()
    clf = _classifier(FlakyNet, batch_size=20)
    with pytest.raises((RuntimeError, ValueError), match="flaky"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")
    assert not hasattr(clf, "classes_")


# --------------------------------------------------------------- persistence


def _round_trip_pickle(model, tmp_path):
    return pickle.loads(pickle.dumps(model))


def _round_trip_joblib(model, tmp_path):
    joblib.dump(model, tmp_path / "model.joblib")
    return joblib.load(tmp_path / "model.joblib")


def _round_trip_deepcopy(model, tmp_path):
    return copy.deepcopy(model)


def _round_trip_skops(model, tmp_path):
    pytest.importorskip("skops", reason="skops is an optional dependency")
    trusted = [_path(model.module)]
    skorchlite.save(model, tmp_path / "model.skops", trusted=trusted)
    return skorchlite.load(tmp_path / "model.skops", trusted=trusted)


def _round_trip_mlflow(model, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is an optional dependency")
    pytest.importorskip("skops", reason="mlflow's skops format needs skops")
    import mlflow.sklearn

    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        model,
        path,
        serialization_format="skops",
        skops_trusted_types=[_path(model.module), _path(type(model))],
        pip_requirements=["skorchlite"],  # inferring them runs a subprocess
    )
    return mlflow.sklearn.load_model(path.as_uri())


def _round_trip_mlflow_cloudpickle(model, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is an optional dependency")
    import mlflow.sklearn

    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        model, path, serialization_format="cloudpickle", pip_requirements=["skorchlite"]
    )
    return mlflow.sklearn.load_model(path.as_uri())


ROUND_TRIPS = {
    "pickle": _round_trip_pickle,
    "joblib": _round_trip_joblib,
    "deepcopy": _round_trip_deepcopy,
    "skops": _round_trip_skops,
    "mlflow-skops": _round_trip_mlflow,
    "mlflow-cloudpickle": _round_trip_mlflow_cloudpickle,
}


@pytest.mark.parametrize("module", [*MODULES, sequential_factory, BufferNet])
@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_round_trip_predicts_and_trains_on_identically(module, how, tmp_path):
    X, y = _digits()
    clf = _fit(_classifier(module, max_iter=3), X, y)
    loaded = ROUND_TRIPS[how](clf, tmp_path)
    assert type(loaded) is TorchClassifier
    assert loaded.get_params() == clf.get_params()
    assert not loaded.module_.training
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(loaded.predict(X), clf.predict(X))
    # The solver state and the random streams came along: one more epoch
    # (with dropout for DropoutNet) gives the same model on both.
    _partial_fit(clf, X, y)
    _partial_fit(loaded, X, y)
    _assert_same_weights(loaded, clf)
    assert loaded.loss_curve_ == clf.loss_curve_
    assert loaded.t_ == clf.t_


@pytest.mark.parametrize("how", ["pickle", "skops"])
def test_round_trip_of_a_regressor_and_an_unfitted_estimator(how, tmp_path):
    X, y = _targets("regression2")
    reg = _fit(_regressor(DigitsCNN, module__channels=3), X, y)
    loaded = ROUND_TRIPS[how](reg, tmp_path)
    assert_array_equal(loaded.predict(X), reg.predict(X))
    unfitted = ROUND_TRIPS[how](TorchRegressor(DigitsCNN, module__channels=3), tmp_path)
    assert (
        unfitted.get_params()
        == TorchRegressor(DigitsCNN, module__channels=3).get_params()
    )
    assert not hasattr(unfitted, "module_")


def test_a_module_param_changed_after_fit_still_pickles(tmp_path):
    # module_ no longer is what the parameters build: pickle carries it as
    # torch objects; skops cannot, and says so.
    X, y = _digits()
    clf = _fit(_classifier(SkipNet, module__width=8), X, y)
    clf.set_params(module__width=5)
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.get_params()["module__width"] == 5
    assert loaded.module_.inner.out_features == 8
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    pytest.importorskip("skops", reason="skops is an optional dependency")
    with pytest.raises(TypeError, match="pickle"):
        skorchlite.save(clf, tmp_path / "model.skops", trusted=[_path(SkipNet)])


def test_pickling_does_not_change_the_fitted_estimator():
    X, y = _digits()
    clf = _fit(_classifier(DropoutNet), X, y)
    before = dict(vars(clf))
    weights = _weights(clf)
    pickle.dumps(clf)
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is v for k, v in before.items())
    _assert_same_weights(clf, weights)


def test_skops_needs_the_module_trusted_and_says_how(tmp_path):
    pytest.importorskip("skops", reason="skops is an optional dependency")
    X, y = _digits()
    clf = _fit(_classifier(SkipNet), X, y)
    path = _path(SkipNet)
    with pytest.raises(TypeError, match=r"trusted=\[") as saving:
        skorchlite.save(clf, tmp_path / "model.skops")
    assert path in str(saving.value)
    skorchlite.save(clf, tmp_path / "model.skops", trusted=[path])
    with pytest.raises(ValueError, match=r"trusted=\[") as loading:
        skorchlite.load(tmp_path / "model.skops")
    assert path in str(loading.value)
    # Trusting another type is not trusting this one.
    with pytest.raises(ValueError, match="SkipNet"):
        skorchlite.load(tmp_path / "model.skops", trusted=[_path(DropoutNet)])
    # The class itself is accepted as well as its name.
    loaded = skorchlite.load(tmp_path / "model.skops", trusted=[SkipNet])
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def _fake_cuda_tensors(estimator):
    tensors = [*estimator.module_.parameters(), *estimator.module_.buffers()]
    solver_state = getattr(estimator, "_solver_state", None)
    for state in getattr(solver_state, "tensors", {}).values():
        tensors += state
    return tensors


@contextlib.contextmanager
def _pretend_on_cuda(tensors, monkeypatch):
    """Make ``tensors`` pickle, and report their device, as CUDA tensors do
    (the simulation of tests/test_persistence.py): pickling records their
    storages' location as "cuda:0", so unpickling them without CUDA fails as
    a real CUDA pickle does, and ``.to("cpu")`` copies them."""
    fake = {tensor.untyped_storage().data_ptr() for tensor in tensors}

    def on_fake(tensor):
        return tensor.untyped_storage().data_ptr() in fake

    def tagger(storage):
        return "cuda:0" if storage.data_ptr() in fake else None

    real_module_device = skorchlite._device.module_device

    def module_device(module):
        if on_fake(next(module.parameters())):
            return torch.device("cuda", 0)
        return real_module_device(module)

    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        targets = [*args, kwargs.get("device")]
        if on_fake(self) and any(str(t) == "cpu" for t in targets):
            return real_to(self.clone(), *args, **kwargs)
        return real_to(self, *args, **kwargs)

    registry = torch.serialization._package_registry
    torch.serialization.register_package(0, tagger, lambda obj, location: None)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(skorchlite._device, "module_device", module_device)
            patch.setattr(torch.Tensor, "to", to)
            yield
    finally:
        registry[:] = [entry for entry in registry if entry[1] is not tagger]


@pytest.mark.parametrize("module", MODULES)
def test_cuda_trained_pickle_loads_on_a_cpu_only_machine(module, monkeypatch):
    X, y = _digits()
    clf = _fit(_classifier(module, max_iter=3), X, y)
    expected = clf.predict_proba(X)
    clf.set_params(device="cuda")  # the setting it was trained with
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with _pretend_on_cuda(_fake_cuda_tensors(clf), monkeypatch):
        raw_module = pickle.dumps(clf.module_)
        data = pickle.dumps(clf)
    # The simulation is faithful: the module itself cannot load without CUDA.
    with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
        pickle.loads(raw_module)
    with pytest.warns(UserWarning, match="stays on the CPU"):
        loaded = pickle.loads(data)
    assert next(loaded.module_.parameters()).device.type == "cpu"
    assert_array_equal(loaded.predict_proba(X), expected)
    _partial_fit(loaded, X, y)
    assert loaded.t_ == clf.t_ + len(X)
    assert loaded.loss_curve_[:-1] == clf.loss_curve_


# ------------------------------------------------------ tampered-with states


@pytest.fixture(scope="module")
def fitted_skipnet():
    X, y = _digits()
    return _fit(_classifier(SkipNet, max_iter=2, module__width=8), X, y)


def _load_state(estimator_class, state):
    """What pickle does with a pickled estimator's (crafted) state."""
    loaded = estimator_class.__new__(estimator_class)
    loaded.__setstate__(state)
    return loaded


def _tampered(estimator, change):
    state = copy.deepcopy(estimator.__getstate__())
    change(state)
    return state


def _set_array(index, value):
    def change(state):
        state["_module_state"]["arrays"][index] = value(
            state["_module_state"]["arrays"][index]
        )

    return change


def _swap_names(state):
    names = state["_module_state"]["names"]
    names[0], names[2] = names[2], names[0]


def _rename(state):
    state["_module_state"]["names"][1] = "inner.weight_extra"


def _drop_last(state):
    state["_module_state"]["names"].pop()
    state["_module_state"]["arrays"].pop()


def _setter(key, value):
    def change(state):
        state[key] = value

    return change


def _module_param_setter(name, value):
    def change(state):
        state["_module_params"][name] = value

    return change


def _raising_factory_state(state):
    state["module"] = raising_factory
    del state["_module_params"]["module__width"]


def _module_setter(key, value):
    def change(state):
        state["_module_state"][key] = value

    return change


TAMPERINGS = {
    "wrong shape": (
        _set_array(0, lambda a: a[:, :-1].copy()),
        r"'inner\.weight'.*shape \(8, 64\)",
    ),
    "transposed": (_set_array(0, lambda a: a.T.copy()), r"'inner\.weight'.*shape"),
    "nan": (
        _set_array(2, lambda a: np.where(np.eye(*a.shape) > 0, np.nan, a)),
        r"'block\.weight'.*NaN",
    ),
    "inf": (_set_array(5, lambda a: a * np.inf), r"'out\.bias'.*infinite"),
    "wrong dtype": (
        _set_array(1, lambda a: a.astype(np.float32 if a.dtype == "f8" else "f8")),
        r"'inner\.bias'.*and dtype float",
    ),
    "a list, not an array": (_set_array(1, lambda a: a.tolist()), r"'inner\.bias'"),
    "names swapped": (_swap_names, "names"),
    "a name renamed": (_rename, "inner.weight_extra"),
    "an entry missing": (_drop_last, "names"),
    "width changed": (_module_param_setter("module__width", 9), r"shape \(9, 64\)"),
    # Rebuilt on the meta device: nothing of these sizes is allocated.
    "a huge width": (
        _module_param_setter("module__width", 10**9),
        r"shape \(1000000000, 64\)",
    ),
    "an overflowing width": (
        _module_param_setter("module__width", 10**12),
        "width=1000000000000",
    ),
    "n_features_in_ changed": (_setter("n_features_in_", 63), r"shape \(8, 63\)"),
    "n_outputs_ changed": (_setter("n_outputs_", 3), "n_outputs_=3"),
    "a module__ it does not take": (
        _module_param_setter("module__depth", 2),
        "module__depth",
    ),
    "another module": (_setter("module", DropoutNet), "names"),
    "a module without its parameter": (
        _setter("module", DigitsCNN),
        "module__width is not an argument of DigitsCNN",
    ),
    "a module that is no callable": (_setter("module", "SkipNet"), "module"),
    "a factory that raises": (_raising_factory_state, "the factory is broken"),
    "float16": (_module_setter("dtype", "float16"), "float16"),
    "no names": (_module_setter("names", None), "names"),
    "an unknown entry": (_setter("forward", print), "unknown entries"),
}


@pytest.mark.parametrize("change, message", TAMPERINGS.values(), ids=list(TAMPERINGS))
def test_a_tampered_state_raises_value_error_naming_the_problem(
    fitted_skipnet, change, message
):
    state = _tampered(fitted_skipnet, change)
    with pytest.raises(ValueError, match=message):
        _load_state(TorchClassifier, state)


def test_the_untampered_state_loads(fitted_skipnet):
    X, _ = _digits()
    loaded = _load_state(TorchClassifier, _tampered(fitted_skipnet, lambda s: None))
    assert_array_equal(loaded.predict_proba(X), fitted_skipnet.predict_proba(X))


def _edit_schema(data, edit):
    """The skops file ``data`` with ``edit(schema)`` applied to its schema."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target,
    ):
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "schema.json":
                schema = json.loads(content)
                edit(schema)
                content = json.dumps(schema).encode()
            target.writestr(info.filename, content)
    return out.getvalue()


def _change_width(width):
    def edit(schema):
        params = schema["content"]["content"]["_module_params"]
        node = params["content"]["module__width"]
        assert node["content"] == "8"
        node["content"] = str(width)

    return edit


@pytest.mark.parametrize("width", [9, 10**9])
def test_a_skops_file_with_another_width_raises_value_error(fitted_skipnet, width):
    pytest.importorskip("skops", reason="skops is an optional dependency")
    buffer = io.BytesIO()
    skorchlite.save(fitted_skipnet, buffer, trusted=[_path(SkipNet)])
    data = _edit_schema(buffer.getvalue(), _change_width(width))
    with pytest.raises(ValueError, match=rf"shape \({width}, 64\)"):
        skorchlite.load(io.BytesIO(data), trusted=[_path(SkipNet)])


def test_a_skops_file_whose_module_is_swapped_for_a_function_is_refused(
    fitted_skipnet,
):
    pytest.importorskip("skops", reason="skops is an optional dependency")
    buffer = io.BytesIO()
    skorchlite.save(fitted_skipnet, buffer, trusted=[_path(SkipNet)])

    def swap(schema):
        node = schema["content"]["content"]["module"]
        assert (node["__module__"], node["__class__"]) == (
            SkipNet.__module__,
            "SkipNet",
        )
        node.update({"__module__": "os", "__class__": "system"})

    data = _edit_schema(buffer.getvalue(), swap)
    with pytest.raises(ValueError, match=r"os\.system"):
        skorchlite.load(io.BytesIO(data), trusted=[_path(SkipNet)])


# ----------------------------------------------------------------- bad input


def test_a_module_instance_is_refused():
    X, y = _digits(40)
    with pytest.raises(ValueError, match="pass the class itself"):
        TorchClassifier(SkipNet(64, 10)).fit(X, y)


@pytest.mark.parametrize("module", [None, "SkipNet", 3])
def test_module_must_be_callable(module):
    X, y = _digits(40)
    with pytest.raises(ValueError, match="'module' parameter"):
        TorchClassifier(module).fit(X, y)


def test_an_argument_not_prefixed_module_is_refused_by_fit():
    # __init__ and set_params raise nothing (sklearn's rule); fit says what
    # to write instead.
    X, y = _digits(60)
    for clf in (
        TorchClassifier(SkipNet, width=3),
        TorchClassifier(SkipNet).set_params(module_params=3),
    ):
        with pytest.raises(TypeError, match="module__<name>"):
            clf.fit(X, y)


@pytest.mark.parametrize(
    "module, params, error, message",
    [
        (
            SkipNet,
            {"module__widht": 3},
            ValueError,
            r"module__widht is not an argument",
        ),
        (
            DigitsCNN,
            {"module__width": 3},
            ValueError,
            "module__width is not an argument",
        ),
        (raising_factory, {}, ValueError, "the factory is broken"),
        (not_a_module_factory, {}, TypeError, "must build a torch.nn.Module"),
        (nn.ReLU, {}, ValueError, "no parameters to train"),
        (ThreeOutputs, {}, ValueError, r"shape \(2, 10\).*got shape \(2, 3\)"),
        # n_outputs given by hand overrides what the data needs: wrong.
        (SkipNet, {"module__n_outputs": 4}, ValueError, r"shape \(2, 10\)"),
        (TupleOutputs, {}, ValueError, r"shape \(2, 10\).*tuple"),
        (FiveFeatures, {}, ValueError, r"failed on a batch of X of shape \(2, 64\)"),
    ],
)
def test_bad_modules_raise_clear_errors(module, params, error, message):
    X, y = _digits(40)
    clf = TorchClassifier(module, max_iter=2, **params)
    with pytest.raises(error, match=message) as info:
        clf.fit(X, y)
    assert type(info.value) in (ValueError, TypeError)  # not torch's RuntimeError
    assert not hasattr(clf, "module_")


def test_a_squeezed_binary_output_names_the_expected_shape():
    X, y = _targets("binary", 40)
    with pytest.raises(ValueError, match=r"shape \(2, 1\).*got shape \(2,\)"):
        TorchClassifier(Squeezed, max_iter=2).fit(X, y)


def test_the_regressor_checks_its_module_too():
    X, y = _targets("regression2", 40)
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*got shape \(2, 3\)"):
        TorchRegressor(ThreeOutputs, max_iter=2).fit(X, y)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_X_is_refused_at_fit_and_predict(value, fitted_skipnet):
    X, y = _digits(40)
    bad = X.copy()
    bad[3, 5] = value
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        _classifier(SkipNet).fit(bad, y)
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        fitted_skipnet.predict(bad)


@pytest.mark.parametrize("module", MODULES)
def test_predict_with_another_number_of_features_is_refused(module):
    X, y = _digits(60)
    clf = _fit(_classifier(module, max_iter=1), X, y)
    with pytest.raises(ValueError, match=r"X has 63 features.*expecting 64 features"):
        clf.predict(X[:, :-1])
    with pytest.raises(ValueError, match="X has 63 features"):
        clf.partial_fit(X[:, :-1], y)


def test_predict_before_fit_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TorchClassifier(SkipNet).predict(_digits(5)[0])


# ---------------------------------------------------------- output shapes


@pytest.mark.parametrize("module", MODULES)
def test_binary_outputs(module):
    X, y = _targets("binary")
    clf = _fit(_classifier(module), X, y)
    assert_array_equal(clf.classes_, ["even", "odd"])
    assert clf.n_outputs_ == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    decision = clf.decision_function(X)
    assert decision.shape == (len(X),)
    assert_allclose(proba[:, 1], 1 / (1 + np.exp(-decision)), rtol=1e-5)
    assert_array_equal(clf.predict(X), np.where(decision > 0, "odd", "even"))
    assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6)


@pytest.mark.parametrize("module", MODULES)
def test_multiclass_outputs(module):
    X, y = _targets("multiclass")
    clf = _fit(_classifier(module), X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 10)
    assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    decision = clf.decision_function(X)
    assert decision.shape == (len(X), 10)
    assert_array_equal(clf.predict(X), clf.classes_[decision.argmax(axis=1)])
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    # Predicting in batches of 7 rows changes nothing (but rounding).
    assert_allclose(clf.set_params(predict_batch_size=7).predict_proba(X), proba)
    # The logits are the module's own, in eval mode.
    dtype = next(clf.module_.parameters()).dtype
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(X, dtype=dtype)).numpy()
    assert_allclose(decision, logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module", MODULES)
def test_multilabel_outputs(module):
    X, Y = _targets("multilabel")
    clf = _fit(_classifier(module), X, Y)
    assert clf.n_outputs_ == 3
    predicted = clf.predict(X)
    assert predicted.shape == Y.shape
    assert set(np.unique(predicted)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape
    assert ((proba >= 0) & (proba <= 1)).all()
    assert_array_equal(predicted, (proba > 0.5).astype(predicted.dtype))
    assert clf.decision_function(X).shape == Y.shape


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("kind", ["regression", "regression2"])
def test_regressor_outputs(module, kind):
    X, y = _targets(kind)
    reg = _fit(_regressor(module), X, y)
    assert reg.predict(X).shape == y.shape
    assert reg.n_outputs_ == (1 if y.ndim == 1 else 2)
    assert np.isfinite(reg.score(X, y))


def test_regressor_learns_with_lbfgs():
    X, y = _targets("regression2")
    reg = _fit(_regressor(SkipNet, solver="lbfgs", max_iter=100), X, y)
    assert reg.score(X, y) > 0.8


@pytest.mark.parametrize("module", MODULES)
def test_poisson_regressor(module):
    X, _ = _digits()
    y = np.random.default_rng(0).poisson(np.exp(X[:, 20]))
    reg = _fit(_regressor(module, loss="poisson"), X, y)
    assert reg.out_activation_ == "exp"
    predicted = reg.predict(X)
    assert predicted.shape == y.shape
    assert (predicted > 0).all()
    dtype = next(reg.module_.parameters()).dtype
    with torch.no_grad():
        raw = reg.module_(torch.as_tensor(X, dtype=dtype)).numpy()
    assert_allclose(predicted, np.exp(raw[:, 0]), rtol=1e-5)
    with pytest.raises(ValueError, match=r"non-negative|negative"):
        _regressor(module, loss="poisson").fit(X, y - 1.0)
