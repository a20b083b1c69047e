"""coefs_ and intercepts_ edit and set the network, as MLPClassifier's do."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor

import skorchlite
from skorchlite import TorchMLPClassifier, TorchMLPRegressor


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def _pair(kind, dtype=np.float64):
    """Ours and scikit-learn's, fitted on the same data, and that data."""
    if kind == "regression":
        X, y = make_regression(40, 4, n_targets=2, random_state=0)
        ours, theirs = TorchMLPRegressor, MLPRegressor
    else:
        X, y = make_classification(
            40, 4, n_informative=3, n_redundant=0, random_state=0,
            n_classes=2 if kind == "binary" else 3,
        )  # fmt: skip
        ours, theirs = TorchMLPClassifier, MLPClassifier
    X = X.astype(dtype)
    kwargs = {"hidden_layer_sizes": (5, 3), "max_iter": 3, "random_state": 0}
    return _fit(ours(device="cpu", **kwargs), X, y), _fit(theirs(**kwargs), X, y), X


def _outputs(estimator, X):
    method = getattr(estimator, "predict_proba", estimator.predict)
    return method(X)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_weights_set_from_sklearn_predict_as_sklearn(kind):
    ours, theirs, X = _pair(kind)
    ours.coefs_ = theirs.coefs_
    ours.intercepts_ = theirs.intercepts_
    assert_allclose(_outputs(ours, X), _outputs(theirs, X), rtol=1e-10, atol=1e-12)


def _same_weights():
    ours, theirs, X = _pair("multiclass")
    ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
    return ours, theirs, X


def test_in_place_edits_change_predictions_as_on_sklearn():
    ours, theirs, X = _same_weights()
    before = ours.predict_proba(X)
    for estimator in (ours, theirs):
        estimator.coefs_[0][:, ::2] = 0.0  # prune every other hidden unit
        estimator.intercepts_[1] *= 2.0
        estimator.coefs_[-1][0] += 1.0
    assert not np.allclose(ours.predict_proba(X), before)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)
    assert_array_equal(ours.coefs_[0][:, ::2], 0.0)


def test_item_and_slice_assignment_change_predictions_as_on_sklearn():
    ours, theirs, X = _same_weights()
    rng = np.random.default_rng(0)
    W = rng.normal(size=theirs.coefs_[1].shape)
    b = rng.normal(size=theirs.intercepts_[2].shape)
    for estimator in (ours, theirs):
        estimator.coefs_[1] = W
        estimator.intercepts_[-1:] = [b]
    assert_array_equal(ours.coefs_[1], W)
    assert_array_equal(ours.intercepts_[2], b)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)


def test_a_list_kept_from_before_writes_into_the_network():
    ours, _, _ = _pair("binary")
    coefs = ours.coefs_
    coefs[0] = np.zeros_like(coefs[0])
    coefs[0][0, 0] = 1.0  # the item is the network's again
    assert ours.coefs_[0][0, 0] == 1.0
    assert ours.coefs_[0].sum() == 1.0


def test_assigned_values_are_copied_not_shared():
    ours, theirs, _ = _same_weights()
    theirs.coefs_[0][:] = 0.0
    assert ours.coefs_[0].any()
    other, _, _ = _pair("multiclass")
    other.coefs_ = ours.coefs_
    other.coefs_[0][:] = 0.0
    assert ours.coefs_[0].any()


def test_integer_and_float32_values_take_the_network_dtype():
    ours, _, _ = _pair("binary")
    shapes = [c.shape for c in ours.coefs_]
    ours.coefs_ = [np.ones(shape, dtype=np.int64) for shape in shapes]
    ours.intercepts_ = [b.astype(np.float32) for b in ours.intercepts_]
    assert [c.dtype for c in ours.coefs_] == [np.float64] * 3
    assert [b.dtype for b in ours.intercepts_] == [np.float64] * 3
    assert_array_equal(ours.module_[0].weight.detach().numpy(), 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c[:2], r"coefs_ must hold 3 arrays .* got 2"),
        (lambda c: [*c, c[-1]], r"coefs_ must hold 3 arrays .* got 4"),
        (lambda c: np.stack([c[1], c[1]]), r"coefs_ must be a list"),
        (lambda c: [c[0], c[1].T, c[2]], r"coefs_\[1\] has shape \(3, 5\); .*\(5, 3\)"),
        (lambda c: [c[0], c[1] + 0j, c[2]], r"coefs_\[1\] must hold real numbers"),
        (lambda c: [c[0], c[1] > 0, c[2]], r"coefs_\[1\] must hold real numbers"),
        (lambda c: [c[0], c[1], c[2] * np.nan], r"coefs_\[2\] holds NaN"),
        (lambda c: [[["a"]], c[1], c[2]], r"coefs_\[0\] must hold real numbers"),
    ],
)
def test_invalid_coefs_raise_and_change_nothing(change, message):
    ours, _, X = _pair("binary")
    before, proba = [c.copy() for c in ours.coefs_], ours.predict_proba(X)
    with pytest.raises(ValueError, match=message):
        ours.coefs_ = change([c.copy() * 2 for c in before])
    for after, expected in zip(ours.coefs_, before, strict=True):
        assert_array_equal(after, expected)
    assert_array_equal(ours.predict_proba(X), proba)


