"""The target registry: what each kind of ``y`` means for the network.

================  =======  ===========================  ======================
target            outputs  loss (per row)               predictions
================  =======  ===========================  ======================
binary            1        BCEWithLogitsLoss            ``[1 - p, p]``
one class         1        BCEWithLogitsLoss (y = 0)    ``[1]``
multiclass (K>2)  K        CrossEntropyLoss             softmax
multilabel (K)    K        BCEWithLogitsLoss per label  sigmoid per label
continuous (K)    K        half squared error           identity
continuous (K)    K        half Poisson deviance        exp
================  =======  ===========================  ======================

Each entry knows its outputs, loss and closed-form output gradient, encoding
and decoding, validation score, early-stopping stratification and output head;
the estimators, the training loops, persistence and export ask it.
"""

import math
from numbers import Integral, Number, Real

import numpy as np
import torch
from scipy.special import expit, softmax
from sklearn.utils import compute_sample_weight
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import (
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from torch import nn


class Target:
    """One kind of ``y``. Subclasses fill in the methods.

    Outputs are the network's raw outputs (logits, or the linear predictor of
    a regression), with the outputs along the last dimension and any number of
    leading dimensions (the batched search stacks models in front).
    """

    name = None
    out_activation = None
    classes = None
    #: A regressor's target (else a classifier's).
    regression = False
    #: The fitted attributes that describe it (persistence checks them).
    fitted_attributes = ()

    @classmethod
    def from_fitted(cls, attributes, estimator):
        """The target that fitted ``attributes`` describe; raise ValueError if
        they describe none."""
        raise NotImplementedError

    @property
    def n_outputs(self):
        raise NotImplementedError

    def loss_function(self):
        """The per-row loss, a torch module ``(outputs, y) -> losses``."""
        raise NotImplementedError

    def losses_and_delta(self, outputs, y, dim=-1):
        """Per-row losses and their gradient with respect to ``outputs``.

        The outputs of a row lie along ``dim`` (of ``outputs`` and of ``y``,
        which for class indices has no such dimension).
        """
        raise NotImplementedError

    def encode(self, y, dtype):
        """``y`` as a tensor the loss accepts."""
        raise NotImplementedError

    def head(self, outputs):
        """Torch: the predictions of ``outputs`` (probabilities, or values)."""
        raise NotImplementedError

    def validation_score(self, outputs, y, w):
        """Score of encoded ``y`` (higher is better), weighted by ``w`` or None;
        one per leading index of ``outputs``."""
        raise NotImplementedError

    def stratification(self, y, n_train, n_val):
        """The labels the early-stopping split stratifies on, or None."""
        return None

    def onnx_head(self, graph, logits, *outputs):
        """Write the ONNX nodes computing the operator's ``outputs`` (predict's
        labels and predict_proba's probabilities, or the predictions) from
        ``logits`` (see :class:`skorchlite._skl2onnx._Graph`)."""
        raise NotImplementedError(f"the {self.name} target has no ONNX head")


# ------------------------------------------------------------- classification


class _Classification(Target):
    """Labels ``classes``; scored by (weighted) accuracy."""

    out_activation = "logistic"
    fitted_attributes = ("classes_",)

    def __init__(self, classes):
        self.classes = classes

    @classmethod
    def from_fitted(cls, attributes, estimator):
        classes = attributes["classes_"]
        check_fitted_classes(classes)
        target = cls(classes)
        if not target.check_classes():
            raise ValueError(f"{len(classes)} classes do not make a {cls.name} target.")
        return target

    @property
    def single_class(self):
        """Whether y had one class only (always predicted, with probability 1)."""
        return len(self.classes) == 1

    def loss_function(self):
        return _SummedOverOutputs(nn.BCEWithLogitsLoss(reduction="none"))

    def losses_and_delta(self, outputs, y, dim=-1):
        losses = nn.functional.binary_cross_entropy_with_logits(
            outputs, y, reduction="none"
        )
        return losses.sum(dim=dim), torch.sigmoid(outputs).sub_(y)

    def head(self, outputs):
        return torch.sigmoid(outputs)

    def correct(self, outputs, y):
        """Whether each prediction is right (every label of it, if multilabel)."""
        return ((outputs > 0) == (y > 0.5)).all(dim=-1)

    def validation_score(self, outputs, y, w):
        correct = self.correct(outputs, y)
        if w is None:
            return correct.to(outputs.dtype).mean(dim=-1)
        return (correct * w).sum(dim=-1) / w.sum(dim=-1)

    def encode(self, y, dtype):
        indices = np.searchsorted(self.classes, y)
        return torch.as_tensor(indices, dtype=dtype).reshape(-1, 1)

    def decision(self, outputs):
        """Decision values: (n,) for binary, (n, K) otherwise."""
        return outputs

    def class_weights(self, class_weight, y, sample_weight):
        """Per-sample weight of each row's class, for ``class_weight``.

        "balanced" counts the classes with ``sample_weight``, so that integer
        weights and repeated rows give the same class weights.
        """
        check_class_weight_values(class_weight)
        if isinstance(class_weight, dict):
            unknown = set(class_weight) - set(self.classes.tolist())
            if unknown:
                raise ValueError(
                    f"class_weight has labels {sorted(unknown, key=str)} that are not "
                    f"classes of y ({self.classes})."
                )
        with np.errstate(divide="ignore"):
            per_class = compute_class_weight(
                class_weight, classes=self.classes, y=y, sample_weight=sample_weight
            )
        # A class whose rows all weigh zero gets an infinite "balanced" weight;
        # its rows contribute nothing either way.
        per_class[~np.isfinite(per_class)] = 0.0
        return per_class[np.searchsorted(self.classes, y)]

    def check_compatible(self, y, warm_start):
        """Raise if ``y`` brings labels this (already fitted) target does not know."""
        check_label_types(y)
        classes = unique_labels(y)
        if warm_start and set(classes) != set(self.classes):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in "
                f"the previous call to fit. Previously got {self.classes}, `y` has "
                f"{classes}"
            )
        if len(np.setdiff1d(classes, self.classes, assume_unique=True)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{self.classes}. 'y' has {classes}."
            )


