"""Our regressors: TorchMLPRegressor (sklearn's MLPRegressor over a torch
module) and TorchRegressor (the same over the user's module)."""

from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._base import BaseTorchMLP, _supports_partial_fit
from ._docstrings import assemble
from ._module import BaseTorchModule
from ._targets import ContinuousTarget


class RegressorMethods:
    """What our regressors share over their base: targets, partial_fit and
    predict."""

    # MLPRegressor's partial_fit is never hidden (its availability check is
    # always true) and fails when called with lbfgs; ours is hidden there, as
    # MLPClassifier's is.
    @available_if(_supports_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_targets(self, y, first_pass, classes):
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        target = ContinuousTarget(n_outputs, self.loss)
        target.check_targets(y)
        if first_pass:
            self._target = target
        elif n_outputs != self._target.n_outputs:
            raise ValueError(
                f"y has {n_outputs} output(s) where the previous call to fit had "
                f"{self._target.n_outputs}."
            )

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values: float32 when both ``X`` and the network
            are, else float64 (as MLPRegressor's).
        """
        check_is_fitted(self)
        return self._target.predict(self._raw_outputs(X))


# The entries both estimators share are in _docstrings; assemble inserts them
# (parameters in signature order) at the %(shared_...)s lines.
@assemble(sklearn="MLPRegressor")
class TorchMLPRegressor(RegressorMethods, RegressorMixin, BaseTorchMLP):
    """Multi-layer perceptron regressor trained with PyTorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`:
    same parameters, fitted attributes and behaviour, trained as a real
    :class:`torch.nn.Module` on the CPU or a GPU, with MLPRegressor's losses
    (half squared error, or half Poisson deviance with an exp output), one
    output per target column.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        ``"squared_error"``: half the squared error, identity output.
        ``"poisson"``: half the Poisson deviance, with an exp output (``y``
        must be non-negative). Both are MLPRegressor's losses.

    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer. An
        empty tuple gives a linear model.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its R² stops
        improving, and restore the best weights (of equally good epochs, the
        latest).

    %(shared_parameters)s

    Attributes
    ----------
    module_ : torch.nn.Sequential
        The trained network, in eval mode; it outputs the linear predictor
        (the log of the prediction with ``loss="poisson"``).
    n_outputs_ : int
        Number of outputs (target columns).
    out_activation_ : str
        ``"identity"``, or ``"exp"`` with ``loss="poisson"``.
    loss_ : np.float64
        Loss after the last epoch (L2 penalty included), as MLPRegressor's:
        half the squared error averaged over the outputs, or half the Poisson
        deviance summed over them.
    validation_scores_ : list of float or None
        Validation R² after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best validation R² with early stopping, else None.
    %(shared_attributes)s

    See Also
    --------
    sklearn.neural_network.MLPRegressor : The numpy implementation.
    TorchMLPClassifier : The classifier.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skorchlite import TorchMLPRegressor
    >>> X, y = make_regression(200, n_features=4, noise=1.0, random_state=0)
    >>> y = y / y.std()  # targets of unit scale, as for any MLP
    >>> reg = TorchMLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs",
    ...                         random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseTorchMLP._parameter_constraints,
        "loss": [StrOptions(set(ContinuousTarget.LOSSES))],
    }

    def __init__(
        self,
        loss="squared_error",
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
        self.loss = loss


@assemble(sklearn="MLPRegressor")
class TorchRegressor(RegressorMethods, RegressorMixin, BaseTorchModule):
    """Regressor training your own ``torch.nn.Module``.

    :class:`TorchMLPRegressor`'s training, losses and guarantees for any
    module returning one output per target column.

    Parameters
    ----------
    module : type or callable, default=None
        An ``nn.Module`` subclass, or a function returning a module, mapping
        a float batch ``(n, n_features)`` to outputs ``(n, n_outputs)`` (the
        log of the prediction with ``loss="poisson"``). A fit calls it with
        the ``module__*`` parameters and, where its signature has them,
        ``n_features_in`` and ``n_outputs`` (the sizes the data decides).
        Required; an instance is refused (each fit builds and
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

    loss : {"squared_error", "poisson"}, default="squared_error"
        ``"squared_error"``: half the squared error, identity output.
        ``"poisson"``: half the Poisson deviance, with an exp output (``y``
        must be non-negative).

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its R² stops
        improving, and restore the best weights (of equally good epochs, the
        latest).

    %(shared_parameters)s

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module, in eval mode.
    n_outputs_ : int
        Number of outputs (target columns).
    out_activation_ : str
        ``"identity"``, or ``"exp"`` with ``loss="poisson"``.
    loss_ : np.float64
        Loss after the last epoch (L2 penalty included).
    validation_scores_ : list of float or None
        Validation R² after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best validation R² with early stopping, else None.
    %(shared_attributes)s

    See Also
    --------
    TorchMLPRegressor : The same estimator with scikit-learn's MLP.

    Examples
    --------
    >>> from torch import nn
    >>> from sklearn.datasets import make_regression
    >>> from skorchlite import TorchRegressor
    >>> def mlp(n_features_in, n_outputs, width=32):
    ...     return nn.Sequential(nn.Linear(n_features_in, width), nn.Tanh(),
    ...                          nn.Linear(width, n_outputs))
    >>> X, y = make_regression(200, n_features=5, noise=1, random_state=0)
    >>> reg = TorchRegressor(mlp, solver="lbfgs", random_state=0)
    >>> reg.fit(X, y / y.std()).score(X, y / y.std()) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseTorchModule._parameter_constraints,
        "loss": [StrOptions(set(ContinuousTarget.LOSSES))],
    }

    def __init__(
        self,
        module=None,
        *,
        loss="squared_error",
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
        self.loss = loss
        self._store_module_params(module_params)
