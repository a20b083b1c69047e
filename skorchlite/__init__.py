"""skorchlite: scikit-learn's MLPClassifier, trained as a real torch.nn.Module."""

from ._classifier import TorchMLPClassifier

__version__ = "0.1.0"

__all__ = ["TorchMLPClassifier", "__version__"]
