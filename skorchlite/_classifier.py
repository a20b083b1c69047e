"""Our classifiers: TorchMLPClassifier (sklearn's MLPClassifier over a torch
module) and TorchClassifier (the same over the user's module)."""

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import check_is_fitted

from ._base import BaseTorchMLP, _supports_partial_fit
from ._docstrings import assemble
from ._engine.data import check_weight_sum
from ._module import BaseTorchModule
from ._targets import classification_target


def _check_partial_fit_params(estimator):
    """MLPClassifier's errors for parameters partial_fit cannot honour."""
    if estimator.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True")
    if isinstance(estimator.class_weight, str):
        raise ValueError(
            "partial_fit does not support class_weight='balanced', which needs "
            "all of y at once. Compute the weights on a large enough sample with "
            "sklearn.utils.class_weight.compute_class_weight and pass them as a "
            "dict."
        )


class ClassifierMethods:
    """What our classifiers share over their base (the MLP's network or the
    user's module): targets, class weights, partial_fit and the predict
    methods."""

    @available_if(_supports_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        classes : array-like of shape (n_classes,), default=None
            All the classes across calls; required on the first call, and
            ``y`` need not contain all of them.

        Returns
        -------
        self : object
            The updated estimator.
        """
        _check_partial_fit_params(self)
        if _check_partial_fit_first_call(self, classes):
            del self.classes_  # set again, from the target, in _fit
            return self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_targets(self, y, first_pass, classes):
        if first_pass:
            self._target = classification_target(y, classes)
            self.classes_ = self._target.classes
            if classes is not None:
                self._target.check_compatible(y, warm_start=False)
        else:
            self._target.check_compatible(y, warm_start=self.warm_start)

    def _training_weights(self, X, y, sample_weight):
        """sample_weight times class_weight, or None when all rows weigh the same."""
        weights = super()._training_weights(X, y, sample_weight)
        if self.class_weight is None:
            return weights
        if weights is None:
            weights = np.ones(X.shape[0])
        weights = weights * self._target.class_weights(self.class_weight, y, weights)
        check_weight_sum(weights, "sample_weight * class_weight")
        return weights

    # -------------------------------------------------------------- predict

    def decision_function(self, X):
        """Logits of the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        logits : ndarray of shape (n_samples,) or (n_samples, n_classes)
            One logit per sample for binary targets (positive means
            ``classes_[1]``), one per class or label otherwise.
        """
        check_is_fitted(self)
        return self._target.decision(self._raw_outputs(X))

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``, or a 0/1 matrix for multilabel targets.
        """
        check_is_fitted(self)
        return self._target.predict(self._raw_outputs(X))

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; rows sum to one except
            for multilabel targets, where each column is one label's probability.
        """
        check_is_fitted(self)
        return self._target.proba(self._raw_outputs(X))

    def predict_log_proba(self, X):
        """Logarithm of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``, like ``MLPClassifier``'s (so ``-inf``
            where a probability underflows to zero).
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# The entries both estimators share are in _docstrings; assemble inserts them
# (parameters in signature order) at the %(shared_...)s lines.
@assemble(sklearn="MLPClassifier")
class TorchMLPClassifier(ClassifierMethods, ClassifierMixin, BaseTorchMLP):
    """Multi-layer perceptron classifier trained with PyTorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`:
    same parameters, fitted attributes and behaviour, trained as a real
    :class:`torch.nn.Module` on the CPU or a GPU. The loss follows the labels:
    one logit with ``BCEWithLogitsLoss`` for binary targets,
    ``CrossEntropyLoss`` for multiclass targets and per-label
    ``BCEWithLogitsLoss`` for multilabel indicator matrices.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer. An
        empty tuple gives a linear model (logistic/softmax regression).

    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the data, stop when its
        accuracy stops improving, and restore the best weights (of equally good
        epochs, the latest).

    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; see
        :func:`sklearn.utils.compute_sample_weight`.

    %(shared_parameters)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multilabel targets). A ``y``
        of a single class is predicted as that class, with probability one.
    module_ : torch.nn.Sequential
        The trained network, in eval mode.
    n_outputs_ : int
        Number of logits (1 for binary targets).
    out_activation_ : str
        ``"logistic"`` (binary, multilabel) or ``"softmax"`` (multiclass).
    loss_ : np.float64
        Loss after the last epoch (L2 penalty included).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best validation accuracy with early stopping, else None.
    %(shared_attributes)s

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The numpy implementation.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import TorchMLPClassifier
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> clf = TorchMLPClassifier(hidden_layer_sizes=(16,), max_iter=300,
    ...                          learning_rate_init=0.02, random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        **BaseTorchMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        dtype=None,
        dropout=0.0,
        class_weight=None,
        max_grad_norm=None,
        predict_batch_size=16384,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            device=device,
            dtype=dtype,
            dropout=dropout,
            max_grad_norm=max_grad_norm,
            predict_batch_size=predict_batch_size,
        )
        self.class_weight = class_weight


@assemble(sklearn="MLPClassifier")
class TorchClassifier(ClassifierMethods, ClassifierMixin, BaseTorchModule):
    """Classifier training your own ``torch.nn.Module``.

    :class:`TorchMLPClassifier`'s training, targets and guarantees for any
    module returning logits: the loss follows the labels (one logit with
    ``BCEWithLogitsLoss`` for binary targets, ``CrossEntropyLoss`` over
    ``n_outputs`` logits for multiclass targets, per-label
    ``BCEWithLogitsLoss`` for multilabel indicator matrices), and so do
    ``predict`` and ``predict_proba``.

    Parameters
    ----------
    module : type or callable, default=None
        An ``nn.Module`` subclass, or a function returning a module, mapping
        a float batch ``(n, n_features)`` to logits ``(n, n_outputs)``. A fit
        calls it with the ``module__*`` parameters and, where its signature
        has them, ``n_features_in`` and ``n_outputs`` (the sizes the data
        decides). Required; an instance is refused (each fit builds and
        seeds its own).

    alpha : float, default=0.0001
        Strength of the L2 penalty on the module's parameters of two or more
        dimensions (linear and convolution weights, embeddings; not biases
        or norm scales), divided by the batch's sample-weight sum as for the
        MLPs. With ``solver="adamw"`` it is AdamW's decoupled
        ``weight_decay`` instead.

    random_state : int, RandomState instance or None, default=None
        Seeds the module's initial weights (its constructor's draws), the
        batch order, its dropout and other training-mode draws, and the
        early stopping split, from generators of the fit's own: torch's
        global generator is neither read nor advanced. An int gives
        identical models on the CPU.

    **module_params : dict
        ``module__<name>=value``: the module's own arguments, visible in
        ``get_params``, settable by ``set_params`` and searchable by
        ``GridSearchCV`` like any other parameter.

    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the data, stop when its
        accuracy stops improving, and restore the best weights (of equally good
        epochs, the latest).

    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; see
        :func:`sklearn.utils.compute_sample_weight`.

    %(shared_parameters)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multilabel targets).
    module_ : torch.nn.Module
        The trained module, in eval mode.
    n_outputs_ : int
        Number of logits the module returns (1 for binary targets).
    out_activation_ : str
        ``"logistic"`` (binary, multilabel) or ``"softmax"`` (multiclass).
    loss_ : np.float64
        Loss after the last epoch (L2 penalty included).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best validation accuracy with early stopping, else None.
    %(shared_attributes)s

    See Also
    --------
    TorchMLPClassifier : The same estimator with scikit-learn's MLP.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import TorchClassifier
    >>> class Residual(nn.Module):
    ...     def __init__(self, n_features_in, n_outputs, width=16):
    ...         super().__init__()
    ...         self.inner = nn.Linear(n_features_in, width)
    ...         self.block = nn.Linear(width, width)
    ...         self.out = nn.Linear(width, n_outputs)
    ...     def forward(self, X):
    ...         h = torch.relu(self.inner(X))
    ...         return self.out(h + torch.relu(self.block(h)))
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> clf = TorchClassifier(Residual, module__width=32, max_iter=200,
    ...                       learning_rate_init=0.02, random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    >>> clf.get_params()["module__width"]
    32
    """

    _parameter_constraints: dict = {
        **BaseTorchModule._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        module=None,
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        dtype=None,
        class_weight=None,
        max_grad_norm=None,
        predict_batch_size=16384,
        **module_params,
    ):
        super().__init__(
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            device=device,
            dtype=dtype,
            max_grad_norm=max_grad_norm,
            predict_batch_size=predict_batch_size,
        )
        self.module = module
        self.class_weight = class_weight
        self._store_module_params(module_params)