class BinaryTarget(_Classification):
    """Two labels (or one), one logit: positive means ``classes[1]``."""

    name = "binary"

    @property
    def n_outputs(self):
        return 1

    def check_classes(self):
        return len(self.classes) in (1, 2)  # one class: always predicted

    def stratification(self, y, n_train, n_val):
        # The column y == classes[-1], as MLPClassifier stratifies its
        # binarized labels: a class too small to split raises its error, word
        # for word.
        return (np.asarray(y) == self.classes[-1]).reshape(-1, 1)

    def correct(self, outputs, y):
        if self.single_class:
            return torch.ones_like(y[..., 0], dtype=torch.bool)
        return super().correct(outputs, y)

    def predict(self, outputs):
        if self.single_class:
            return np.repeat(self.classes, len(outputs))
        return self.classes[(outputs[:, 0] > 0).astype(np.intp)]

    def proba(self, outputs):
        if self.single_class:
            return np.ones((len(outputs), 1), dtype=outputs.dtype)
        # expit(-z) rather than 1 - expit(z) keeps small probabilities exact.
        z = outputs[:, 0]
        return np.column_stack([expit(-z), expit(z)])

    def head(self, outputs):
        # sigmoid(-z) rather than 1 - sigmoid(z), like proba.
        return torch.cat([torch.sigmoid(-outputs), torch.sigmoid(outputs)], dim=-1)

    def onnx_head(self, graph, logits, label, probabilities):
        # [sigmoid(-z), sigmoid(z)], as predict_proba computes it.
        negative = graph.node("Sigmoid", [graph.node("Neg", [logits])])
        positive = graph.node("Sigmoid", [logits])
        graph.node("Concat", [negative, positive], probabilities, axis=1)
        index = graph.node(
            "Reshape", [graph.is_positive(logits), graph.int64_constant([-1])]
        )
        graph.labels(index, label)

    def decision(self, outputs):
        return outputs[:, 0]


