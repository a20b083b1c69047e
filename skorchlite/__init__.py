"""skorchlite: scikit-learn's MLPClassifier and MLPRegressor, trained as real
torch.nn.Modules."""

from ._classifier import TorchMLPClassifier
from ._onnx import export_onnx
from ._persistence import load, save
from ._regressor import TorchMLPRegressor
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
    "TorchMLPClassifier",
    "TorchMLPRegressor",
    "__version__",
    "export_onnx",
    "load",
    "plot_decision_boundaries",
    "register_onnx_converters",
    "save",
]
