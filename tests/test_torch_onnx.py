"""ONNX of TorchClassifier and TorchRegressor (a user's module): torch's
export, inlined by skl2onnx, on a module with a skip connection and a small
CNN; modules torch cannot export get torch's reason."""

import sys
import warnings

import numpy as np
import pytest
import scipy.special
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits, make_moons, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skorchlite import TorchClassifier, TorchRegressor, export_onnx

skl2onnx = pytest.importorskip("skl2onnx", reason="the onnx extra is not installed")
onnxruntime = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed"
)
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

from skorchlite import register_onnx_converters  # noqa: E402

register_onnx_converters()


class Residual(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.inner = nn.Linear(n_features_in, 8)
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, n_outputs)

    def forward(self, x):
        h = torch.tanh(self.inner(x))
        return self.head(h + torch.relu(self.block(h)))


class DigitsCNN(nn.Module):
    """8x8 digits images, flattened in X."""

    def __init__(self, n_outputs):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, n_outputs)

    def forward(self, x):
        h = torch.relu(self.conv(x.reshape(-1, 1, 8, 8)))
        return self.head(nn.functional.max_pool2d(h, 2).flatten(1))


class ItemBranch(Residual):
    def forward(self, x):
        h = super().forward(x)
        return h if h.sum().item() > 0 else -h


class CallsNumpy(Residual):
    def forward(self, x):
        h = super().forward(x).detach().numpy()
        return torch.from_numpy(scipy.special.expit(h))


def _data(kind):
    if kind == "binary":
        X, y = make_moons(60, noise=0.2, random_state=0)
        return X, np.array(["no", "yes"])[y]
    if kind == "multiclass":
        X, y = load_digits(return_X_y=True)
        return X[:200], y[:200]
    X, y = make_regression(60, n_features=4, n_targets=2, random_state=0)
    return X, y / 100


def _stand_in(kind, module_class, dtype, pipeline):
    """A fitted TorchClassifier or TorchRegressor of ``module_class`` in
    ``dtype`` (in a Pipeline after a StandardScaler or alone), and its
    training X. A module that cannot train (CallsNumpy) replaces, after fit,
    the Residual trained in its place."""
    X, y = _data(kind)
    estimator_class = TorchRegressor if kind == "regression" else TorchClassifier
    trains = module_class is not CallsNumpy
    estimator = estimator_class(
        module_class if trains else Residual, max_iter=1, dtype=dtype, random_state=0
    )
    model = make_pipeline(StandardScaler(), estimator) if pipeline else estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    if not trains:
        module = module_class(estimator.n_features_in_, estimator.n_outputs_)
        estimator.module_ = module.to(getattr(torch, dtype)).eval()
    return model, X


def _run(onx, X):
    session = onnxruntime.InferenceSession(onx.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: X})


# onnxruntime has no float64 Conv on the CPU: the CNN runs in float32.
CASES = [
    ("binary", Residual, "float32"),
    ("multiclass", DigitsCNN, "float32"),
    ("multiclass", Residual, "float64"),
    ("regression", Residual, "float32"),
    ("regression", Residual, "float64"),
]


@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, module_class, dtype", CASES)
def test_pipeline_matches_predict_and_predict_proba(
    kind, module_class, dtype, input_dtype
):
    model, X = _stand_in(kind, module_class, dtype, pipeline=True)
    X = X.astype(input_dtype)
    if kind == "regression":
        (predictions,) = _run(skl2onnx.to_onnx(model, X[:1]), X)
        assert predictions.dtype == input_dtype
        np.testing.assert_allclose(predictions, model.predict(X), rtol=0, atol=1e-5)
        return
    onx = skl2onnx.to_onnx(model, X[:1], options={"zipmap": False})
    label, proba = _run(onx, X)
    assert proba.dtype == input_dtype
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)
    assert_array_equal(label, model.predict(X))


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_estimator_alone_converts_and_is_left_alone(kind):
    model, X = _stand_in(kind, Residual, "float64", pipeline=False)
    module = model.module_
    before = [p.detach().clone() for p in module.parameters()]
    X = X.astype(np.float32)
    if kind == "regression":
        (outputs,) = _run(skl2onnx.to_onnx(model, X[:1]), X)
        expected = model.predict(X)
    else:
        _, outputs = _run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
        expected = model.predict_proba(X)
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-5)
    # Torch exported a copy: the estimator's module is unchanged.
    assert model.module_ is module and not module.training
    for parameter, value in zip(module.parameters(), before, strict=True):
        assert parameter.dtype == torch.float64
        assert_array_equal(parameter.detach().numpy(), value.numpy())


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_export_onnx_writes_the_model(kind, tmp_path):
    module_class = DigitsCNN if kind == "multiclass" else Residual
    model, X = _stand_in(kind, module_class, "float32", pipeline=True)
    export_onnx(model, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (graph_input,) = session.get_inputs()
    assert graph_input.shape == ["batch", X.shape[1]]
    outputs = session.run(None, {"X": X.astype(np.float32)})
    if kind == "regression":
        np.testing.assert_allclose(outputs[0], model.predict(X), rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(
            outputs[1], model.predict_proba(X), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("opset", [9, 15, 19])
def test_graph_is_in_the_conversions_opset_or_refused(opset):
    model, X = _stand_in("binary", Residual, "float32", pipeline=True)
    X = X.astype(np.float32)
    try:
        onx = skl2onnx.to_onnx(
            model, X[:1], target_opset=opset, options={"zipmap": False}
        )
    except ValueError as exc:
        # torch writes opset 18+, older ones where ONNX's converter can (15
        # but not 9, in torch 2.13): a mismatch is refused, never merged.
        assert opset < 15 and "Convert with target_opset >= 18" in str(exc)
        return
    assert {entry.domain: entry.version for entry in onx.opset_import}[""] == opset
    _, proba = _run(onx, X)
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "module_class, reason",
    [
        (ItemBranch, "GuardOnDataDependentSymNode: .*data-dependent"),
        (CallsNumpy, r"RuntimeError: \.numpy\(\) is not supported"),
    ],
)
def test_module_torch_cannot_export_gets_torchs_reason(module_class, reason):
    model, X = _stand_in("binary", module_class, "float32", pipeline=True)
    model.predict_proba(X)  # torch runs it; only its export fails
    message = f"torch cannot export the module {module_class.__name__} to ONNX: "
    with pytest.raises(ValueError, match=message + reason):
        skl2onnx.to_onnx(model, X[:1].astype(np.float32))
    with pytest.raises(ValueError, match=message + reason):
        export_onnx(model)


def test_missing_onnxscript_names_the_extra(monkeypatch):
    model, _ = _stand_in("binary", Residual, "float32", pipeline=False)
    # A None entry in sys.modules makes `import onnxscript` raise ImportError.
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"onnxscript.*skorchlite\[onnx\]"):
        export_onnx(model)
