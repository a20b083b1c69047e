"""Property-based tests (hypothesis): bad data, determinism, persistence.

Each property's example count is modest so that the file runs in well under a
minute; set ``SKORCHLITE_HYPOTHESIS_SCALE=20`` to try twenty times as many.
Run with ``--hypothesis-show-statistics`` to see the counts and the outcomes
(``event``) of each property.
"""

import io
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone

from skorchlite import TorchMLPClassifier, load, save

SCALE = float(os.environ.get("SKORCHLITE_HYPOTHESIS_SCALE", "1"))


def _settings(max_examples):
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Tiny networks and few epochs: each fit takes milliseconds.
TINY = {"hidden_layer_sizes": (4,), "max_iter": 5, "random_state": 0}

LABEL_VALUES = {
    "int": np.array([-3, 0, 7, 1000]),
    "str": np.array(["a", "bb", "c c", "ü"]),
    "bool": np.array([False, True]),
    "float": np.array([0.0, 1.0, 2.0, 3.0]),
    "mixed": np.array(["a", 1, "b", 2.5], dtype=object),
}

ELEMENTS = {
    "normal": st.floats(-10, 10),
    "huge": st.sampled_from([1e30, -1e30, 3.5e30, 0.0, 1.0]),
    "tiny": st.sampled_from([5e-324, -5e-324, 1e-300, 1e-30, 0.0, -1e-310]),
    "any": st.floats(allow_nan=False, allow_infinity=False),
}


@st.composite
def features(draw, n_samples):
    """X of any dtype, with special values, constant columns and NaN/inf."""
    n_features = draw(st.integers(1, 4))
    shape = (n_samples, n_features)
    kind = draw(
        st.sampled_from(
            ["float64", "float32", "float16", "int", "bool", "object", "object-str"]
        )
    )
    if kind == "int":
        return draw(hnp.arrays(np.int64, shape, elements=st.integers(-(2**62), 2**62)))
    if kind == "bool":
        return draw(hnp.arrays(np.bool_, shape))
    scale = draw(st.sampled_from(sorted(ELEMENTS)))
    X = draw(hnp.arrays(np.float64, shape, elements=ELEMENTS[scale]))
    for column in draw(st.sets(st.integers(0, n_features - 1), max_size=2)):
        X[:, column] = draw(ELEMENTS[scale])
    specials = st.tuples(
        st.integers(0, n_samples - 1),
        st.integers(0, n_features - 1),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    )
    for row, column, value in draw(st.lists(specials, max_size=2)):
        X[row, column] = value
    if kind.startswith("object"):
        X = X.astype(object)
        if kind == "object-str":
            X[draw(st.integers(0, n_samples - 1)), 0] = "x"
        return X
    with np.errstate(over="ignore"):  # 1e30 overflows float16 to inf
        return X.astype(kind)


@st.composite
def targets(draw, n_samples):
    kind = draw(st.sampled_from([*LABEL_VALUES, "multilabel"]))
    if kind == "multilabel":
        n_labels = draw(st.integers(1, 3))
        return kind, draw(
            hnp.arrays(np.int64, (n_samples, n_labels), elements=st.integers(0, 1))
        )
    values = LABEL_VALUES[kind]
    # Class codes drawn per row: imbalance down to one sample of a class, and
    # a single class, come up on their own.
    codes = draw(
        st.lists(
            st.integers(0, len(values) - 1), min_size=n_samples, max_size=n_samples
        )
    )
    return kind, values[codes]


# Why a fit on finite, numeric data with valid labels may still fail.
ACCEPTABLE_FAILURES = (
    "Training diverged at epoch",  # 1e30-scale inputs
    "L-BFGS diverged",
    "Solver produced non-finite parameter weights",
    "beyond the range of float32",  # float64 values a float32 network can't hold
    "The validation set is too small",  # early_stopping on a handful of rows
    # A validation row far beyond the training rows' scale (1e308).
    "outputs overflow to infinity or NaN on some of the rows early_stopping",
    # MLPClassifier's stratified early-stopping split of binary targets, from
    # sklearn's train_test_split: a class of one row, or too few rows.
    "The least populated class",
    "should be greater or equal to the number of classes",
)


def _is_mixed(y):
    return y.dtype == object and len({isinstance(v, str) for v in y.ravel()}) > 1


def _check_probabilities(clf, X, y):
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(clf.classes_))
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    if y.ndim == 1:
        # float32 probabilities for float32 X and network, as MLPClassifier's.
        rtol = 1e-12 if proba.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=rtol)
        assert np.isin(clf.predict(X), clf.classes_).all()


