"""The target policy: label type -> network outputs, loss, probabilities, labels.

================  =======  ==========================  ======================
target            outputs  loss                        probabilities
================  =======  ==========================  ======================
binary            1        BCEWithLogitsLoss           ``[1 - p, p]``
one class         1        BCEWithLogitsLoss (y = 0)   ``[1]``
multiclass (K>2)  K        CrossEntropyLoss            softmax
multilabel (K)    K        BCEWithLogitsLoss per label sigmoid per label
================  =======  ==========================  ======================
"""

import math
from numbers import Number, Real

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

SUPPORTED_TARGETS = ("binary", "multiclass", "multilabel-indicator")


class TargetEncoder:
    """Map user labels to network targets and network logits back to labels.

    Parameters
    ----------
    classes : ndarray
        The sorted class labels (for multilabel targets, ``arange(n_labels)``).
    target_type : {"binary", "multiclass", "multilabel-indicator"}

    Examples
    --------
    >>> import numpy as np
    >>> encoder = TargetEncoder.from_targets(np.array(["no", "yes", "no"]))
    >>> encoder.target_type, encoder.n_outputs, encoder.out_activation
    ('binary', 1, 'logistic')
    >>> encoder.decode(np.array([[-2.0], [3.0]]))
    array(['no', 'yes'], dtype='<U3')
    """

    def __init__(self, classes, target_type):
        self.classes = classes
        self.target_type = target_type

    @classmethod
    def from_targets(cls, y, classes=None):
        """Infer the target type from ``y`` (and ``classes`` in partial_fit)."""
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
            return cls(labels, target_type)
        classes = unique_labels(y) if classes is None else unique_labels(classes)
        # One class trains as a binary target whose rows are all negative, as
        # MLPClassifier's LabelBinarizer encodes it; it always predicts that class.
        target_type = "multiclass" if len(classes) > 2 else "binary"
        return cls(classes, target_type)

    @property
    def n_outputs(self):
        return 1 if self.target_type == "binary" else len(self.classes)

    @property
    def out_activation(self):
        return "softmax" if self.target_type == "multiclass" else "logistic"

    def check_compatible(self, y, warm_start):
        """Raise if ``y`` brings labels this (already fitted) encoder does not know."""
        check_label_types(y)
        if self.target_type == "multilabel-indicator":
            if type_of_target(y) != "multilabel-indicator" or y.shape[1] != len(
                self.classes
            ):
                raise ValueError(
                    f"y must be a multilabel indicator matrix with {len(self.classes)} "
                    "columns, like the y of the previous call."
                )
            return
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

    def class_weights(self, class_weight, y, sample_weight):
        """Per-sample weight of each row's class, for ``class_weight``.

        "balanced" counts the classes with ``sample_weight``, so that integer
        weights and repeated rows give the same class weights. Multilabel
        targets use :func:`sklearn.utils.compute_sample_weight`.
        """
        check_class_weight_values(class_weight)
        if self.target_type == "multilabel-indicator":
            return compute_sample_weight(class_weight, y)
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

    def stratification(self, y, n_train, n_val):
        """The labels that the early-stopping split stratifies on, or None.

        Binary targets stratify on the column ``y == classes[-1]``, as
        MLPClassifier does on its binarized labels: a class too small to split
        raises its error, word for word.
        Multiclass targets (which MLPClassifier does not stratify) are
        stratified when every class fits on both sides; multilabel ones never.
        """
        if self.target_type == "binary":
            return (np.asarray(y) == self.classes[-1]).reshape(-1, 1)
        if self.target_type == "multiclass":
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() >= 2 and min(n_train, n_val) >= len(counts):
                return y
        return None

    def loss_function(self):
        """The torch loss, unreduced, for this target type."""
        if self.target_type == "multiclass":
            return nn.CrossEntropyLoss(reduction="none")
        return nn.BCEWithLogitsLoss(reduction="none")

    def encode(self, y, dtype):
        """Targets as a tensor the loss accepts: indices or 0/1 floats."""
        if self.target_type == "multilabel-indicator":
            return torch.as_tensor(np.asarray(y), dtype=dtype)
        indices = np.searchsorted(self.classes, y)
        if self.target_type == "multiclass":
            return torch.as_tensor(indices, dtype=torch.int64)
        return torch.as_tensor(indices, dtype=dtype).reshape(-1, 1)

    @property
    def single_class(self):
        """Whether y had one class only (always predicted, with probability 1)."""
        return len(self.classes) == 1

    def predict_indices(self, logits):
        """Predicted class indices (or the 0/1 matrix for multilabel)."""
        if self.target_type == "multiclass":
            return logits.argmax(axis=1)
        if self.single_class:
            return np.zeros(len(logits), dtype=np.intp)
        if self.target_type == "binary":
            return (logits[:, 0] > 0).astype(np.intp)
        return (logits > 0).astype(int)

    def correct(self, logits, y):
        """Whether each prediction is right (every label of it, if multilabel).

        ``logits`` and the encoded targets ``y`` are tensors with the outputs
        along dimension 1 (multiclass ``y``: class indices, without it).
        """
        if self.target_type == "multiclass":
            return logits.argmax(dim=1) == y
        if self.single_class:
            return torch.ones_like(y[:, 0], dtype=torch.bool)
        return ((logits > 0) == (y > 0.5)).all(dim=1)

    def decode(self, logits):
        """Predicted labels in the user's own label values."""
        indices = self.predict_indices(logits)
        if self.target_type == "multilabel-indicator":
            return indices
        return self.classes[indices]

    def proba(self, logits):
        """Probabilities from float64 logits, shape (n, n_classes)."""
        if self.target_type == "multiclass":
            return softmax(logits, axis=1)
        if self.single_class:
            return np.ones((len(logits), 1))
        if self.target_type == "binary":
            # expit(-z) rather than 1 - expit(z) keeps small probabilities exact.
            z = logits[:, 0]
            return np.column_stack([expit(-z), expit(z)])
        return expit(logits)

    def decision(self, logits):
        """Decision values: (n,) for binary, (n, K) otherwise."""
        return logits[:, 0] if self.target_type == "binary" else logits


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
