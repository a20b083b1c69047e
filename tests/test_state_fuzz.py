"""Property: a mutated pickled state restores, or raises ValueError; no crash.

skops hands a file's values to ``__setstate__`` unchanged, so each mutation
below (any value of the state, nested ones included, replaced by an array of
another shape or dtype, a number, a string, a container or None) is one a
crafted file can make. A restored model must then predict and train on (or
raise ValueError): nothing reaches torch unchecked.
``SKORCHLITE_HYPOTHESIS_SCALE=10`` runs ten times the examples.
"""

import copy
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import make_classification

from skorchlite import TorchMLPClassifier

SCALE = float(os.environ.get("SKORCHLITE_HYPOTHESIS_SCALE", "1"))
X, Y = make_classification(40, n_features=3, n_informative=2, n_redundant=0)


def _fitted_states():
    states = {}
    for solver in ("adam", "sgd"):
        clf = TorchMLPClassifier((4,), solver=solver, max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, Y)
        states[solver] = clf.__getstate__()
    return states


STATES = _fitted_states()


def _paths(value, path=()):
    """Every position in the state: keys of dicts, indices of lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _paths(item, (*path, index))


PATHS = {solver: sorted(_paths(state), key=repr) for solver, state in STATES.items()}

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
REPLACEMENTS = st.one_of(
    hnp.arrays(st.sampled_from(["float64", "float32", "int64", "bool", "<U3"]), SHAPES),
    hnp.arrays(object, SHAPES, elements=st.none() | st.integers() | st.text()),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(-2, 8), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=max(1, int(150 * SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), solver=st.sampled_from(sorted(STATES)))
def test_mutated_state_restores_or_raises_value_error(data, solver):
    path = data.draw(st.sampled_from(PATHS[solver]), label="path")
    replacement = data.draw(REPLACEMENTS, label="replacement")
    state = copy.deepcopy(STATES[solver])
    container = state
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = replacement
    estimator = TorchMLPClassifier.__new__(TorchMLPClassifier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.__setstate__(state)
        except ValueError:
            event("rejected")
            return
        event("restored")
        # Restored: it predicts probabilities and trains on, or says why not.
        try:
            proba = estimator.predict_proba(X)
            assert proba.shape == (len(X), 2)
            assert np.isfinite(proba).all()
            estimator.partial_fit(X, Y)
        except ValueError:
            event("restored, then ValueError")


def test_the_paths_cover_weights_and_optimizer_state():
    flat = {path[:2] for path in PATHS["adam"]}
    assert ("_module_state", "arrays") in flat
    assert ("_optimizer_state", "parameters") in flat
    assert ("classes_",) in flat
    pytest.importorskip("hypothesis")
