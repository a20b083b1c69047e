"""scikit-learn's own MLP tests, run against TorchMLPClassifier and
TorchMLPRegressor.

The installed scikit-learn's ``neural_network/tests/test_mlp.py`` is read at
test time (never copied here), its import of ``MLPClassifier`` and
``MLPRegressor`` is replaced by ours, and every test in it is collected, but
for the exclusions below.
"""

import importlib.util
import inspect
from pathlib import Path

import pytest
import sklearn

SKLEARN_TEST_FILE = Path(sklearn.__file__).parent / "neural_network/tests/test_mlp.py"
SKLEARN_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor\n"
OUR_IMPORT = (
    "from skorchlite import TorchMLPClassifier as MLPClassifier\n"
    "from skorchlite import TorchMLPRegressor as MLPRegressor\n"
)

# Tests that drive MLPClassifier's numpy internals, which have no counterpart in
# a torch module; tests/test_mlp_port.py compares ours with MLPClassifier there.
EXCLUDED = {
    "test_fit": "sets coefs_/intercepts_ by hand and calls the private _fit "
    "with numpy activation lists (ported: test_one_sgd_step_matches_mlpclassifier)",
    "test_gradient": "calls the private _loss_grad_lbfgs/_forward_pass numpy "
    "helpers (our gradients are checked against autograd in test_backprop.py)",
    # sklearn reads its SGDOptimizer's learning_rate attribute; ours is a torch
    # optimizer, so test_mlp_port.py pins the same schedules by comparing the
    # weights with MLPClassifier's after the same calls.
    "test_adaptive_learning_rate": "reads the private _optimizer.learning_rate "
    "(ported: test_adaptive_learning_rate_matches_mlpclassifier)",
    "test_learning_rate_warmstart": "reads the private _optimizer.learning_rate "
    "(ported: test_learning_rate_warmstart_matches_mlpclassifier)",
}


def _load_sklearn_tests():
    source = SKLEARN_TEST_FILE.read_text()
    if SKLEARN_IMPORT not in source:
        raise RuntimeError(
            f"{SKLEARN_TEST_FILE} no longer imports the MLPs as expected "
            f"({SKLEARN_IMPORT.strip()!r}); update {__name__}."
        )
    spec = importlib.util.spec_from_loader("sklearn_test_mlp", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(SKLEARN_TEST_FILE)
    code = compile(source.replace(SKLEARN_IMPORT, OUR_IMPORT), module.__file__, "exec")
    exec(code, vars(module))
    return module


module = _load_sklearn_tests()
SKLEARN_TESTS = {
    name: test
    for name, test in vars(module).items()
    if name.startswith("test_") and inspect.isfunction(test)
}
globals().update(
    {name: test for name, test in SKLEARN_TESTS.items() if name not in EXCLUDED}
)


@pytest.fixture
def global_random_seed():
    """sklearn's fixture (from its conftest), with its default seed."""
    return 42


def test_the_exclusions_are_sklearn_tests():
    # A renamed or removed test in a new sklearn must not leave a stale reason.
    assert set(EXCLUDED) <= set(SKLEARN_TESTS)
