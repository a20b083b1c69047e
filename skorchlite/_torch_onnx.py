"""ONNX for estimators of any torch module, through torch's own exporter.

TorchClassifier and TorchRegressor hold a user's ``nn.Module``, whose graph
cannot be written from the fitted arrays as the MLPs' is
(:mod:`skorchlite._skl2onnx`). :func:`export_module` has torch write it
(``torch.onnx.export(..., dynamo=True)``: ``torch.export`` traces the module,
onnxscript translates the trace), and :func:`convert_module`, the estimators'
skl2onnx converter, inlines that graph into skl2onnx's and appends the
target's head, as the MLP converter does.
"""

import copy
import itertools

import numpy as np

from ._base import fitted_target
from ._skl2onnx import _check_decision, _Graph

_HINT = "Install the optional dependencies with: pip install skorchlite[onnx]"


def export_module(module, n_features, *, opset_version=None):
    """The ONNX graph of ``module`` for inputs of shape (batch, n_features).

    Parameters
    ----------
    module : torch.nn.Module
        Maps one float tensor (n, n_features) to one tensor (n, n_outputs).
        It is left alone: torch exports a CPU deep copy in eval mode, in the
        module's precision (that of its first floating parameter or buffer;
        float32 if it has none).
    n_features : int
        Width of the input.
    opset_version : int, default=None
        ONNX opset (default domain) of the graph; None lets torch choose.

    Returns
    -------
    model : onnx.ModelProto
        One input of shape (batch, n_features) with a dynamic batch
        dimension, one output, in the module's precision, and no local
        functions.

    Raises
    ------
    ValueError
        If torch cannot export the module (the message gives torch's reason),
        or cannot write it in ``opset_version``.
    ImportError
        If onnxscript, which torch's exporter needs, is not installed.
    """
    import onnx
    import torch

    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "Exporting a torch module to ONNX needs onnxscript, which is not "
            f"installed. {_HINT}"
        ) from exc
    module = copy.deepcopy(module).to("cpu").eval()
    floating = [
        tensor
        for tensor in itertools.chain(module.parameters(), module.buffers())
        if tensor.is_floating_point()
    ]
    dtype = floating[0].dtype if floating else torch.float32
    # torch.export specializes dimensions of size 0 and 1: sample two rows.
    sample = torch.zeros(2, n_features, dtype=dtype)
    try:
        program = torch.onnx.export(
            module,
            (sample,),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset_version,
            input_names=["input"],
            verbose=False,
        )
    except torch.onnx.OnnxExporterError as exc:
        # The exporter's own message is mostly advice; the cause says what
        # torch.export or the translation met.
        reason = exc.__cause__ or exc
        raise ValueError(
            f"torch cannot export the module {type(module).__name__} to ONNX: "
            f"{type(reason).__name__}: {reason}"
        ) from exc
    model = program.model_proto
    opset = {entry.domain: entry.version for entry in model.opset_import}[""]
    if opset_version is not None and opset != opset_version:
        raise ValueError(
            f"torch wrote the module in ONNX opset {opset}, not in the opset "
            f"{opset_version} asked for: its exporter writes opset 18 or newer, "
            "and older ones only where ONNX's version converter can. Convert "
            "with target_opset >= 18."
        )
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    if len(model.graph.output) != 1:
        raise ValueError(
            f"The module returns {len(model.graph.output)} tensors; the "
            "estimator expects one, of shape (n_samples, n_outputs)."
        )
    return model


def convert_module(scope, operator, container):
    """Convert TorchClassifier or TorchRegressor, for skl2onnx.

    The module's graph, as :func:`export_module` writes it in the container's
    opset, with every name prefixed by one the scope reserved, between Casts
    from the input's precision to the module's and back; then the target's
    head on the logits.

    Parameters
    ----------
    scope : skl2onnx.common._topology.Scope
        Gives unique names.
    operator : skl2onnx.common._topology.Operator
        The estimator (``raw_operator``), its input and its outputs.
    container : skl2onnx.common._container.ModelComponentContainer
        Receives the nodes and initializers.
    """
    from onnx import compose
    from skl2onnx.common.data_types import DoubleTensorType

    estimator = operator.raw_operator
    target = fitted_target(estimator)
    _check_decision(estimator, target)
    model = export_module(
        estimator.module_,
        estimator.n_features_in_,
        opset_version=container.target_opset,
    )
    # skl2onnx names come from seeds such as "variable" or "label", plus a
    # counter: none starts with a reserved name and a slash.
    model = compose.add_prefix(model, scope.get_unique_variable_name("module") + "/")
    module_graph = model.graph
    is_double = isinstance(operator.inputs[0].type, DoubleTensorType)
    graph = _Graph(scope, container, np.float64 if is_double else np.float32, estimator)
    (module_input,) = module_graph.input
    graph.node(
        "Cast",
        [operator.inputs[0].full_name],
        module_input.name,
        to=module_input.type.tensor_type.elem_type,
    )
    # As skl2onnx.helpers.add_onnx_graph: the nodes and initializers as they
    # are (their attributes may hold tensors or subgraphs), and their opsets.
    container.nodes.extend(module_graph.node)
    container.initializers.extend(module_graph.initializer)
    for entry in model.opset_import:
        container.node_domain_version_pair_sets.add((entry.domain, entry.version))
    logits = graph.node("Cast", [module_graph.output[0].name], to=graph.proto)
    target.onnx_head(graph, logits, *(output.full_name for output in operator.outputs))
