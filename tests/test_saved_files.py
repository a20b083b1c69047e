"""Files saved before the one-engine refactor load, predict and train on.

``tests/data/saved_before_one_engine`` holds pickles and skops files that
commit 0e82c54 saved (``make_files.py`` there), with their predictions, and
their predictions after one more ``partial_fit``: the solver state they hold
(torch's Adam/AdamW/SGD state then) must carry over into today's engine.
"""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import skorchlite

FILES = Path(__file__).parent / "data" / "saved_before_one_engine"
EXPECTED = np.load(FILES / "expected.npz")
X = EXPECTED["X"]
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def _load(name, kind):
    if kind == "skops":
        pytest.importorskip("skops", reason="skops is an optional dependency")
        return skorchlite.load(FILES / f"{name}.skops")
    # Our own file, made by make_files.py: trusted.
    return pickle.loads((FILES / f"{name}.pkl").read_bytes())


@pytest.mark.parametrize("kind", ["pkl", "skops"])
@pytest.mark.parametrize("solver", ["adam", "adamw", "sgd", "lbfgs"])
def test_a_file_saved_before_loads_and_trains_on(solver, kind):
    clf = _load(solver, kind)
    assert_allclose(clf.predict_proba(X), EXPECTED[f"{solver}_proba"], rtol=1e-12)
    if solver == "lbfgs":
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X, Y)
    # The same kernels from the same state: equal up to rounding.
    assert_allclose(
        clf.predict_proba(X),
        EXPECTED[f"{solver}_proba_after_partial_fit"],
        rtol=1e-9,
        atol=1e-12,
    )


def test_a_regressor_file_saved_before_loads():
    reg = _load("regressor", "skops")
    assert_allclose(reg.predict(X), EXPECTED["regressor_predict"], rtol=1e-12)


def test_a_changed_module_pickled_before_with_torchs_optimizer_state_loads():
    clf = _load("custom_module", "pkl")
    assert_allclose(clf.predict_proba(X), EXPECTED["custom_proba"], rtol=1e-12)
    clf.partial_fit(X, Y)
    assert_allclose(
        clf.predict_proba(X),
        EXPECTED["custom_proba_after_partial_fit"],
        rtol=1e-9,
        atol=1e-12,
    )
