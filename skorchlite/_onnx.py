"""Export a fitted TorchMLPClassifier to an ONNX graph, for runtimes without torch.

The graph has one float32 input, ``X`` of shape (batch, n_features_in_), and two
outputs: ``label`` (what ``predict`` returns) and ``probabilities`` (what
``predict_proba`` returns). It is produced by torch's own exporter
(``torch.onnx.export(..., dynamo=True)``, built on ``torch.export``); the class
labels are then gathered from a constant holding ``classes_``, so string labels
survive the trip.
"""

import copy
import importlib
import logging
import warnings
from contextlib import contextmanager

import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

_EXTRA_HINT = "Install the optional dependencies with: pip install skorchlite[onnx]"
_MIN_TORCH = "2.6"


class _Exported(nn.Module):
    """The fitted network followed by its target's link and decoding."""

    def __init__(self, module, target):
        super().__init__()
        self.module = module
        self.target = target

    def forward(self, X):
        return self.target.export(self.module(X))


def export_onnx(estimator, path=None, *, input_name="X", opset_version=None):
    """Write a fitted :class:`TorchMLPClassifier` or :class:`TorchMLPRegressor`
    as an ONNX model.

    The model runs in onnxruntime (or any ONNX runtime) without Python or
    torch. It computes in float32, whatever precision the estimator trained in:
    float32 is what every runtime and accelerator supports, and its
    probabilities agree with ``predict_proba`` to about 1e-6.

    Parameters
    ----------
    estimator : TorchMLPClassifier or TorchMLPRegressor
        A fitted estimator (binary, multiclass, multilabel or regression).
    path : str or os.PathLike, default=None
        Where to write the ``.onnx`` file; None only returns the model.
    input_name : str, default="X"
        Name of the graph's input.
    opset_version : int, default=None
        ONNX opset to target; None lets torch choose its default.

    Returns
    -------
    model : onnx.ModelProto
        The graph. Its input ``input_name`` is float32 of shape
        (batch, ``n_features_in_``), with a dynamic batch dimension and the feature
        count fixed, so runtimes reject a wrong width. Its outputs are
        ``label``, of shape (batch,) holding values of ``classes_`` (for
        multilabel targets, an int64 0/1 matrix of shape (batch, n_labels)),
        and ``probabilities``, float32 of shape (batch, n_classes) like
        ``predict_proba``; a regressor's one output is ``predictions``, float32
        of the shape of ``predict``'s.

    Raises
    ------
    ImportError
        If onnx or onnxscript (used by torch's exporter) is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from sklearn.datasets import make_blobs
    >>> from skorchlite import TorchMLPClassifier, export_onnx
    >>> X, y = make_blobs(100, centers=3, random_state=0)
    >>> clf = TorchMLPClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
    >>> model = export_onnx(clf, "blobs.onnx")  # doctest: +SKIP
    >>> model = export_onnx(clf)
    >>> session = onnxruntime.InferenceSession(model.SerializeToString())
    >>> label, proba = session.run(None, {"X": X[:5].astype(np.float32)})
    >>> bool((label == clf.predict(X[:5])).all())
    True
    >>> bool(np.allclose(proba, clf.predict_proba(X[:5]), atol=1e-5))
    True
    """
    from ._base import BaseTorchMLP

    if not isinstance(estimator, BaseTorchMLP):
        raise TypeError(
            "export_onnx expects a fitted TorchMLPClassifier or TorchMLPRegressor, "
            f"got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    if getattr(estimator._target, "single_class", False):
        raise ValueError(
            "This classifier was fitted on a single class "
            f"({estimator.classes_[0]!r}), which it always predicts; there is no "
            "decision to export. Fit it on at least two classes."
        )
    onnx = _require("onnx")
    _require("onnxscript")
    if torch.__version__ < _MIN_TORCH:
        raise ImportError(
            f"export_onnx needs torch>={_MIN_TORCH} for its torch.export-based "
            f"ONNX exporter; torch {torch.__version__} is installed."
        )
    target = estimator._target
    module = copy.deepcopy(estimator.module_).to("cpu", torch.float32).eval()
    wrapper = _Exported(module, target).eval()
    example = torch.zeros(2, estimator.n_features_in_, dtype=torch.float32)
    with _quiet_exporter():
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[input_name],
            output_names=list(target.export_names),
            dynamic_shapes={"X": {0: torch.export.Dim("batch")}},
            opset_version=opset_version,
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    if target.export_labels is not None:
        _gather_class_labels(model, target.export_labels, onnx)
    model.producer_name = "skorchlite"
    model.doc_string = (
        f"{type(estimator).__name__} ({target.name}) exported by skorchlite."
    )
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save_model(model, path)
    return model


def _gather_class_labels(model, classes, onnx):
    """Turn the ``label`` output from class indices into ``classes[indices]``."""
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["label_index" if o == "label" else o for o in node.output]
    table = onnx.numpy_helper.from_array(_onnx_compatible(classes), "classes")
    graph.initializer.append(table)
    graph.node.append(
        onnx.helper.make_node("Gather", ["classes", "label_index"], ["label"], axis=0)
    )
    label = next(output for output in graph.output if output.name == "label")
    label.type.tensor_type.elem_type = table.data_type


def _onnx_compatible(classes):
    # ONNX has one string type; numpy's fixed-width unicode maps onto it.
    if classes.dtype.kind in "UO":
        return classes.astype(object)
    return classes


def _require(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"export_onnx needs the '{name}' package, which is not installed. "
            f"{_EXTRA_HINT}"
        ) from exc


@contextmanager
def _quiet_exporter():
    """Silence torch's own exporter chatter that users can do nothing about.

    The registration logger warns about a missing torchvision, and torch's
    pytree machinery raises a FutureWarning from inside torch.export.
    """
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)"
            )
            yield
    finally:
        registration.setLevel(level)