@_settings(max_examples=400)
@given(data=st.data())
@pytest.mark.filterwarnings("ignore")
def test_any_data_fits_and_predicts_probabilities_or_raises_a_clear_error(data):
    n_samples = data.draw(st.integers(1, 24), label="n_samples")
    X = data.draw(features(n_samples), label="X")
    kind, y = data.draw(targets(n_samples), label="y")
    params = data.draw(
        st.fixed_dictionaries(
            {
                "solver": st.sampled_from(["adam", "sgd", "lbfgs"]),
                "early_stopping": st.booleans(),
                "class_weight": st.sampled_from([None, "balanced"]),
                "dtype": st.sampled_from([None, "float32"]),
            }
        ),
        label="params",
    )
    clf = TorchMLPClassifier(**TINY, **params)
    # What is wrong with the data, and the words the error must then contain.
    problems = {}
    has_str = X.dtype == object and any(isinstance(v, str) for v in X.flat)
    if has_str:
        problems["string in X"] = "could not convert string to float"
    elif not np.isfinite(X.astype(np.float64)).all():
        problems["NaN/inf in X"] = "Input X contains"
    labels = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
    if _is_mixed(labels):
        problems["mixed labels"] = "Mix of label input types (string and number)"
    elif labels.dtype == object and not isinstance(labels[0], str):
        # sklearn's type_of_target rejects numbers in an object array.
        problems["object numbers"] = "Unknown label type"
    try:
        clf.fit(X, y)
    except (ValueError, TypeError) as exc:
        # torch's RuntimeError is not caught here, so it fails the test.
        message = str(exc)
        event(f"{type(exc).__name__}: {message[:50]}")
        if problems:
            assert any(words in message for words in problems.values()), problems
        else:
            # Clean data may only fail to train, with a clear reason.
            assert any(words in message for words in ACCEPTABLE_FAILURES), message
        return
    assert not problems, problems
    event(f"fitted: {kind} labels, X {X.dtype}")
    _check_probabilities(clf, X, y)


def _classification_data(seed, n_samples=40, n_classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 3))
    y = (X[:, 0] > 0).astype(int) + (n_classes > 2) * (X[:, 1] > 0.5)
    return X, y


@_settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    shuffle=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    early_stopping=st.booleans(),
    class_weight=st.sampled_from([None, "balanced"]),
    solver=st.sampled_from(["adam", "sgd", "adamw"]),
    batch_size=st.sampled_from(["auto", 7]),
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_state_makes_fits_bit_identical(
    seed, shuffle, dropout, early_stopping, class_weight, solver, batch_size
):
    X, y = _classification_data(seed % 1000)
    clf = TorchMLPClassifier(
        hidden_layer_sizes=(4,),
        max_iter=5,
        random_state=seed,
        shuffle=shuffle,
        dropout=dropout,
        early_stopping=early_stopping,
        class_weight=class_weight,
        solver=solver,
        batch_size=batch_size,
    )
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    first = clone(clf).fit(X, y)
    second = clone(clf).fit(X, y)
    assert first.predict_proba(X).tobytes() == second.predict_proba(X).tobytes()
    assert first.loss_curve_ == second.loss_curve_
    assert first.validation_scores_ == second.validation_scores_
    # Fitting never draws from the user's global generators.
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(np.random.get_state(), numpy_rng, strict=True)  # noqa: NPY002
    )


@_settings(max_examples=60)
@given(
    data=st.data(),
    label_kind=st.sampled_from(["int", "str", "bool", "float", "multilabel"]),
    solver=st.sampled_from(["adam", "sgd", "adamw", "lbfgs"]),
    dtype=st.sampled_from([None, "float32", "float64"]),
    X_dtype=st.sampled_from([np.float32, np.float64]),
    early_stopping=st.booleans(),
    dropout=st.sampled_from([0.0, 0.25]),
    hidden=st.lists(st.integers(1, 5), max_size=2).map(tuple),
    activation=st.sampled_from(["relu", "tanh", "logistic", "gelu", "identity"]),
)
@pytest.mark.filterwarnings("ignore")
def test_save_load_and_pickle_round_trips_are_bit_identical(
    data,
    label_kind,
    solver,
    dtype,
    X_dtype,
    early_stopping,
    dropout,
    hidden,
    activation,
):
    seed = data.draw(st.integers(0, 1000), label="seed")
    X, codes = _classification_data(seed, n_samples=30)
    X = X.astype(X_dtype)
    if label_kind == "multilabel":
        y = np.column_stack([codes > 0, X[:, 2] > 0]).astype(int)
    else:
        values = LABEL_VALUES[label_kind]
        y = values[codes % len(values)]
    clf = TorchMLPClassifier(
        hidden_layer_sizes=hidden,
        activation=activation,
        solver=solver,
        dtype=dtype,
        early_stopping=early_stopping,
        dropout=dropout,
        max_iter=3,
        random_state=seed,
    ).fit(X, y)
    buffer = io.BytesIO()
    save(clf, buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same device: no warning expected
        loaded = load(io.BytesIO(buffer.getvalue()))
    unpickled = pickle.loads(pickle.dumps(clf))
    expected = clf.predict_proba(X).tobytes()
    for other in (loaded, unpickled):
        assert other.predict_proba(X).tobytes() == expected
        np.testing.assert_array_equal(other.predict(X), clf.predict(X))
        assert other.classes_.dtype == clf.classes_.dtype
        assert other.n_iter_ == clf.n_iter_ and other.loss_ == clf.loss_
        # lbfgs, like MLPClassifier's, has no loss curve.
        assert getattr(other, "loss_curve_", None) == getattr(clf, "loss_curve_", None)
    event(f"{label_kind}, {solver}, module dtype {clf.module_[0].weight.dtype}")
