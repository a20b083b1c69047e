"""export_onnx: the graph run by onnxruntime reproduces predict / predict_proba."""

import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs, make_moons, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skorchlite import TorchMLPClassifier, export_onnx
from skorchlite._device import resolve_device

pytest.importorskip("onnx", reason="export_onnx needs the onnx extra")
pytest.importorskip("skl2onnx", reason="export_onnx needs the onnx extra")
ort = pytest.importorskip("onnxruntime", reason="running the graph needs onnxruntime")


def _binary():
    X, y = make_moons(120, noise=0.2, random_state=0)
    # String labels: the graph must hand them back, not class indices.
    return X, np.array(["no", "yes"])[y]


def _multiclass():
    return make_blobs(150, n_features=5, centers=4, random_state=0)


def _multilabel():
    return make_multilabel_classification(
        120, n_features=6, n_classes=3, random_state=0
    )


CASES = {
    "binary": (_binary, {}, "X"),
    # Dropout must vanish from the exported (inference) graph.
    "multiclass": (_multiclass, {"dropout": 0.3}, "X"),
    "multilabel": (_multilabel, {}, "features"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    """A float64-trained model, its training data and its exported graph."""
    make_data, params, input_name = CASES[request.param]
    X, y = make_data()
    clf = TorchMLPClassifier(
        (16,),
        max_iter=30,
        learning_rate_init=0.01,
        dtype="float64",  # the graph is float32 anyway
        random_state=0,
        **params,
    )
    with pytest.warns(ConvergenceWarning):  # few epochs, on purpose
        clf.fit(X, y)
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    export_onnx(clf, path, input_name=input_name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return clf, X, session, input_name


def _run(session, input_name, X):
    label, proba = session.run(["label", "probabilities"], {input_name: X})
    return label, proba


@pytest.mark.parametrize("n_rows", [1, 7, 120])
def test_outputs_match_predict_proba_and_predict(exported, n_rows):
    clf, X, session, input_name = exported
    X = X[:n_rows]
    label, proba = _run(session, input_name, X.astype(np.float32))

    expected = clf.predict_proba(X)
    assert proba.shape == expected.shape == (n_rows, len(clf.classes_))
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)

    # float32 may flip a label whose logit is ~0; compare the others exactly.
    decision = clf.decision_function(X).reshape(n_rows, -1)
    clear = np.abs(decision).min(axis=1) > 1e-4
    predicted = clf.predict(X)
    assert label.shape == predicted.shape
    np.testing.assert_array_equal(label[clear], predicted[clear])


def test_graph_signature(exported):
    clf, _, session, input_name = exported
    (graph_input,) = session.get_inputs()
    assert graph_input.name == input_name
    assert graph_input.type == "tensor(float)"
    batch, width = graph_input.shape
    assert isinstance(batch, str)  # symbolic: any number of rows
    assert width == clf.n_features_in_
    assert [output.name for output in session.get_outputs()] == [
        "label",
        "probabilities",
    ]


def test_wrong_feature_count_is_rejected(exported):
    clf, _, session, input_name = exported
    too_wide = np.zeros((3, clf.n_features_in_ + 1), dtype=np.float32)
    with pytest.raises(Exception, match=r"(?i)invalid dimensions"):
        session.run(None, {input_name: too_wide})


def test_export_leaves_the_estimator_alone(exported):
    clf, X, _, _ = exported
    before = clf.predict_proba(X)
    # The graph is float32 whatever the training precision; the estimator keeps
    # its float64 module, on its device (the export works on a CPU copy).
    assert clf.module_[0].weight.dtype == torch.float64
    assert clf.module_[0].weight.device.type == resolve_device(clf.device).type
    assert clf.module_.training is False
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_returns_model_without_writing_when_path_is_none(tmp_path, monkeypatch):
    import onnx

    X, y = _multiclass()
    clf = TorchMLPClassifier((4,), max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    monkeypatch.chdir(tmp_path)
    model = export_onnx(clf)
    assert isinstance(model, onnx.ModelProto)
    assert list(tmp_path.iterdir()) == []
    assert model.producer_name == "skorchlite"
    session = ort.InferenceSession(model.SerializeToString())
    label, proba = session.run(None, {"X": X.astype(np.float32)})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=1e-5)
    assert label.dtype == clf.classes_.dtype


def test_unfitted_estimator_raises():
    with pytest.raises(NotFittedError):
        export_onnx(TorchMLPClassifier(), "never.onnx")


def test_non_estimator_raises_type_error():
    from sklearn.neural_network import MLPClassifier

    with pytest.raises(TypeError, match="expects a fitted TorchMLPClassifier"):
        export_onnx(MLPClassifier(), "never.onnx")


@pytest.fixture(scope="module")
def tiny_model():
    X, y = _multiclass()
    with pytest.warns(ConvergenceWarning):
        return TorchMLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("missing", ["onnx", "skl2onnx"])
def test_missing_dependency_names_the_extra(tiny_model, missing, monkeypatch):
    # A None entry in sys.modules makes `import name` raise ImportError.
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError, match=r"pip install skorchlite\[onnx\]") as info:
        export_onnx(tiny_model)
    assert f"'{missing}'" in str(info.value)


def test_pipeline_exports_with_its_preprocessing():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _binary()
    pipe = make_pipeline(StandardScaler(), TorchMLPClassifier((4,), max_iter=5))
    with pytest.warns(ConvergenceWarning):
        pipe.fit(X * 100 + 50, y)
    session = ort.InferenceSession(export_onnx(pipe).SerializeToString())
    X32 = (X * 100 + 50).astype(np.float32)
    label, proba = session.run(["label", "probabilities"], {"X": X32})
    np.testing.assert_array_equal(label, pipe.predict(X32))
    np.testing.assert_allclose(proba, pipe.predict_proba(X32), rtol=0, atol=1e-5)
