"""scikit-learn's estimator checks, on the defaults and on non-default settings."""

import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from skorchlite import TorchMLPClassifier, TorchMLPRegressor

# Early stopping holds out a random validation split, and dropout draws a random
# mask per row, so a weight of 3 on a row can never equal 3 copies of it: the
# two sample-weight-equivalence checks cannot hold for them by design (sklearn
# runs its own checks on MLPClassifier with neither).
WEIGHT_EQUIVALENCE_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
}
# These checks call partial_fit whenever the estimator has it. Like
# MLPClassifier's, ours raises a ValueError when called with early_stopping=True
# (and with class_weight="balanced", which needs all of y at once); the checks
# run on every other configuration.
PARTIAL_FIT_CHECKS = {
    "check_estimators_partial_fit_n_features",
    "check_fit_score_takes_y",
    "check_n_features_in_after_fitting",
}

# (estimator, the checks it cannot pass by design)
CONFIGURATIONS = [
    (TorchMLPClassifier(), set()),
    (
        TorchMLPClassifier(
            solver="sgd",
            learning_rate_init=0.01,
            learning_rate="adaptive",
            activation="tanh",
        ),
        set(),
    ),
    (
        TorchMLPClassifier(class_weight="balanced", max_grad_norm=1.0),
        PARTIAL_FIT_CHECKS,
    ),
    (TorchMLPClassifier(solver="lbfgs", hidden_layer_sizes=(20, 10)), set()),
    (TorchMLPClassifier(solver="adamw", alpha=0.01, activation="gelu"), set()),
    (
        TorchMLPClassifier(early_stopping=True, random_state=0),
        WEIGHT_EQUIVALENCE_CHECKS | PARTIAL_FIT_CHECKS,
    ),
    (TorchMLPClassifier(dropout=0.2, random_state=0), WEIGHT_EQUIVALENCE_CHECKS),
    (TorchMLPRegressor(), set()),
    (
        TorchMLPRegressor(
            solver="sgd",
            learning_rate_init=0.01,
            learning_rate="adaptive",
            activation="tanh",
        ),
        set(),
    ),
    (TorchMLPRegressor(solver="lbfgs", hidden_layer_sizes=(20, 10)), set()),
    (TorchMLPRegressor(solver="adamw", alpha=0.01, activation="gelu"), set()),
]


def _check_name(check):
    return getattr(check, "func", check).__name__


CHECKS = [
    pytest.param(estimator, check, id=f"{estimator}-{_check_name(check)}")
    for configured, excluded in CONFIGURATIONS
    for estimator, check in estimator_checks_generator(configured)
    if _check_name(check) not in excluded
]


@pytest.mark.parametrize("estimator, check", CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_excluded_check_exists():
    # A check renamed in a new sklearn must not leave a stale exclusion behind.
    names = {
        _check_name(check)
        for estimator, _ in CONFIGURATIONS
        for _, check in estimator_checks_generator(estimator)
    }
    assert WEIGHT_EQUIVALENCE_CHECKS | PARTIAL_FIT_CHECKS <= names
