"""skorchlite: scikit-learn's MLPClassifier and MLPRegressor, trained as real
torch.nn.Modules, and the same estimators for any module of your own."""

from ._classifier import TorchClassifier, TorchMLPClassifier
from ._onnx import export_onnx
from ._persistence import load, save
from ._regressor import TorchMLPRegressor, TorchRegressor
from ._skl2onnx import register_onnx_converters
from .model_selection import (
    BatchedGridSearchCV,
    BatchedHalvingGridSearchCV,
    BatchedHalvingRandomSearchCV,
    BatchedRandomizedSearchCV,
)
from .plotting import LossCurveDisplay, plot_decision_boundaries

__version__ = "0.1.0"

__all__ = [
    "BatchedGridSearchCV",
    "BatchedHalvingGridSearchCV",
    "BatchedHalvingRandomSearchCV",
    "BatchedRandomizedSearchCV",
    "LossCurveDisplay",
    "TorchClassifier",
    "TorchMLPClassifier",
    "TorchMLPRegressor",
    "TorchRegressor",
    "__version__",
    "export_onnx",
    "load",
    "plot_decision_boundaries",
    "register_onnx_converters",
    "save",
]
