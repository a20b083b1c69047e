"""scikit-learn's estimator checks, on the defaults and on non-default settings."""

import pytest
from sklearn.utils.estimator_checks import (
    estimator_checks_generator,
    parametrize_with_checks,
)

from skorchlite import TorchMLPClassifier

ESTIMATORS = [
    TorchMLPClassifier(),
    TorchMLPClassifier(
        solver="sgd",
        learning_rate_init=0.01,
        learning_rate="adaptive",
        activation="tanh",
    ),
    TorchMLPClassifier(class_weight="balanced", max_grad_norm=1.0),
    TorchMLPClassifier(solver="lbfgs", hidden_layer_sizes=(20, 10)),
    TorchMLPClassifier(solver="adamw", alpha=0.01, activation="gelu"),
]


def _check_name(check):
    return getattr(check, "func", check).__name__


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# Early stopping holds out a random validation split, and dropout draws a random
# mask per row, so a weight of 3 on a row can never equal 3 copies of it: the
# two sample-weight-equivalence checks cannot hold for them by design (sklearn
# runs its own checks on MLPClassifier with neither). They are left out of the
# parametrization; every other check must pass.
WEIGHT_EQUIVALENCE_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
}
RANDOM_TRAINING_CHECKS = [
    pytest.param(estimator, check, id=f"{estimator}-{_check_name(check)}")
    for configured in [
        TorchMLPClassifier(early_stopping=True, random_state=0),
        TorchMLPClassifier(dropout=0.2, random_state=0),
    ]
    for estimator, check in estimator_checks_generator(configured)
    if _check_name(check) not in WEIGHT_EQUIVALENCE_CHECKS
]


@pytest.mark.parametrize("estimator, check", RANDOM_TRAINING_CHECKS)
def test_sklearn_checks_with_random_training(estimator, check):
    check(estimator)