def test_invalid_intercepts_raise():
    ours, _, _ = _pair("binary")
    with pytest.raises(ValueError, match=r"intercepts_\[0\] has shape \(3,\)"):
        ours.intercepts_[0] = np.zeros(3)


def test_values_beyond_float32_are_refused_by_a_float32_network():
    ours, _, _ = _pair("binary", dtype=np.float32)
    assert ours.coefs_[0].dtype == np.float32
    with pytest.raises(ValueError, match="beyond the range of float32"):
        ours.coefs_[0] = np.full(ours.coefs_[0].shape, 1e39)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.append(c[0]),
        lambda c: c.pop(),
        lambda c: c.__delitem__(0),
        lambda c: c.insert(0, c[0]),
        lambda c: c.extend([c[0]]),
        lambda c: c.clear(),
    ],
)
def test_changing_the_number_of_layers_raises(mutate):
    ours, _, _ = _pair("binary")
    coefs = ours.coefs_
    with pytest.raises(ValueError, match="number of layers cannot change"):
        mutate(coefs)
    assert len(coefs) == len(ours.coefs_) == 3


def test_reordering_layers_of_other_shapes_raises():
    ours, _, _ = _pair("binary")
    with pytest.raises(ValueError, match="has shape"):
        ours.coefs_.reverse()


def test_an_unfitted_estimator_has_no_weights_to_read_or_set():
    clf = TorchMLPClassifier()
    assert not hasattr(clf, "coefs_")
    assert not hasattr(clf, "intercepts_")
    with pytest.raises(NotFittedError, match="before setting coefs_"):
        clf.coefs_ = [np.zeros((2, 2))]
    with pytest.raises(NotFittedError, match="before setting intercepts_"):
        clf.intercepts_ = [np.zeros(2)]


def test_the_weights_are_read_from_the_network_not_stored():
    ours, _, _ = _pair("binary")
    ours.coefs_ = [c * 2 for c in ours.coefs_]
    ours.coefs_[0][:] = 1.0
    assert "coefs_" not in vars(ours) and "intercepts_" not in vars(ours)
    # Copies and pickles of the list are plain lists of arrays.
    for copied in (
        copy.copy(ours.coefs_),
        copy.deepcopy(ours.coefs_),
        pickle.loads(pickle.dumps(ours.coefs_)),
    ):
        assert type(copied) is list
        assert_array_equal(copied[0], 1.0)
    deep = copy.deepcopy(ours.coefs_)
    deep[0][:] = 0.0
    assert_array_equal(ours.coefs_[0], 1.0)


def test_edited_weights_survive_pickle_deepcopy_and_save(tmp_path):
    ours, _, X = _pair("multiclass")
    ours.coefs_[0][:, 0] = 0.0
    ours.intercepts_[1] = np.arange(3.0)
    expected = ours.predict_proba(X)
    state = ours.__getstate__()
    assert "coefs_" not in state and "intercepts_" not in state
    assert not any(
        isinstance(v, torch.Tensor | torch.nn.Module) for v in state.values()
    )
    path = tmp_path / "model.skops"
    skorchlite.save(ours, path)
    for loaded in (
        pickle.loads(pickle.dumps(ours)),
        copy.deepcopy(ours),
        skorchlite.load(path),
    ):
        assert_array_equal(loaded.coefs_[0][:, 0], 0.0)
        assert_array_equal(loaded.intercepts_[1], np.arange(3.0))
        assert_allclose(loaded.predict_proba(X), expected, rtol=1e-12)
        # A loaded copy has weights of its own.
        loaded.coefs_[0][:] = 5.0
        assert not (ours.coefs_[0] == 5.0).any()


def test_training_goes_on_from_weights_that_were_set():
    X, y = make_classification(40, 4, random_state=0)
    clf = TorchMLPClassifier((5,), solver="sgd", device="cpu", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    weights = [np.full(c.shape, 0.1) for c in clf.coefs_]
    clf.coefs_ = weights
    clf.partial_fit(X, y)
    # The optimizer trains the weights that were set: they moved, a little.
    for after, before in zip(clf.coefs_, weights, strict=True):
        assert not np.array_equal(after, before)
        assert_allclose(after, before, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_in_place_edits_raise_and_assignment_works():
    X, y = make_classification(40, 4, random_state=0)
    clf = _fit(TorchMLPClassifier((5,), max_iter=3, device="cuda"), X, y)
    with pytest.raises(ValueError, match="read-only"):
        clf.coefs_[0][:] = 0.0
    clf.coefs_[0] = np.zeros(clf.coefs_[0].shape)
    clf.intercepts_ = [np.zeros(b.shape) for b in clf.intercepts_]
    assert clf.module_[0].weight.device.type == "cuda"
    assert not clf.module_[0].weight.detach().cpu().numpy().any()
    assert_allclose(clf.predict_proba(X), 0.5)
