"""Pickled state: plain numpy arrays and Python values, checked when restored.

A state is what ``__getstate__`` returns; skops hands a file's state to
``__setstate__`` unchanged, so every crafted value below is one a file can
carry.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from skorchlite import TorchMLPClassifier, TorchMLPRegressor

PLAIN_TYPES = (np.ndarray, str, int, float, bool, type(None), np.generic)


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def _plain_leaves(value, where="state"):
    """Every leaf of ``value``, asserting the containers are dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), where
            yield from _plain_leaves(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _plain_leaves(item, f"{where}[{index}]")
    else:
        yield where, value


@pytest.fixture(scope="module")
def data():
    return make_classification(120, n_features=5, random_state=0)


@pytest.fixture(scope="module", params=["adam", "adamw", "sgd", "lbfgs"])
def fitted(request, data):
    X, y = data
    clf = TorchMLPClassifier(
        (6, 4), solver=request.param, max_iter=4, device="cpu", random_state=0
    )
    return _fit(clf, X, y)


def test_state_holds_only_plain_values(fitted):
    before = dict(vars(fitted))
    state = fitted.__getstate__()
    for where, leaf in _plain_leaves(state):
        assert isinstance(leaf, PLAIN_TYPES), (where, type(leaf))
    # The live estimator keeps its torch objects.
    assert vars(fitted).keys() == before.keys()
    assert fitted.module_ is before["module_"]


def test_pickle_and_deepcopy_restore_predictions_and_training(fitted, data):
    X, y = data
    for restored in (pickle.loads(pickle.dumps(fitted)), copy.deepcopy(fitted)):
        assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
        assert restored._history == fitted._history
        if fitted.solver != "lbfgs":
            # The optimizer state carries over: both continue identically.
            ours = copy.deepcopy(fitted)
            ours.partial_fit(X, y)
            restored.partial_fit(X, y)
            assert_array_equal(restored.predict_proba(X), ours.predict_proba(X))


@pytest.mark.parametrize("learning_rate", ["invscaling", "adaptive"])
def test_a_lowered_learning_rate_carries_over(learning_rate, data):
    X, y = data
    clf = TorchMLPClassifier(
        (6,),
        solver="sgd",
        learning_rate=learning_rate,
        learning_rate_init=0.1,
        tol=1.0,
        n_iter_no_change=1,
        max_iter=4,
        random_state=0,
    )
    clf = _fit(clf, X, y)
    lowered = clf._solver_state.learning_rates[0]
    assert lowered < 0.1
    restored = pickle.loads(pickle.dumps(clf))
    assert restored._solver_state.learning_rates == [lowered]
    clf.partial_fit(X, y)
    restored.partial_fit(X, y)
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_restored_parameters_are_trainable_outside_inference_mode(fitted, data):
    X, y = data
    with torch.inference_mode():
        restored = pickle.loads(pickle.dumps(fitted))
    assert not any(p.is_inference() for p in restored.module_.parameters())
    if fitted.solver != "lbfgs":
        restored.partial_fit(X, y)


def test_regressor_state_round_trips():
    X, y = make_regression(80, n_features=4, n_targets=2, random_state=0)
    reg = _fit(
        TorchMLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0),
        X,
        y / 100,
    )
    restored = pickle.loads(pickle.dumps(reg))
    assert_array_equal(restored.predict(X), reg.predict(X))
    assert restored._target.n_outputs == 2


def _restore(estimator_class, state):
    estimator = estimator_class.__new__(estimator_class)
    estimator.__setstate__(state)
    return estimator


@pytest.fixture(scope="module")
def adam_state(data):
    X, y = data
    clf = _fit(TorchMLPClassifier((6,), max_iter=3, random_state=0), X, y)
    return clf.__getstate__()


def _set(state, path, value):
    state = copy.deepcopy(state)
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


_SWAP = object()  # the first two parameters' states, swapped


def _arrays(index):
    return ("_module_state", "arrays", index)