class MulticlassTarget(_Classification):
    """K > 2 labels, K logits, softmax."""

    name = "multiclass"
    out_activation = "softmax"

    @property
    def n_outputs(self):
        return len(self.classes)

    def check_classes(self):
        return len(self.classes) > 2

    def stratification(self, y, n_train, n_val):
        # MLPClassifier does not stratify multiclass targets; we do where every
        # class fits on both sides of the split.
        counts = np.unique(y, return_counts=True)[1]
        if counts.min() >= 2 and min(n_train, n_val) >= len(counts):
            return y
        return None

    def loss_function(self):
        return nn.CrossEntropyLoss(reduction="none")

    def losses_and_delta(self, outputs, y, dim=-1):
        """``y`` holds class indices, ``outputs`` has the classes along ``dim``."""
        log_probabilities = torch.log_softmax(outputs, dim=dim)
        index = y.unsqueeze(dim)
        losses = -log_probabilities.gather(dim, index).squeeze(dim)
        # softmax minus the one-hot targets, with one scatter_add_
        delta = log_probabilities.exp_()
        delta.scatter_add_(dim, index, delta.new_full(index.shape, -1.0))
        return losses, delta

    def encode(self, y, dtype):
        return torch.as_tensor(np.searchsorted(self.classes, y), dtype=torch.int64)

    def correct(self, outputs, y):
        return outputs.argmax(dim=-1) == y

    def onnx_head(self, graph, logits, label, probabilities):
        graph.node("Softmax", [logits], probabilities, axis=1)
        graph.labels(graph.node("ArgMax", [logits], axis=1, keepdims=0), label)

    def predict(self, outputs):
        return self.classes[outputs.argmax(axis=1)]

    def proba(self, outputs):
        return softmax(outputs, axis=1)

    def head(self, outputs):
        return torch.softmax(outputs, dim=-1)


class MultilabelTarget(_Classification):
    """A 0/1 indicator matrix of K labels: K logits, a sigmoid each."""

    name = "multilabel-indicator"

    @property
    def n_outputs(self):
        return len(self.classes)

    def check_classes(self):
        return len(self.classes) >= 2

    def encode(self, y, dtype):
        return torch.as_tensor(np.asarray(y), dtype=dtype)

    def predict(self, outputs):
        return (outputs > 0).astype(int)

    def proba(self, outputs):
        return expit(outputs)

    def onnx_head(self, graph, logits, label, probabilities):
        graph.node("Sigmoid", [logits], probabilities)
        graph.node("Identity", [graph.is_positive(logits)], label)

    def class_weights(self, class_weight, y, sample_weight):
        check_class_weight_values(class_weight)
        return compute_sample_weight(class_weight, y)

    def check_compatible(self, y, warm_start):
        check_label_types(y)
        if type_of_target(y) != "multilabel-indicator" or y.shape[1] != len(
            self.classes
        ):
            raise ValueError(
                f"y must be a multilabel indicator matrix with {len(self.classes)} "
                "columns, like the y of the previous call."
            )


def classification_target(y, classes=None):
    """The target of labels ``y`` (and ``classes``, in partial_fit).

    Examples
    --------
    >>> import numpy as np
    >>> target = classification_target(np.array(["no", "yes", "no"]))
    >>> target.name, target.n_outputs, target.out_activation
    ('binary', 1, 'logistic')
    >>> target.predict(np.array([[-2.0], [3.0]]))
    array(['no', 'yes'], dtype='<U3')
    """
    target_type = check_target_type(y)
    if target_type == "multilabel-indicator":
        labels = np.arange(y.shape[1])
        if classes is not None and (
            len(classes) != len(labels) or set(classes) != set(labels.tolist())
        ):
            raise ValueError(
                f"y is a multilabel indicator matrix of {len(labels)} labels, so "
                f"classes must be their column indices {labels.tolist()}; got "
                f"{list(classes)!r}."
            )
        return MultilabelTarget(labels)
    classes = unique_labels(y) if classes is None else unique_labels(classes)
    # One class trains as a binary target whose rows are all negative, as
    # MLPClassifier's LabelBinarizer encodes it; it always predicts that class.
    return (MulticlassTarget if len(classes) > 2 else BinaryTarget)(classes)


# ------------------------------------------------------------------ regression


