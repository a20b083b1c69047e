"""The estimator shared by all of ours, and the MLPs' network.

:class:`BaseTorchEstimator` is target- and network-agnostic: the training
parameters and their validation, the fit (validation, initialization, the
training plan handed to the loop, snapshot and restore on failure, progress
and callbacks, publishing the fitted attributes), batched prediction and
pickling. Its subclasses say which network it trains: :class:`BaseTorchMLP`
builds MLPClassifier's (``hidden_layer_sizes``, ``activation``, ``dropout``),
:class:`skorchlite._module.BaseTorchModule` calls the user's ``module``. The
classifier and regressor add their target handling, predict methods,
docstrings and tags.
"""

import copy
import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    column_or_1d,
    validate_data,
)

from ._device import (
    cpu_threads_for,
    module_on_cpu,
    resolve_device,
    resolve_dtype,
    torch_threads,
    without_inference_tensors,
)
from ._engine.activations import ACTIVATIONS
from ._engine.data import TrainingData, check_weight_sum, dense_rows
from ._engine.loop import History, TrainingDivergedError
from ._engine.network import (
    build_mlp,
    check_hidden_layer_sizes,
    dropout_generator,
    linear_layers,
)
from ._engine.solvers import SOLVERS
from ._engine.spec import FitSpec, SolverSettings
from ._engine.stack import DropoutMasks, stack_of
from ._layer_arrays import read_layer_arrays, write_layer_arrays
from ._progress import CallbackEpochs, Progress, epoch_display
from ._state import (
    LIVE_KEYS,
    STATE_KEYS,
    check_param_names,
    check_solver_state,
    check_state_keys,
    fitted_state,
    mlp_values,
    rebuild_mlp,
    rebuild_solver_state,
    restore_fitted,
    solver_state_from_torch,
    solver_state_values,
)
from ._warnings import warn_at_caller

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9 has no callback API

    class CallbackSupportMixin:
        """Stand-in for sklearn's mixin: no ``set_callbacks``."""


def _supports_partial_fit(estimator):
    """``available_if`` check of partial_fit: the solver says."""
    error = SOLVERS[estimator.solver].partial_fit_error()
    if error is not None:
        raise AttributeError(error)
    return True


def has_callbacks(estimator):
    """Whether sklearn callbacks are set on ``estimator``."""
    return bool(getattr(estimator, "_skl_callbacks", None))


def fitted_target(estimator):
    """The target entry of a fitted estimator (for the exporters)."""
    return estimator._target


def prepare_fit(estimator, X, y, sample_weight):
    """Validate and initialize ``estimator`` for a first fit on ``(X, y)``, as
    its own ``fit`` does, and return the call's :class:`FitSpec`; for the
    batched searches (``estimator.module_`` then holds the initial weights).

    Raises what the estimator's ``fit`` raises on invalid parameters or data;
    warnings are the caller's to filter.
    """
    estimator._validate_params()
    estimator._check_architecture()
    X, y = estimator._validate_fit_data(X, y, True, None)
    weights = estimator._training_weights(X, y, sample_weight)
    estimator._initialize(X)
    return estimator._fit_spec(X, y, weights, False, estimator._seed)


def publish_fit(estimator, outcome):
    """Give ``estimator`` the result of a fit trained elsewhere (a batched
    search's group): its final weights and history. Returns the error its
    own fit would raise, as ``"TypeName: message"``, or None."""
    with torch.no_grad():
        for p, final in zip(estimator.module_.parameters(), outcome.final, strict=True):
            p.copy_(final)
    estimator.module_.eval()
    if outcome.error is not None:
        return f"TrainingDivergedError: {outcome.error}"
    try:
        estimator._check_finite_weights()
    except ValueError as exc:
        return f"ValueError: {exc}"
    estimator._publish_history(outcome.history, outcome)
    return None


def _conclude(estimator, history, outcome):
    """Raise the error of a fit call, or publish it and give its warnings."""
    if outcome.error is not None:
        raise TrainingDivergedError(outcome.error)
    estimator._check_finite_weights()
    estimator._publish_history(history, outcome)
    for message in outcome.warnings:
        warn_at_caller(message, ConvergenceWarning)


