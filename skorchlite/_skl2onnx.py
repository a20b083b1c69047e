"""skl2onnx converters for our estimators.

After :func:`register_onnx_converters`, ``skl2onnx.to_onnx`` converts our
estimators alone or inside a Pipeline (or any meta-estimator skl2onnx
handles), with the options skl2onnx gives classifiers (``zipmap``). An MLP's
graph is written from the fitted arrays (:func:`skorchlite._state.module_state`),
never from torch: Linear layers become MatMul + Add, activations their ONNX
operators, and the target's head what ``predict`` / ``predict_proba``
compute. It computes in the input's precision (float32 or float64). The
graph of any other torch module (TorchClassifier, TorchRegressor) is torch's
export of it (:mod:`skorchlite._torch_onnx`), computing in the module's
precision, before the same head.

A classifier's outputs are skl2onnx's: ``label`` (values of ``classes_``,
int64 or string; a (n, n_labels) 0/1 int64 matrix for multilabel targets)
and ``probabilities`` (or, with ``zipmap``, one dict per row); a regressor's
one output holds (n, n_outputs) predictions.
"""

import numpy as np

from ._base import fitted_target
from ._classifier import TorchClassifier
from ._engine.activations import ACTIVATIONS
from ._regressor import TorchRegressor
from ._state import module_state


def register_onnx_converters():
    """Register our estimators' shape calculators and converters in skl2onnx.

    Call it once before ``skl2onnx.to_onnx`` / ``convert_sklearn``; calling it
    again changes nothing.

    Raises
    ------
    ImportError
        If skl2onnx is not installed (``pip install "skorchlite[onnx]"``).

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from skl2onnx import to_onnx
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skorchlite import TorchMLPClassifier
    >>> from skorchlite import register_onnx_converters
    >>> register_onnx_converters()
    >>> X, y = make_blobs(100, centers=3, random_state=0)
    >>> X = X.astype(np.float32)
    >>> pipe = make_pipeline(
    ...     StandardScaler(),
    ...     TorchMLPClassifier(
    ...         (8,), solver="lbfgs", alpha=0.1, tol=1e-2, random_state=0
    ...     ),
    ... ).fit(X, y)
    >>> onx = to_onnx(pipe, X[:1], options={"zipmap": False})
    >>> session = onnxruntime.InferenceSession(onx.SerializeToString())
    >>> label, proba = session.run(None, {"X": X})
    >>> bool((label == pipe.predict(X)).all())
    True
    >>> bool(np.abs(proba - pipe.predict_proba(X)).max() < 1e-5)
    True
    """
    from ._classifier import TorchMLPClassifier
    from ._regressor import TorchMLPRegressor

    _register(TorchMLPClassifier, _convert)
    _register(TorchMLPRegressor, _convert)
    for estimator_class in (TorchClassifier, TorchRegressor):
        register_module_converter(estimator_class)


def register_module_converter(estimator_class):
    """Register an estimator of any torch module in skl2onnx.

    Torch's exporter writes the graph of the fitted ``module_``
    (:mod:`skorchlite._torch_onnx`); the converter reads nothing else but
    ``n_features_in_`` and the fitted target (``classes_``, ``n_outputs_``).

    Parameters
    ----------
    estimator_class : type
        A classifier (a ``ClassifierMixin``) or a regressor class.

    Raises
    ------
    ImportError
        If skl2onnx is not installed.
    """
    from ._torch_onnx import convert_module

    _register(estimator_class, convert_module)


def _register(estimator_class, converter):
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(
            "Converting to ONNX needs skl2onnx, which is not installed. Install "
            "the optional dependencies with: pip install skorchlite[onnx]"
        ) from exc
    from sklearn.base import ClassifierMixin

    alias = f"Skorchlite{estimator_class.__name__}"
    if issubclass(estimator_class, ClassifierMixin):
        update_registered_converter(
            estimator_class,
            alias,
            _classifier_shapes,
            converter,
            # skl2onnx's classifier options: "nocl" labels rows by class index.
            options={"zipmap": [True, False, "columns"], "nocl": [False, True]},
        )
    else:
        update_registered_converter(
            estimator_class, alias, _regressor_shapes, converter
        )


# -------------------------------------------------------------------- shapes


def _label_is_int(classes):
    kind = classes.dtype.kind
    if kind in "iub":
        return True
    if kind == "f":
        return bool(np.all(classes == np.round(classes)))
    if kind == "O":
        return all(not isinstance(c, str) for c in classes)
    return False


def _classes(scope, estimator):
    """``classes_``, or their indices with skl2onnx's ``nocl`` option."""
    if scope.get_options(estimator, {"nocl": False})["nocl"]:
        return np.arange(len(estimator.classes_))
    return estimator.classes_


