"""skl2onnx converts Pipelines holding our estimators; onnxruntime agrees."""

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import (
    make_blobs,
    make_moons,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import TorchMLPClassifier, TorchMLPRegressor
from skorchlite._engine.activations import ACTIVATIONS

skl2onnx = pytest.importorskip("skl2onnx", reason="the onnx extra is not installed")
onnxruntime = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed"
)

from skorchlite import register_onnx_converters  # noqa: E402

register_onnx_converters()

KINDS = ["binary", "multiclass", "multilabel", "regression"]


def _data(kind):
    if kind == "binary":
        X, y = make_moons(80, noise=0.2, random_state=0)
        y = np.array(["no", "yes"])[y]
    elif kind == "multiclass":
        X, y = make_blobs(80, n_features=3, centers=4, random_state=0)
        y = y * 10
    elif kind == "multilabel":
        X, y = make_multilabel_classification(80, n_features=4, random_state=0)
    else:
        X, y = make_regression(80, n_features=4, n_targets=2, random_state=0)
        y = y / 100
    return X.astype(np.float32), y


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _pipeline(kind, activation="relu", **params):
    X, y = _data(kind)
    estimator_class = TorchMLPRegressor if kind == "regression" else TorchMLPClassifier
    estimator = estimator_class(
        hidden_layer_sizes=(6, 5),
        activation=activation,
        max_iter=20,
        random_state=0,
        **params,
    )
    return _fit(make_pipeline(StandardScaler(), estimator), X, y), X


def _run(onx, X):
    session = onnxruntime.InferenceSession(onx.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: X})


# The activation only changes the hidden layers and the target only the head:
# every activation on a multiclass model, every target with relu.
CASES = [(activation, "multiclass") for activation in sorted(ACTIVATIONS)] + [
    ("relu", kind) for kind in KINDS if kind != "multiclass"
]


@pytest.mark.parametrize("activation, kind", CASES)
def test_onnxruntime_matches_predict_and_predict_proba(activation, kind):
    model, X = _pipeline(kind, activation)
    if kind == "regression":
        (predictions,) = _run(skl2onnx.to_onnx(model, X[:1]), X)
        np.testing.assert_allclose(predictions, model.predict(X), rtol=0, atol=1e-5)
        return
    expected_proba = model.predict_proba(X)
    label, proba = _run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
    assert_array_equal(label, model.predict(X))
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected_proba, rtol=0, atol=1e-5)
    # zipmap: one {class: probability} dict per row, keyed by classes_.
    label, rows = _run(skl2onnx.to_onnx(model, X[:1]), X)
    assert_array_equal(label, model.predict(X))
    classes = list(range(expected_proba.shape[1]))
    if kind != "multilabel":
        classes = model.classes_.tolist()
    zipped = np.array([[row[c] for c in classes] for row in rows])
    np.testing.assert_allclose(zipped, expected_proba, rtol=0, atol=1e-5)


def test_float64_input_gives_float64_outputs_of_a_float64_model():
    X, y = _data("multiclass")
    X = X.astype(np.float64)
    model = _fit(make_pipeline(StandardScaler(), TorchMLPClassifier((6,))), X, y)
    label, proba = _run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
    assert proba.dtype == np.float64
    assert_array_equal(label, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-12)


def test_float64_weights_beyond_float32_are_refused_not_exported_as_inf():
    X, y = _data("binary")
    clf = _fit(TorchMLPClassifier((4,), max_iter=5, random_state=0), X.astype(float), y)
    with torch.no_grad():
        clf.module_[0].weight[0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond the range of float32"):
        skl2onnx.to_onnx(clf, X[:1].astype(np.float32))
    # float64 input holds them.
    label, _ = _run(
        skl2onnx.to_onnx(clf, X[:1].astype(np.float64), options={"zipmap": False}),
        X.astype(np.float64),
    )
    assert_array_equal(label, clf.predict(X.astype(np.float64)))


def test_nocl_labels_rows_by_class_index():
    model, X = _pipeline("multiclass")
    options = {"zipmap": False, "nocl": True}
    label, _ = _run(skl2onnx.to_onnx(model, X[:1], options=options), X)
    assert_array_equal(model[-1].classes_[label], model.predict(X))


def test_dropout_and_poisson_convert():
    model, X = _pipeline("multiclass", dropout=0.3)
    label, _ = _run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
    assert_array_equal(label, model.predict(X))
    X, y = _data("regression")
    reg = _fit(
        TorchMLPRegressor(hidden_layer_sizes=(4,), loss="poisson", max_iter=20),
        X,
        np.abs(y[:, 0]),
    )
    (predictions,) = _run(skl2onnx.to_onnx(reg, X[:1]), X)
    np.testing.assert_allclose(predictions[:, 0], reg.predict(X), rtol=1e-5)


def test_single_class_classifier_is_refused():
    X, _ = _data("binary")
    clf = _fit(TorchMLPClassifier((3,), max_iter=2), X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="single class"):
        skl2onnx.to_onnx(clf, X[:1])