class BaseTorchEstimator(CallbackSupportMixin, BaseEstimator):
    """Base of our estimators: the training; subclasses give the network.

    A subclass defines :meth:`_check_architecture`, :meth:`_build_module`,
    :meth:`_penalized_weights`, :meth:`_training_randomness` and the state
    codec (:meth:`_module_values`, :meth:`_rebuild_module`).
    """

    # The "?" link of the HTML repr (sklearn's _HTMLDocumentationLinkMixin).
    _doc_link_module = "skorchlite"
    _doc_link_template = (
        "https://skorchlite.readthedocs.io/en/stable/generated/"
        "{estimator_module}.{estimator_name}.html"
    )

    _parameter_constraints: dict = {
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float32", "float64"}), None],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "predict_batch_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
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
        max_grad_norm=None,
        predict_batch_size=16384,
    ):
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype
        self.max_grad_norm = max_grad_norm
        self.predict_batch_size = predict_batch_size

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; sparse matrices are densified one batch at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets: class labels (or a 0/1 indicator matrix for multilabel
            targets) for classifiers, real numbers for regressors.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights; an integer weight equals repeating the row.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        # Training needs autograd even when called inside the user's no_grad()
        # or inference_mode() block (where the module would otherwise not
        # learn). A with block, not decorators: their frames would come between
        # the user's call and our warnings.
        with torch.inference_mode(False), torch.enable_grad():
            return self._fit_with_grad(X, y, sample_weight, incremental, classes)

    def _fit_with_grad(self, X, y, sample_weight, incremental, classes):
        first_pass = not hasattr(self, "module_") or not (
            self.warm_start or incremental
        )
        self._check_architecture()
        # Before the snapshot, so that a failed fit keeps what sklearn needs to
        # tear the callbacks down.
        callback_ctx = self._start_callbacks(incremental)
        # Snapshot before validation, which already sets fitted attributes
        # (n_features_in_, classes_, ...): a failed fit must not leave them.
        state_before = self._snapshot(first_pass)
        try:
            X, y = self._validate_fit_data(X, y, first_pass, classes)
            weights = self._training_weights(X, y, sample_weight)
            if first_pass:
                self._initialize(X)
            callbacks = None
            if callback_ctx is not None:
                metadata = (
                    None if sample_weight is None else {"sample_weight": sample_weight}
                )
                callback_ctx.call_on_fit_task_begin(
                    estimator=self, X=X, y=y, metadata=metadata
                )
                callbacks = CallbackEpochs(
                    self, callback_ctx, X, y, metadata, self.module_
                )
            self._train(X, y, weights, incremental, callbacks)
            if callback_ctx is not None:
                callback_ctx.call_on_fit_task_end(
                    estimator=self,
                    X=X,
                    y=y,
                    metadata=metadata,
                    reconstruction_attributes={},
                )
        except BaseException:
            self._restore(state_before)
            raise
        return self

    @property
    def _solver_spec(self):
        """The registry entry of ``solver``."""
        return SOLVERS[self.solver]

    def _start_callbacks(self, incremental):
        """The callback context of this fit call, or None without callbacks."""
        if not getattr(self, "_skl_callbacks", None):
            return None
        return self._init_callback_context(
            max_subtasks=self._solver_spec.epochs_per_call(self.max_iter, incremental)
        )

    def _validate_fit_data(self, X, y, first_pass, classes):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=not is_classifier(self),
            dtype=(np.float64, np.float32),
            reset=first_pass,
        )
        if sp.issparse(X):
            X = X.tocsr()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._validate_targets(y, first_pass, classes)
        return X, y

    def _validate_targets(self, y, first_pass, classes):
        """Check ``y`` and, on a first pass, set ``_target`` from it."""
        raise NotImplementedError

    def _training_weights(self, X, y, sample_weight):
        """The rows' weights, or None when all rows weigh the same."""
        if sample_weight is None:
            return None
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        check_weight_sum(weights, "sample_weight")
        return weights

    def _snapshot(self, first_pass):
        """What to put back if training fails: attributes, and weights if reused."""
        attributes = dict(vars(self))
        if first_pass:
            return attributes, None, None
        state = getattr(self, "_solver_state", None)
        # One thread: waking a thread pool costs more than copying a small state,
        # and partial_fit takes this snapshot on every call.
        with torch_threads(1):
            return (
                attributes,
                copy.deepcopy(self.module_.state_dict()),
                None if state is None else state.copy(),
            )

    def _restore(self, snapshot):
        attributes, module_state, solver_state = snapshot
        vars(self).clear()
        vars(self).update(attributes)
        if module_state is not None:
            self.module_.load_state_dict(module_state)
        if solver_state is not None:
            self._solver_state = solver_state

    # --------------------------------------------- what a subclass defines

    def _check_architecture(self):
        """Raise ValueError if the network's parameters are invalid (before
        anything is fitted)."""
        raise NotImplementedError

    def _build_module(self, X, n_outputs, dtype, device):
        """The initial network for ``X`` (validated) and ``n_outputs`` outputs,
        in ``dtype`` on ``device``, drawn from ``self._seed``."""
        raise NotImplementedError

    def _penalized_weights(self):
        """The parameters of ``module_`` under the L2 penalty ``alpha``."""
        raise NotImplementedError

    def _training_randomness(self, seed, device):
        """A context in which the module's training-mode draws (dropout) come
        from a generator seeded with ``seed``."""
        raise NotImplementedError

    def _module_values(self):
        """``module_`` as plain values (``_module_state``), or TypeError if it
        cannot be (a module the user changed)."""
        raise NotImplementedError

    def _rebuild_module(self, saved, state):
        """The CPU module of the plain values ``saved`` (see
        :meth:`_module_values`), checked against the parameters and the
        fitted attributes in ``state``; ValueError if they disagree."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit

    def _initialize(self, X):
        target = self._target
        device = resolve_device(self.device)
        self._seed = _seed_from(self.random_state)
        dtype = resolve_dtype(
            self.dtype, self._solver_spec.training_dtype(X.dtype), device
        )
        self.module_ = self._build_module(X, target.n_outputs, dtype, device).eval()
        self.n_outputs_ = target.n_outputs
        self.out_activation_ = target.out_activation
        self._history = History()
        self._solver_state = None

    def _train(self, X, y, weights, incremental, callbacks=None):
        # Work on a copy of the history so that a failed fit leaves it untouched.
        history = copy.deepcopy(self._history)
        spec = self._fit_spec(X, y, weights, incremental, self._seed + history.n_iter)
        solver = spec.solver
        stack = self._stack(spec)
        state = self._solver_state if incremental else None
        if state is None:
            state = solver.new_state(stack.params, [spec.settings])
        listener = Progress(
            [
                epoch_display(self.verbose, spec.max_epochs, type(self).__name__),
                callbacks,
            ]
        )
        device, _ = self._module_placement()
        threads = cpu_threads_for(self.module_, spec.batch_size, backward=True)
        randomness = self._training_randomness(spec.seed, device)
        with randomness, torch_threads(threads):
            outcome = solver.train(spec, stack, history, state, listener)
        self._solver_state = state
        if outcome.interrupted:
            warn_at_caller(
                "Training interrupted by user; keeping the weights reached so far."
            )
        _conclude(self, history, outcome)

    def _stack(self, spec):
        """The module as the engine's stack of one (closed-form gradients for
        our MLPs, autograd for a module the user changed)."""
        dropout = DropoutMasks.of([spec], [self.module_])
        return stack_of(self.module_, self._penalized_weights(), dropout)

    def _fit_spec(self, X, y, weights, incremental, seed):
        """The :class:`FitSpec` of a fit call on validated data.

        Both the single fit and the batched search train from it.
        """
        solver = self._solver_spec
        warning = solver.batch_size_warning(self.batch_size, X.shape[0])
        if warning is not None:
            warn_at_caller(warning)
        validation = None
        if solver.holds_out(self.early_stopping):
            X, X_val, y, y_val, weights, w_val = self._split_validation(
                X, y, weights, seed
            )
            validation = self._to_training_data(X_val, y_val, w_val)
        settings = SolverSettings.of(self)
        return FitSpec(
            data=self._to_training_data(X, y, weights),
            validation=validation,
            target=self._target,
            solver=solver,
            settings=settings,
            seed=seed,
            batch_size=solver.batch_size(self.batch_size, X.shape[0]),
            max_epochs=solver.epochs_per_call(self.max_iter, incremental),
            shuffle=bool(self.shuffle),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            max_grad_norm=self.max_grad_norm,
            # The MLPs' dropout layers (a user's module draws its own).
            dropout=getattr(self, "dropout", 0.0),
            validation_batch_size=self.predict_batch_size,
            incremental=incremental,
        )

    def _split_validation(self, X, y, weights, seed):
        """Hold out ``validation_fraction`` of the rows (at least 2), stratified
        as the target encoder says."""
        n_samples = X.shape[0]
        n_val = max(math.ceil(self.validation_fraction * n_samples), 2)
        if n_samples - n_val < 1:
            raise ValueError(
                f"The validation set is too small: early_stopping needs at least 3 "
                f"samples, got n_samples={n_samples}. Increase the size of your "
                "dataset or set early_stopping=False."
            )
        stratify = self._target.stratification(y, n_samples - n_val, n_val)
        arrays = (X, y) if weights is None else (X, y, weights)
        split = train_test_split(
            *arrays, test_size=n_val, random_state=seed % 2**32, stratify=stratify
        )
        return split if weights is not None else (*split, None, None)

    def _module_placement(self):
        """The device and dtype of the module (read from its first parameter)."""
        first = next(self.module_.parameters())
        return first.device, first.dtype

    def _to_training_data(self, X, y, weights):
        device, dtype = self._module_placement()
        _check_range(X, dtype, "X")
        _check_range(weights, dtype, "sample_weight")
        if not sp.issparse(X):
            X = _as_tensor(X, dtype, device)
        return TrainingData(
            X=X,
            y=self._target.encode(y, dtype).to(device),
            sample_weight=None
            if weights is None
            else _as_tensor(weights, dtype, device),
            device=device,
            dtype=dtype,
        )

    def _check_finite_weights(self):
        if not all(torch.isfinite(p).all() for p in self.module_.parameters()):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may "
                "contain large values and need to be preprocessed; or lower "
                "learning_rate_init."
            )

    def _publish_history(self, history, outcome):
        """Set the fitted attributes from ``history`` after a call that ended
        as ``outcome`` says (``n_iter_`` counts one call, like MLPClassifier's)."""
        self._history = history
        self.n_iter_ = outcome.n_iter
        self.t_ = history.t
        # np.float64 like MLPClassifier's; the validation scores are floats
        # there too.
        self.loss_ = None if history.loss is None else np.float64(history.loss)
        if not outcome.records_curves:  # L-BFGS, as MLPClassifier's
            return
        self.loss_curve_ = [np.float64(loss) for loss in history.loss_curve]
        self._no_improvement_count = history.no_improvement_count
        if self.early_stopping:
            self.validation_scores_ = list(history.validation_scores)
            self.validation_loss_curve_ = list(history.validation_losses)
            self.best_validation_score_ = history.best_validation_score
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.float64(history.best_loss)

    # -------------------------------------------------------------- predict

    def _raw_outputs(self, X):
        """The network's outputs (logits, or the linear predictor of a
        regression), shape (n_samples, n_outputs_), computed batch-wise.

        Their dtype is MLPClassifier's: the wider of the input's and the
        network's (float32 only when both are).
        """
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=(np.float64, np.float32),
            reset=False,
        )
        if sp.issparse(X):
            X = X.tocsr()
        device, dtype = self._module_placement()
        _check_range(X, dtype, "X")
        outputs = np.empty(
            (X.shape[0], self.n_outputs_),
            dtype=np.result_type(X.dtype, torch.empty(0, dtype=dtype).numpy().dtype),
        )
        step = self.predict_batch_size
        threads = cpu_threads_for(self.module_, min(step, X.shape[0]), backward=False)
        with torch.inference_mode(), torch_threads(threads):
            for start in range(0, X.shape[0], step):
                rows = X[start : start + step]
                if sp.issparse(rows):
                    batch = dense_rows(rows, dtype, device)
                else:
                    batch = _as_tensor(rows, dtype, device)
                outputs[start : start + step] = self.module_(batch).cpu().numpy()
        if not np.isfinite(outputs).all():
            # Finite weights and inputs can still overflow (weights of 1e308 in
            # a crafted file, inputs far off the training data's scale): the
            # probabilities would be NaN.
            raise ValueError(
                "The network's outputs overflow to infinity or NaN for some rows "
                f"of X (|X| up to {_largest(X):.3g}; largest weight "
                f"{max(p.abs().max().item() for p in self.module_.parameters()):.3g})."
                " Scale X as the training data was, or refit the model."
            )
        return outputs

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        # Plain numpy arrays and Python values only (skorchlite._state): pickle,
        # joblib, deepcopy, skops and mlflow need no torch object, and a
        # GPU-trained model loads on a CPU. object.__getstate__ returns the live
        # __dict__ itself: copy it, or the estimator being pickled would change.
        state = dict(super().__getstate__())
        if "module_" in state:
            solver_state = getattr(self, "_solver_state", None)
            try:
                with torch_threads(1):
                    plain = fitted_state(
                        self,
                        self._module_values(),
                        self._target,
                        self._history,
                        solver_state,
                    )
            except TypeError:
                # A module_ the user changed into layers we do not build cannot
                # be plain arrays: it travels as torch objects (pickle and
                # deepcopy load it; skops cannot), its solver state as values.
                state["module_"] = module_on_cpu(self.module_)
                state["_solver_state"] = solver_state_values(self.solver, solver_state)
                return state
            for key in LIVE_KEYS:
                state.pop(key, None)
            state.update(plain)
        return state

    def __setstate__(self, state):
        """Restore a pickled (or skops-loaded) estimator, checking every value.

        Raises
        ------
        ValueError
            If the fitted state is inconsistent with the architecture (a
            crafted or corrupted file): see :mod:`skorchlite._state`.
        """
        if not isinstance(state, dict):
            raise ValueError(f"the state of {type(self).__name__} must be a dict.")
        state = dict(state)
        check_state_keys(self, state)
        if isinstance(state.get("module_"), torch.nn.Module):
            restore = self._setstate_torch  # a custom module_, or an older pickle
        elif "_module_state" in state:
            restore = self._setstate_plain
        elif any(key in state for key in (*STATE_KEYS, *LIVE_KEYS)):
            raise ValueError("a fitted state without its module.")
        else:
            restore = None
        super().__setstate__(state)
        if restore is not None:
            try:
                restore(state)
            except BaseException:
                vars(self).clear()
                raise

    def _setstate_plain(self, state):
        """Rebuild the torch objects from the plain values of ``state``."""
        check_param_names(self, state)
        try:
            self._validate_params()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid parameters: {exc}") from None
        attributes, solver_values = restore_fitted(self, state, self._rebuild_module)
        for key in STATE_KEYS:
            vars(self).pop(key, None)
        vars(self).update(attributes)
        self._move_to_available_device()
        self._solver_state = rebuild_solver_state(self, solver_values)

    def _setstate_torch(self, state):
        """Restore the torch objects pickled with ``state`` (already in
        ``__dict__``): a module_ the user changed, or an older pickle."""
        self._move_to_available_device()
        if "_optimizer" in vars(self):  # an older pickle: torch's state_dict
            optimizer_state = vars(self).pop("_optimizer")
            optimizer_state = without_inference_tensors(self.module_, optimizer_state)
            self._solver_state = solver_state_from_torch(self, optimizer_state)
        else:
            values = vars(self).pop("_solver_state", None)
            checked = check_solver_state(values, self, self.module_)
            self._solver_state = rebuild_solver_state(self, checked)

    def _move_to_available_device(self):
        """After unpickling, go to ``device`` if available, else stay on the CPU."""
        try:
            device = resolve_device(self.device)
        except ValueError as exc:
            warn_at_caller(f"{exc} The loaded model stays on the CPU.")
            return
        self.module_.to(device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class BaseTorchMLP(BaseTorchEstimator):
    """Base of the MLP estimators: use TorchMLPClassifier or TorchMLPRegressor."""

    _parameter_constraints: dict = {
        **BaseTorchEstimator._parameter_constraints,
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        dropout=0.0,
        **training_parameters,
    ):
        super().__init__(**training_parameters)
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout

    def _check_architecture(self):
        check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _build_module(self, X, n_outputs, dtype, device):
        hidden_layer_sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        self.n_layers_ = len(hidden_layer_sizes) + 2
        return build_mlp(
            X.shape[1],
            hidden_layer_sizes,
            n_outputs,
            activation=self.activation,
            dropout=self.dropout,
            # MLPClassifier's draws: np.random.RandomState(random_state).
            random_state=np.random.RandomState(self._seed % 2**32),
            dtype=dtype,
            device=device,
        )

    def _penalized_weights(self):
        return [layer.weight for layer in linear_layers(self.module_)]

    def _training_randomness(self, seed, device):
        return dropout_generator(self.module_, seed, device)

    def _module_values(self):
        return mlp_values(self)

    def _rebuild_module(self, saved, state):
        return rebuild_mlp(self, saved, state)

    # --------------------------------------------------- derived attributes

    @property
    def coefs_(self):
        """Weight matrices, ``coefs_[i]`` of shape (fan_in, fan_out).

        On the CPU, views of the module's weights: editing them in place
        edits the model, as editing ``MLPClassifier``'s does. On a GPU,
        read-only copies. Assigning an item or the whole list copies the
        values into the module (see :mod:`skorchlite._layer_arrays`).
        """
        return read_layer_arrays(self.module_, "coefs_")

    @coefs_.setter
    def coefs_(self, arrays):
        self._write_layer_arrays("coefs_", arrays)

    @property
    def intercepts_(self):
        """Bias vectors of the layers, ``intercepts_[i]`` of shape (fan_out,),
        shared with the module as ``coefs_`` is."""
        return read_layer_arrays(self.module_, "intercepts_")

    @intercepts_.setter
    def intercepts_(self, arrays):
        self._write_layer_arrays("intercepts_", arrays)

    def _write_layer_arrays(self, name, arrays):
        if not hasattr(self, "module_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: fit it "
                f"before setting {name} (its shapes are the fitted network's)."
            )
        write_layer_arrays(self.module_, name, arrays)


def _seed_from(random_state):
    """An int seed from ``random_state``, drawing from no global generator."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(random_state.randint(np.iinfo(np.int32).max))


def _check_range(array, dtype, name):
    """Raise if float64 values would overflow to inf in a float32 network."""
    if array is None or dtype != torch.float32:
        return
    values = array.data if sp.issparse(array) else array
    if values.dtype != np.float64 or not values.size:
        return
    largest = max(values.max(), -values.min())
    if largest > np.finfo(np.float32).max:
        raise ValueError(
            f"{name} has values up to {largest:.9g} in magnitude, beyond the range "
            "of float32, the precision of this network. Scale the data (e.g. "
            "with StandardScaler) or use dtype='float64' on the CPU."
        )


def _largest(array):
    values = array.data if sp.issparse(array) else array
    return float(np.abs(values).max()) if values.size else 0.0


def _as_tensor(array, dtype, device):
    # np.require copies read-only arrays, which torch.from_numpy would warn about.
    array = np.require(array, requirements=["W"])
    return torch.from_numpy(array).to(device=device, dtype=dtype)
