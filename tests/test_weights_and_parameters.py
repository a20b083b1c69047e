"""Every weight and size is checked before it can train a wrong model.

An infinite or NaN class weight used to train as if it were 0, a negative one
was accepted, weights summing to <= 0 divided the loss by a non-positive sum,
and non-integer or unallocatable hidden sizes reached torch's raw errors.
Each now raises, naming what is wrong, and leaves the estimator as it was.
"""

import copy
import math
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning


def assert_fails_unchanged(clf, X, y, error, match, **fit_params):
    """``clf.fit`` raises ``error`` matching ``match`` and changes nothing."""
    before = copy.deepcopy(vars(clf))
    proba = clf.predict_proba(X) if hasattr(clf, "module_") else None
    with pytest.raises(error, match=match):
        clf.fit(X, y, **fit_params)
    assert vars(clf).keys() == before.keys()
    if proba is not None:
        assert_array_equal(clf.predict_proba(X), proba)
        assert clf.loss_curve_ == before["loss_curve_"]


@pytest.mark.parametrize(
    ("weight", "shown"), [(math.inf, "inf"), (math.nan, "nan"), (-5, "-5")]
)
def test_class_weight_must_be_finite_and_non_negative(make_clf, moons, weight, shown):
    X, y = moons
    match = rf"^class_weight: the weight of class 0 is {shown};"
    assert_fails_unchanged(make_clf(class_weight={0: weight}), X, y, ValueError, match)


def test_an_invalid_class_weight_keeps_a_fitted_model(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(), X, y)
    clf.set_params(class_weight={1: np.float64("nan")})
    assert_fails_unchanged(clf, X, y, ValueError, "the weight of class 1 is nan")


def test_zero_and_positive_class_weights_still_train(make_clf, fit_quietly, moons):
    X, y = moons
    clf = make_clf(class_weight={0: 0.0, 1: 2}, learning_rate_init=0.05, max_iter=30)
    clf = fit_quietly(clf, X, y)
    # Class 0 weighs nothing: the model leans to class 1.
    assert clf.predict(X).mean() > 0.9


@pytest.mark.parametrize("total", [0.0, -10.0])
def test_sample_weights_summing_to_at_most_zero_are_an_error(make_clf, moons, total):
    X, y = moons
    weights = np.full(len(y), (60 + total) / 40)
    weights[:60] = -1.0  # 60 negative weights, the sum is exactly ``total``
    assert weights.sum() == total
    match = r"sample_weight sums to .* \(60 of 100 weights are negative\)"
    assert_fails_unchanged(make_clf(), X, y, ValueError, match, sample_weight=weights)


def test_negative_sample_weights_with_a_positive_sum_train(
    make_clf, fit_quietly, moons
):
    # As in MLPClassifier, which accepts them.
    X, y = moons
    weights = np.ones(len(y))
    weights[:5] = -0.5
    clf = fit_quietly(make_clf(), X, y, sample_weight=weights)
    assert np.isfinite(clf.loss_)


def test_class_weights_that_zero_every_row_are_an_error(make_clf, moons):
    X, y = moons
    match = r"sample_weight \* class_weight sums to 0\.0"
    assert_fails_unchanged(
        make_clf(class_weight={0: 0, 1: 0.0}), X, y, ValueError, match
    )


@pytest.mark.parametrize(
    ("sizes", "shown"),
    [
        ((2.5,), "2.5 is of type float"),
        (("a",), "'a' is of type str"),
        ((4, True), "True is of type bool"),
    ],
)
def test_hidden_layer_sizes_must_be_integers(make_clf, moons, sizes, shown):
    X, y = moons
    match = (
        re.escape("hidden_layer_sizes must hold positive integers")
        + ".*"
        + (re.escape(shown))
    )
    assert_fails_unchanged(make_clf(hidden_layer_sizes=sizes), X, y, ValueError, match)


def test_integer_types_are_accepted_as_sizes(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(hidden_layer_sizes=np.array([6, 3])), X, y)
    assert [layer.out_features for layer in clf.module_[::2]] == [6, 3, 1]


@pytest.mark.parametrize("warm", [False, True])
def test_a_network_too_large_to_allocate_is_a_memory_error(make_clf, moons, warm):
    # 10**12 units: 4e12 float64 weights on moons' 2 features and 1 output.
    X, y = moons
    clf = make_clf()
    if warm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    clf.set_params(hidden_layer_sizes=(10**12,))
    n_bytes = (2 + 1 + 1) * 10**12 * 8 + 8
    match = re.escape(f"needs {n_bytes:,} bytes")
    assert_fails_unchanged(clf, X, y, MemoryError, match)


def test_a_memory_error_names_the_dtype(make_clf, moons):
    X, y = moons
    with pytest.raises(MemoryError, match=r"bytes \(.*\) in torch\.float32") as caught:
        make_clf(hidden_layer_sizes=(10**12,)).fit(X.astype(np.float32), y)
    # The cause stays attached for whoever debugs the allocator.
    assert isinstance(caught.value.__cause__, RuntimeError | MemoryError)
