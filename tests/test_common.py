"""scikit-learn's estimator checks, on the defaults and on non-default settings."""

from sklearn.utils.estimator_checks import parametrize_with_checks

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


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# Early stopping holds out a random validation split, so a weight of 3 on a row
# can never equal 3 copies of it (the copies may land on both sides of the
# split): the two sample-weight-equivalence checks cannot hold for it by
# design, and sklearn runs its own checks on MLPClassifier without early
# stopping. Every other check must pass.
WEIGHT_EQUIVALENCE_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
}


@parametrize_with_checks(
    [
        TorchMLPClassifier(early_stopping=True, random_state=0),
        TorchMLPClassifier(dropout=0.2, random_state=0),
    ]
)
def test_sklearn_checks_with_random_training(estimator, check):
    if check.func.__name__ in WEIGHT_EQUIVALENCE_CHECKS:
        return
    check(estimator)
