"""Fitted pipelines through the ecosystem's tools: skops and mlflow."""

import warnings

import numpy as np
import pytest
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

CLASSIFIER = "skorchlite._classifier.TorchMLPClassifier"
REGRESSOR = "skorchlite._regressor.TorchMLPRegressor"


def _data(kind):
    if kind == "binary":
        X, y = make_moons(60, noise=0.1, random_state=0)
        return X, np.array(["no", "yes"])[y]
    if kind == "multiclass":
        return make_blobs(60, n_features=3, centers=3, random_state=0)
    if kind == "multilabel":
        return make_multilabel_classification(60, n_features=4, random_state=0)
    X, y = make_regression(60, n_features=4, n_targets=2, random_state=0)
    return X, y / 100


def _pipeline(kind, **params):
    X, y = _data(kind)
    estimator_class = TorchMLPRegressor if kind == "regression" else TorchMLPClassifier
    model = make_pipeline(
        StandardScaler(),
        estimator_class(hidden_layer_sizes=(5,), max_iter=5, random_state=0, **params),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model, X


def _assert_same_predictions(restored, model, X):
    assert_array_equal(restored.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


KINDS = ["binary", "multiclass", "multilabel", "regression"]


@pytest.mark.parametrize("kind", KINDS)
def test_skops_round_trips_a_pipeline_trusting_only_our_class(kind):
    sio = pytest.importorskip("skops.io", reason="skops is an optional dependency")
    model, X = _pipeline(kind)
    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted == [REGRESSOR if kind == "regression" else CLASSIFIER]
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(data)
    restored = sio.loads(data, trusted=untrusted)
    _assert_same_predictions(restored, model, X)
    # Still trainable: the optimizer state came back too.
    restored[-1].partial_fit(restored[0].transform(X), _data(kind)[1])


def test_skops_file_with_a_crafted_state_raises_value_error():
    sio = pytest.importorskip("skops.io", reason="skops is an optional dependency")
    model, _ = _pipeline("multiclass")
    estimator = model[-1]
    # What a crafted file makes skops hand to __setstate__: classes_ unsorted.
    original = estimator.classes_
    estimator.classes_ = original[::-1].copy()
    try:
        data = sio.dumps(estimator)
    finally:
        estimator.classes_ = original
    with pytest.raises(ValueError, match="sorted and unique"):
        sio.loads(data, trusted=[CLASSIFIER])


def test_skops_round_trips_an_unfitted_estimator():
    sio = pytest.importorskip("skops.io", reason="skops is an optional dependency")
    estimator = TorchMLPClassifier((3, 2), solver="sgd", dropout=0.5)
    restored = sio.loads(sio.dumps(estimator), trusted=[CLASSIFIER])
    assert restored.get_params() == estimator.get_params()
    assert not hasattr(restored, "module_")


def test_mlflow_logs_and_loads_pipelines_in_skops_format(tmp_path, monkeypatch):
    pytest.importorskip("skops", reason="mlflow's default format needs skops")
    pytest.importorskip("mlflow", reason="mlflow is an optional dependency")
    import mlflow.pyfunc
    import mlflow.sklearn

    # mlflow 3 refuses the file store (in maintenance mode) unless allowed; a
    # database store would take seconds to migrate for one test.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    for kind in KINDS:
        trusted = REGRESSOR if kind == "regression" else CLASSIFIER
        model, X = _pipeline(kind)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                skops_trusted_types=[trusted],
                # Inferring the requirements runs a subprocess: seconds.
                pip_requirements=["skorchlite"],
            )
        restored = mlflow.sklearn.load_model(info.model_uri)
        _assert_same_predictions(restored, model, X)
        served = mlflow.pyfunc.load_model(info.model_uri)
        assert_array_equal(served.predict(X), model.predict(X))