CRAFTED = {
    "weight shape": (_arrays(0), np.zeros((6, 4)), "module array 0 has shape"),
    "weight dtype": (_arrays(0), np.zeros((6, 5), np.float32), "dtype float32"),
    "weight NaN": (_arrays(1), np.full(6, np.nan), "NaN or infinite"),
    "weight not array": (_arrays(1), [0.0] * 6, "must be a numpy array"),
    "object weight": (_arrays(1), np.zeros(6, object), "dtype object"),
    "missing array": (("_module_state", "arrays"), [], "needs 4"),
    "huge layer": (
        ("_module_state", "layout", 0, "in_features"),
        10**12,
        "do not match|does not match|has shape",
    ),
    "unknown activation": (
        ("_module_state", "layout", 1),
        {"layer": "activation", "name": "os.system"},
        "unsupported layer 1",
    ),
    "dtype": (("_module_state", "dtype"), "<U999999999", "unsupported module dtype"),
    "0-d moment": (
        ("_optimizer_state", "parameters", 0, "exp_avg"),
        np.float64(0.0),
        "must be a numpy array",
    ),
    "0-d array moment": (
        ("_optimizer_state", "parameters", 0, "exp_avg"),
        np.array(0.0),
        "has shape \\(\\)",
    ),
    "negative second moment": (
        ("_optimizer_state", "parameters", 1, "exp_avg_sq"),
        -np.ones(6),
        "negative",
    ),
    "step zero": (("_optimizer_state", "parameters", 0, "step"), 0, "positive integer"),
    "negative step": (
        ("_optimizer_state", "parameters", 0, "step"),
        -3,
        "positive integer",
    ),
    "float step": (
        ("_optimizer_state", "parameters", 0, "step"),
        2.5,
        "positive integer",
    ),
    "extra entry": (
        ("_optimizer_state", "parameters", 0, "max_exp_avg_sq"),
        np.zeros((6, 5)),
        "must have the entries",
    ),
    "permuted parameters": (
        ("_optimizer_state", "parameters"),
        _SWAP,
        "has shape",
    ),
    "negative learning rate": (
        ("_optimizer_state", "learning_rate"),
        -10.0,
        "invalid optimizer learning_rate",
    ),
    "unsorted classes": (("classes_",), np.array([1, 0]), "sorted and unique"),
    "duplicated classes": (("classes_",), np.array([0, 0]), "sorted and unique"),
    "NaN classes": (("classes_",), np.array([0.0, np.nan]), "NaN"),
    "mixed classes": (("classes_",), np.array([0, "a"], object), "not a mix"),
    "float n_outputs_": (("n_outputs_",), 1.0, "must be integers"),
    "huge seed": (("_seed",), 10**30, "invalid _seed"),
    "negative lr": (("learning_rate_init",), -10.0, "invalid parameters"),
    "0-d hidden sizes": (("hidden_layer_sizes",), np.array(0.0), "positive integers"),
    "unknown target": (("_target_type",), "continuous", "not one of"),
    "history": (("_history", "n_iter"), -1, "history"),
    "out activation": (("out_activation_",), "softmax", "out_activation_"),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_state_raises_value_error_naming_the_problem(adam_state, name):
    path, value, message = CRAFTED[name]
    if value is _SWAP:
        entries = list(adam_state["_optimizer_state"]["parameters"])
        state = _set(adam_state, path, [entries[1], entries[0], *entries[2:]])
    else:
        state = _set(adam_state, path, value)
    with pytest.raises(ValueError, match=message):
        _restore(TorchMLPClassifier, state)


def test_unchanged_state_restores(adam_state, data):
    X, _ = data
    restored = _restore(TorchMLPClassifier, copy.deepcopy(adam_state))
    assert restored.predict(X).shape == (len(X),)


def test_classifier_state_is_no_regressor(adam_state):
    state = _set(adam_state, ("_target_type",), "continuous")
    with pytest.raises(ValueError, match="not one of TorchMLPClassifier"):
        _restore(TorchMLPClassifier, state)
    with pytest.raises(ValueError):
        _restore(TorchMLPRegressor, copy.deepcopy(adam_state))


def _torch_state_dict(solver_state):
    """What torch's Adam's ``state_dict`` held for ``solver_state`` (a stack of
    one): older pickles of a changed module_ stored it."""
    tensors = solver_state.tensors
    n_params = len(tensors["exp_avg"])
    return {
        "state": {
            i: {
                "step": torch.tensor(float(solver_state.step)),
                **{name: tensors[name][i][0].clone() for name in tensors},
            }
            for i in range(n_params)
        },
        "param_groups": [
            {"lr": solver_state.learning_rates[0], "params": list(range(n_params))}
        ],
    }


def test_state_pickled_with_torch_objects_still_loads(data):
    # What __getstate__ returned before the state became plain arrays: the
    # module itself and the optimizer's state_dict.
    X, y = data
    clf = _fit(TorchMLPClassifier((6,), max_iter=3, random_state=0), X, y)
    legacy = dict(vars(clf))
    legacy["_optimizer"] = _torch_state_dict(legacy.pop("_solver_state"))
    restored = _restore(TorchMLPClassifier, copy.deepcopy(legacy))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_a_failed_restore_leaves_no_half_state(adam_state):
    estimator = TorchMLPClassifier.__new__(TorchMLPClassifier)
    with pytest.raises(ValueError):
        estimator.__setstate__(_set(adam_state, ("_seed",), -1))
    assert vars(estimator) == {}


def test_a_module_changed_by_the_user_still_pickles(data):
    X, y = data
    clf = _fit(TorchMLPClassifier((6,), max_iter=3, random_state=0), X, y)
    clf.module_[1] = torch.nn.LeakyReLU(0.3)  # not a layer fit builds
    for restored in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        assert isinstance(restored.module_[1], torch.nn.LeakyReLU)
        assert restored.module_[1].negative_slope == 0.3
        assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