def _classifier_shapes(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    estimator = operator.raw_operator
    n_rows = operator.inputs[0].get_first_dimension()
    input_type = operator.inputs[0].type.__class__
    n_classes = len(estimator.classes_)
    if fitted_target(estimator).name == "multilabel-indicator":
        operator.outputs[0].type = Int64TensorType([n_rows, n_classes])
    elif _label_is_int(_classes(operator.scope_inst, estimator)):
        operator.outputs[0].type = Int64TensorType([n_rows])
    else:
        operator.outputs[0].type = StringTensorType([n_rows])
    operator.outputs[1].type = input_type([n_rows, n_classes])


def _regressor_shapes(operator):
    estimator = operator.raw_operator
    n_rows = operator.inputs[0].get_first_dimension()
    input_type = operator.inputs[0].type.__class__
    operator.outputs[0].type = input_type([n_rows, estimator.n_outputs_])


# ----------------------------------------------------------------- converter


class _Graph:
    """Adds nodes and constants to skl2onnx's container, in one precision.

    The activations (:mod:`skorchlite._engine.activations`) and the targets
    (:mod:`skorchlite._targets`) write their nodes through it.
    """

    def __init__(self, scope, container, dtype, estimator):
        from onnx import TensorProto

        self.scope, self.container, self.dtype = scope, container, dtype
        self.estimator = estimator
        self.proto = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE

    def constant(self, value, name="c"):
        from onnx import numpy_helper

        array = np.asarray(value, dtype=self.dtype)
        full_name = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(
            full_name, self.proto, list(array.shape), numpy_helper.from_array(array)
        )
        return full_name

    def int64_constant(self, values):
        from onnx import TensorProto

        name = self.scope.get_unique_variable_name("shape")
        self.container.add_initializer(name, TensorProto.INT64, [len(values)], values)
        return name

    def labels(self, indices, output):
        """The classes of ``indices`` into ``output`` (int64 or string labels;
        their indices with skl2onnx's ``nocl`` option)."""
        from onnx import TensorProto

        classes = _classes(self.scope, self.estimator)
        name = self.scope.get_unique_variable_name("classes")
        if _label_is_int(classes):
            self.container.add_initializer(
                name, TensorProto.INT64, [len(classes)], [int(c) for c in classes]
            )
        else:
            self.container.add_initializer(
                name,
                TensorProto.STRING,
                [len(classes)],
                [str(c).encode("utf-8") for c in classes],
            )
        self.node("Gather", [name, indices], output, axis=0)

    def is_positive(self, logits):
        """int64 ``logits > 0``: the positive class or label."""
        from onnx import TensorProto

        positive = self.node("Greater", [logits, self.constant(np.zeros(1))])
        return self.node("Cast", [positive], to=TensorProto.INT64)

    def node(self, op_type, inputs, output=None, **attributes):
        output = output or self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(
            op_type,
            inputs,
            [output],
            name=self.scope.get_unique_operator_name(op_type),
            **attributes,
        )
        return output


def _network(graph, estimator, x):
    """The nodes of the network: the name of its outputs (logits)."""
    state = module_state(estimator.module_)
    weights = iter(state["arrays"])
    for layer in state["layout"]:
        if layer["layer"] == "linear":
            weight, bias = next(weights), next(weights)
            x = graph.node("MatMul", [x, graph.constant(_cast(weight.T, graph))])
            x = graph.node("Add", [x, graph.constant(_cast(bias, graph))])
        elif layer["layer"] == "activation":
            activation = ACTIVATIONS[layer["name"]]
            if activation.onnx is None:
                raise ValueError(
                    f"activation={activation.name!r} has no ONNX lowering: the "
                    "model cannot be exported to ONNX."
                )
            x = activation.onnx(graph, x)
        # Dropout is the identity at inference.
    return x


def _cast(array, graph):
    """``array`` in the graph's precision; refuse values it cannot hold."""
    largest = np.abs(array).max(initial=0.0)
    if largest > np.finfo(graph.dtype).max:
        raise ValueError(
            f"The network has weights up to {largest:.9g} in magnitude, beyond "
            f"the range of {np.dtype(graph.dtype).name}, the precision of the "
            "ONNX input: they would become infinite. Convert with float64 "
            "input (e.g. to_onnx(model, X[:1].astype(np.float64)))."
        )
    return np.ascontiguousarray(array, dtype=graph.dtype)


def _check_decision(estimator, target):
    if getattr(target, "single_class", False):
        raise ValueError(
            "This classifier was fitted on a single class "
            f"({estimator.classes_[0]!r}), which it always predicts; there is "
            "no decision to convert. Fit it on at least two classes."
        )


def _convert(scope, operator, container):
    from skl2onnx.common.data_types import DoubleTensorType

    estimator = operator.raw_operator
    target = fitted_target(estimator)
    _check_decision(estimator, target)
    is_double = isinstance(operator.inputs[0].type, DoubleTensorType)
    graph = _Graph(scope, container, np.float64 if is_double else np.float32, estimator)
    logits = _network(graph, estimator, operator.inputs[0].full_name)
    target.onnx_head(graph, logits, *(output.full_name for output in operator.outputs))
