"""Export a fitted estimator, or a Pipeline holding one, to an ONNX graph.

A thin wrapper over skl2onnx (:mod:`skorchlite._skl2onnx` registers our
converters), so a Pipeline's preprocessing converts with the model. An MLP's
graph is written from the fitted arrays, without torch's exporter (which takes
seconds and needs onnxscript); that of any other torch module (TorchClassifier,
TorchRegressor) is torch's export of it (:mod:`skorchlite._torch_onnx`). The
wrapper fixes the output names: ``label`` and ``probabilities`` for a
classifier (no ZipMap), ``predictions`` for a regressor, of the shape of
``predict``'s.
"""

import importlib

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

_EXTRA_HINT = "Install the optional dependencies with: pip install skorchlite[onnx]"


def export_onnx(estimator, path=None, *, input_name="X", opset_version=None):
    """Write a fitted estimator (ours, or a Pipeline ending in ours) as ONNX.

    The model runs in onnxruntime (or any ONNX runtime) without Python or
    torch. Its input and outputs are float32, whatever precision the
    estimator trained in: float32 is what every runtime and accelerator
    supports, and its probabilities agree with ``predict_proba`` to about
    1e-6. An MLP computes in float32; any other torch module in its own
    precision, between casts. For float64
    input or ZipMap outputs, call ``skl2onnx.to_onnx`` yourself after
    registering our converters (see :ref:`onnx`).

    Parameters
    ----------
    estimator : TorchMLPClassifier, TorchMLPRegressor, TorchClassifier, \
TorchRegressor or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one
        (binary, multiclass, multilabel or regression).
    path : str or os.PathLike, default=None
        Where to write the ``.onnx`` file; None only returns the model.
    input_name : str, default="X"
        Name of the graph's input.
    opset_version : int, default=None
        ONNX opset to target; None lets skl2onnx choose (the newest it knows).

    Returns
    -------
    model : onnx.ModelProto
        The graph. Its input ``input_name`` is float32 of shape
        (batch, ``n_features_in_``), with a dynamic batch dimension and the
        feature count fixed, so runtimes reject a wrong width. Its outputs are
        ``label``, of shape (batch,) holding values of ``classes_`` (for
        multilabel targets, an int64 0/1 matrix of shape (batch, n_labels)),
        and ``probabilities``, float32 of shape (batch, n_classes) like
        ``predict_proba``; a regressor's one output is ``predictions``, float32
        of the shape of ``predict``'s.

    Raises
    ------
    TypeError
        If ``estimator`` is neither ours nor a Pipeline ending in ours.
    ValueError
        If a weight of a float64 MLP is beyond float32's range, a classifier
        saw a single class, or torch cannot export the module (the message
        gives torch's reason).
    ImportError
        If onnx or skl2onnx (or, for a module other than an MLP's,
        onnxscript) is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skorchlite import TorchMLPClassifier, export_onnx
    >>> X, y = make_blobs(100, centers=3, random_state=0)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = TorchMLPClassifier((8,), solver="lbfgs", alpha=0.01, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> model = export_onnx(clf, "blobs.onnx")  # doctest: +SKIP
    >>> model = export_onnx(clf)
    >>> session = onnxruntime.InferenceSession(model.SerializeToString())
    >>> label, proba = session.run(None, {"X": X[:5].astype(np.float32)})
    >>> bool((label == clf.predict(X[:5])).all())
    True
    >>> bool(np.allclose(proba, clf.predict_proba(X[:5]), atol=1e-5))
    True
    """
    final = _final_estimator(estimator)
    check_is_fitted(estimator)
    onnx = _require("onnx")
    skl2onnx = _require("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    from ._skl2onnx import register_onnx_converters

    register_onnx_converters()
    n_features = estimator.n_features_in_
    model = skl2onnx.convert_sklearn(
        estimator,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        options={id(final): {"zipmap": False}} if hasattr(final, "classes_") else None,
        target_opset=opset_version,
    )
    graph = model.graph
    if hasattr(final, "classes_"):
        _rename_outputs(graph, ["label", "probabilities"])
    else:
        _rename_outputs(graph, ["predictions"])
        if final.n_outputs_ == 1:
            _flatten_output(graph, onnx)
    for value in [*graph.input, *graph.output]:
        batch = value.type.tensor_type.shape.dim[0]
        if not batch.HasField("dim_value"):
            batch.dim_param = "batch"
    model.producer_name = "skorchlite"
    model.doc_string = f"{type(estimator).__name__} exported by skorchlite."
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save_model(model, path)
    return model


def _final_estimator(estimator):
    from ._base import BaseTorchEstimator

    final = estimator
    while hasattr(final, "steps"):  # Pipeline, nested or not
        final = final.steps[-1][1]
    if not isinstance(final, BaseTorchEstimator) or not isinstance(
        estimator, BaseEstimator
    ):
        raise TypeError(
            "export_onnx expects a fitted TorchMLPClassifier, TorchMLPRegressor, "
            "TorchClassifier or TorchRegressor, or a Pipeline ending in one, got "
            f"{type(estimator).__name__}."
        )
    return final


def _rename_outputs(graph, names):
    renames = {
        output.name: name for output, name in zip(graph.output, names, strict=True)
    }
    for node in graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
    for output in graph.output:
        output.name = renames[output.name]


def _flatten_output(graph, onnx):
    """(batch, 1) predictions to (batch,), as ``predict`` returns them."""
    for node in graph.node:
        node.output[:] = [
            "predictions_2d" if name == "predictions" else name for name in node.output
        ]
    graph.initializer.append(
        onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape")
    )
    graph.node.append(
        onnx.helper.make_node(
            "Reshape", ["predictions_2d", "flat_shape"], ["predictions"]
        )
    )
    shape = graph.output[0].type.tensor_type.shape
    del shape.dim[1:]


def _require(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"export_onnx needs the '{name}' package, which is not installed. "
            f"{_EXTRA_HINT}"
        ) from exc