class ContinuousTarget(Target):
    """Real-valued targets, one output each: MLPRegressor's losses.

    ``"squared_error"``: half the squared error, averaged over the outputs
    (MLPRegressor's ``loss_``), identity output. ``"poisson"``: half the
    Poisson deviance summed over the outputs, with an exp link. Both losses
    are MLPRegressor's, and so are their gradients for one output.
    """

    name = "continuous"
    regression = True
    #: The values of the regressor's ``loss`` parameter.
    LOSSES = ("squared_error", "poisson")

    def __init__(self, n_outputs, loss="squared_error"):
        self._n_outputs = n_outputs
        self.loss = loss

    @classmethod
    def from_fitted(cls, attributes, estimator):
        n_outputs = attributes["n_outputs_"]
        if not isinstance(n_outputs, Integral) or n_outputs < 1:
            raise ValueError(f"invalid n_outputs_={n_outputs!r}.")
        return cls(int(n_outputs), estimator.loss)

    def check_targets(self, y):
        """Raise for ``y`` this loss cannot train on."""
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for "
                'loss="poisson".'
            )

    @property
    def n_outputs(self):
        return self._n_outputs

    @property
    def out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def loss_function(self):
        if self.loss == "poisson":
            return _HalfPoissonDeviance()
        return _HalfSquaredError()

    def losses_and_delta(self, outputs, y, dim=-1):
        if self.loss == "poisson":
            predictions = torch.exp(outputs)
            losses = _half_poisson_deviance(predictions, outputs, y, dim)
            # The exp link is the Poisson's canonical one: d/dz = exp(z) - y.
            return losses, predictions.sub_(y)
        residuals = outputs - y
        # MLPRegressor reports this loss but steps along the gradient of its
        # sum over the outputs; we step along the loss we report (the same for
        # one output; Adam and L-BFGS hardly notice the scale otherwise).
        return 0.5 * residuals.square().mean(dim=dim), residuals.div_(self.n_outputs)

    def encode(self, y, dtype):
        return torch.as_tensor(np.asarray(y).reshape(len(y), -1), dtype=dtype)

    def predict(self, outputs):
        values = np.exp(outputs) if self.loss == "poisson" else outputs
        return values[:, 0] if self.n_outputs == 1 else values

    def head(self, outputs):
        return torch.exp(outputs) if self.loss == "poisson" else outputs

    def onnx_head(self, graph, logits, predictions):
        link = "Exp" if self.loss == "poisson" else "Identity"
        graph.node(link, [logits], predictions)

    def validation_score(self, outputs, y, w):
        """R² (uniform average over the outputs), as MLPRegressor's ``score``."""
        predictions = self.head(outputs)
        if w is None:
            w = torch.ones_like(y[..., 0])
        w = w.unsqueeze(-1)
        weight_sum = w.sum(dim=-2)
        mean = (w * y).sum(dim=-2) / weight_sum
        residual = (w * (y - predictions).square()).sum(dim=-2)
        total = (w * (y - mean.unsqueeze(-2)).square()).sum(dim=-2)
        # sklearn's r2_score with force_finite: a constant y scores 1 if
        # predicted exactly, else 0.
        r2 = torch.where(
            total > 0,
            1 - residual / total.clamp(min=torch.finfo(total.dtype).tiny),
            (residual == 0).to(total.dtype),
        )
        return r2.mean(dim=-1)


class _SummedOverOutputs(nn.Module):
    """A torch loss with ``reduction="none"``, summed over the outputs of a row."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, outputs, y):
        return self.loss(outputs, y).sum(dim=-1)


class _HalfSquaredError(nn.Module):
    def forward(self, outputs, y):
        return 0.5 * (outputs - y).square().mean(dim=-1)


def _half_poisson_deviance(predictions, outputs, y, dim=-1):
    # y log(y / mu) - y + mu, with mu = exp(z), 0 log 0 = 0: MLPRegressor's.
    y_log_y = torch.special.xlogy(y, y)
    return (y_log_y - y * outputs - y + predictions).sum(dim=dim)


class _HalfPoissonDeviance(nn.Module):
    def forward(self, outputs, y):
        return _half_poisson_deviance(torch.exp(outputs), outputs, y)


def check_fitted_classes(classes):
    """Raise ValueError unless ``classes`` is what fit sets as ``classes_``.

    That is a non-empty 1-d array of labels fit accepts (integers, finite
    floats or strings, not a mix), sorted and unique: ``encode`` looks labels
    up with ``searchsorted``, which silently mislabels any other array.

    Examples
    --------
    >>> check_fitted_classes(np.array(["a", "b"]))
    >>> check_fitted_classes(np.array([2, 1]))
    Traceback (most recent call last):
    ...
    ValueError: classes_ must be sorted and unique, got [2 1].
    """
    if (
        not isinstance(classes, np.ndarray)
        or isinstance(classes, np.ma.MaskedArray | np.matrix)
        or classes.ndim != 1
        or not len(classes)
    ):
        raise ValueError(
            f"classes_ must be a non-empty 1-d numpy array, got {type(classes)}."
        )
    kind = classes.dtype.kind
    if kind == "O":
        kinds = {
            "str" if isinstance(c, str) else "int" if _is_int(c) else "other"
            for c in classes
        }
        if "other" in kinds or len(kinds) > 1:
            raise ValueError(
                "classes_ must hold integers or strings, not a mix or other objects."
            )
    elif kind not in "biufU":
        raise ValueError(f"classes_ has the unsupported dtype {classes.dtype}.")
    if kind == "f" and not np.isfinite(classes).all():
        raise ValueError("classes_ holds NaN or infinite values.")
    if len(classes) > 1 and not all(
        a < b for a, b in zip(classes[:-1].tolist(), classes[1:].tolist(), strict=True)
    ):
        raise ValueError(f"classes_ must be sorted and unique, got {classes}.")


def _is_int(value):
    return isinstance(value, Integral | np.integer) and not isinstance(
        value, bool | np.bool_
    )


#: Every target by its name (persistence stores the name).
TARGETS = {
    target.name: target
    for target in (BinaryTarget, MulticlassTarget, MultilabelTarget, ContinuousTarget)
}

SUPPORTED_TARGETS = ("binary", "multiclass", "multilabel-indicator")


def check_label_types(y):
    """Raise a clear error for object labels of mixed types.

    sklearn sorts the labels first, so ``["a", 1]`` fails there with a bare
    ``TypeError: '<' not supported between instances of 'int' and 'str'``.
    """
    y = np.asarray(y)
    if y.dtype != object:
        return
    kinds = {
        "string"
        if isinstance(label, str)
        else "number"
        if isinstance(label, Number | np.bool_)
        else type(label).__name__
        for label in y.ravel()
    }
    if len(kinds) > 1:
        mix = " and ".join(sorted(kinds, key=lambda kind: kind != "string"))
        raise ValueError(
            f"Mix of label input types ({mix}) in y: the labels must all be "
            "strings or all be numbers."
        )


def check_target_type(y):
    """Return the target type or raise sklearn's error for unsupported targets."""
    check_label_types(y)
    check_classification_targets(y)
    target_type = type_of_target(y, input_name="y")
    if target_type not in SUPPORTED_TARGETS:
        raise ValueError(
            f"Target type {target_type!r} is not supported: y must be binary, "
            "multiclass, or a multilabel indicator matrix of 0/1 values."
        )
    return target_type


def check_class_weight_values(class_weight):
    """Raise a ValueError naming the class of a weight that is not finite and >= 0.

    ``compute_class_weight`` takes any number, and an infinite or NaN weight
    trained as if it were 0 (the weighted loss drops such rows).

    Parameters
    ----------
    class_weight : dict, list of dict, "balanced" or None
        Only the values of dicts are checked.

    Examples
    --------
    >>> check_class_weight_values({0: 1.0, 1: 2})
    >>> check_class_weight_values({0: float("inf")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: class_weight: the weight of class 0 is inf; class weights must be ...
    """
    dicts = class_weight if isinstance(class_weight, list) else [class_weight]
    for weights in dicts:
        if not isinstance(weights, dict):
            continue
        for label, value in weights.items():
            valid = (
                isinstance(value, Real)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            )
            if not valid:
                shown = value if isinstance(value, Real) else repr(value)
                raise ValueError(
                    f"class_weight: the weight of class {label!r} is {shown}; "
                    "class weights must be finite numbers >= 0."
                )
