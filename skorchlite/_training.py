"""The training loop: batching, optimizer steps, stopping rules and history.

Nothing here knows about scikit-learn; the estimator hands in tensors, a module,
an optimizer and a per-sample loss, and reads the :class:`History` back.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import torch
from torch.optim.adam import adam as functional_adam

from ._backprop import ClosedFormBackprop
from ._progress import EpochListener
from ._warnings import warn_at_caller


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite, or blew up."""


# In float64 an exploding loss can take dozens of epochs to overflow, and the
# stopping rule ends such a fit first: a loss this many times above the lowest
# one seen (and above 1) counts as diverged too.
DIVERGED_LOSS_FACTOR = 1e6


def diverged(loss, lowest_loss):
    """Whether an epoch's ``loss`` counts as diverged, given the lowest so far."""
    return not math.isfinite(loss) or loss > DIVERGED_LOSS_FACTOR * max(
        lowest_loss, 1.0
    )


@dataclass
class History:
    """What the loop learned so far; it carries over warm starts and partial_fit."""

    n_iter: int = 0
    t: int = 0
    loss: float | None = None
    loss_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    validation_losses: list = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    no_improvement_count: int = 0

    def record_loss(self, loss, tol):
        """Count an epoch whose training loss fell by less than ``tol``."""
        if loss > self.best_loss - tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        self.best_loss = min(self.best_loss, loss)

    def record_validation(self, loss, score, tol):
        """Track the validation loss and score; True if the score is the best
        so far."""
        self.validation_losses.append(loss)
        self.validation_scores.append(score)
        if score < self.best_validation_score + tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        if score >= self.best_validation_score:
            self.best_validation_score = score
            return True
        return False

    def checkpoint(self):
        """A function that drops what a partly recorded epoch left behind."""
        n_iter, t = self.n_iter, self.t
        curves = [self.loss_curve, self.validation_scores, self.validation_losses]
        lengths = [len(curve) for curve in curves]

        def drop_partial_epoch(n_samples):
            epochs = self.n_iter - n_iter
            self.t = t + epochs * n_samples
            for curve, length in zip(curves, lengths, strict=True):
                del curve[length + epochs :]
            self.loss = self.loss_curve[-1] if self.loss_curve else None

        return drop_partial_epoch


@dataclass
class TrainingData:
    """Training rows: a dense tensor on the device, or a scipy CSR matrix.

    Sparse rows are densified one batch at a time and moved to the device, so
    the dense matrix never exists as a whole.
    """

    X: object
    y: torch.Tensor
    sample_weight: torch.Tensor | None
    device: torch.device
    dtype: torch.dtype

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def is_sparse(self):
        return not isinstance(self.X, torch.Tensor)

    def epoch_batches(self, batch_size, permutation):
        """Yield ``(X, y, sample_weight)`` batches in the order of ``permutation``."""
        X, y, w = self.X, self.y, self.sample_weight
        if permutation is not None:
            on_device = permutation.to(self.device, non_blocking=True)
            y = y[on_device]
            w = None if w is None else w[on_device]
            if not self.is_sparse:
                X = X[on_device]
        for start in range(0, self.n_samples, batch_size):
            stop = start + batch_size
            if self.is_sparse:
                rows = (
                    slice(start, stop)
                    if permutation is None
                    else permutation[start:stop].numpy()
                )
                X_batch = dense_rows(X[rows], self.dtype, self.device)
            else:
                X_batch = X[start:stop]
            yield X_batch, y[start:stop], None if w is None else w[start:stop]


@dataclass
class FitPlan:
    """What one stochastic fit call trains on, and for how long.

    The estimator makes it (:meth:`BaseTorchMLP._fit_plan`); the single fit
    (:class:`Trainer`) and the batched search both train from it.
    """

    data: TrainingData
    #: The rows held out for early stopping, or None.
    validation: TrainingData | None
    batch_size: int
    max_epochs: int
    #: Seeds this call's batch order.
    seed: int


def dense_rows(X_sparse_rows, dtype, device):
    """A dense tensor on ``device`` from a few rows of a scipy sparse matrix."""
    dense = torch.from_numpy(X_sparse_rows.toarray())
    return dense.to(device=device, dtype=dtype, non_blocking=True)


def check_weight_sum(weights, names):
    """Raise a ValueError if the training weights do not sum to a positive number.

    The objective divides by ``sum(w)``; MLPClassifier accepts negative
    weights, and so do we while their sum stays positive.

    Parameters
    ----------
    weights : ndarray of shape (n_samples,) or None
    names : str
        What the weights are made of, for the message.

    Examples
    --------
    >>> import numpy as np
    >>> check_weight_sum(np.array([2.0, -1.0]), "sample_weight")
    >>> check_weight_sum(np.array([1.0, -1.0]), "sample_weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sample_weight sums to 0.0 (1 of 2 weights are negative); ...
    """
    if weights is None:
        return
    total = float(np.sum(weights))
    if total > 0:
        return
    n_negative = int(np.count_nonzero(weights < 0))
    raise ValueError(
        f"{names} sums to {total!r} ({n_negative} of {len(weights)} weights are "
        "negative); the weights of the training rows must sum to a positive "
        "number, as the loss is their weighted mean sum(w * loss) / sum(w)."
    )


class LearningRateSchedule:
    """MLPClassifier's ``learning_rate`` policies, driving the optimizer's lr.

    ``"constant"`` keeps it; ``"invscaling"`` sets ``lr_init / (t + 1) ** power_t``
    after each epoch (``t`` = samples seen); ``"adaptive"`` divides it by 5 when
    the loss plateaus and stops once it falls below 1e-6.
    """

    def __init__(self, optimizer, policy, learning_rate_init, power_t):
        self.optimizer = optimizer
        self.policy = policy
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t

    @property
    def learning_rate(self):
        return self.optimizer.param_groups[0]["lr"]

    def _set(self, learning_rate):
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

    def epoch_end(self, samples_seen):
        if self.policy == "invscaling":
            self._set(self.learning_rate_init / (samples_seen + 1) ** self.power_t)

    def on_plateau(self):
        """Return True if training should stop, else lower the rate and go on."""
        if self.policy != "adaptive" or self.learning_rate <= 1e-6:
            return True
        self._set(self.learning_rate / 5.0)
        return False


class Objective:
    """MLPClassifier's (and MLPRegressor's) objective: weighted mean loss plus
    an L2 penalty.

    ``sum(w * loss) / sum(w) + 0.5 * alpha * ||W||^2 / sum(w)``, so that an
    integer sample weight is the same as repeating the row (``sum(w)`` is the
    number of rows when unweighted). The loss of a row sums over its labels.

    Parameters
    ----------
    target : skorchlite._targets.Target
        The kind of ``y``: its per-row loss (and closed-form gradient).
    penalized_weights : list of torch.Tensor
        The weights under the L2 penalty (the biases are not penalized).
    alpha : float
    """

    def __init__(self, target, penalized_weights, alpha):
        self.target = target
        self.loss_fn = target.loss_function()
        self.penalized_weights = penalized_weights
        self.alpha = alpha

    def per_sample(self, logits, y):
        return self.loss_fn(logits, y)

    def __call__(self, logits, y, w):
        """The full objective of a batch, penalty included, for autograd."""
        if w is None:
            loss, weight_sum = self.mean_loss(logits, y), len(y)
        else:
            # A batch whose weights are all zero falls back to its row count, so
            # the L2 term stays bounded without a host sync to skip the batch.
            weight_sum = w.sum()
            weight_sum = torch.where(weight_sum > 0, weight_sum, len(y))
            loss = (self.per_sample(logits, y) * w).sum() / weight_sum
        return loss + self.penalty(weight_sum) if self.alpha else loss

    def mean_loss(self, logits, y):
        """Unweighted mean loss, without the penalty."""
        return self.summed_loss(logits, y) / len(y)

    def summed_loss(self, logits, y):
        """Unweighted loss summed over the rows, without the penalty."""
        return self.loss_fn(logits, y).sum()

    def penalty(self, weight_sum):
        squared_norm = sum(weight.square().sum() for weight in self.penalized_weights)
        return 0.5 * self.alpha * squared_norm / weight_sum

    def add_penalty_gradient(self, weight_sum):
        """Add the penalty's gradient ``alpha * W / weight_sum`` in place.

        Cheaper than differentiating :meth:`penalty` on every step.
        """
        for weight in self.penalized_weights:
            weight.grad.add_(weight.detach(), alpha=self.alpha / weight_sum)


class FunctionalAdamStep:
    """``optimizer.step()`` for Adam, through torch's functional ``adam``.

    ``Optimizer.step`` spends ~150 us per call here in Python (hooks, profiler
    records, regrouping the state), ten times the fused kernel itself. Once a
    first regular step has created the optimizer's state, this calls
    torch's functional ``adam`` on that same state: the same arithmetic, and the
    optimizer still holds (and pickles) everything.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.groups = None

    @classmethod
    def for_optimizer(cls, optimizer):
        """A functional step for a plain Adam/AdamW, else ``optimizer.step``."""
        # Older torch versions keep AdamW apart, without this group key.
        plain_adam = isinstance(
            optimizer, torch.optim.Adam | torch.optim.AdamW
        ) and all(
            "decoupled_weight_decay" in group
            and not (
                group["amsgrad"]
                or group["maximize"]
                or group["differentiable"]
                or group["capturable"]
            )
            for group in optimizer.param_groups
        )
        return cls(optimizer).step if plain_adam else optimizer.step

    @torch.no_grad()  # as Optimizer.step: the unfused kernels update in place
    def step(self):
        if self.groups is None:
            self.optimizer.step()
            self.groups = [
                self._state_lists(group) for group in self.optimizer.param_groups
            ]
            return
        for group, (params, exp_avgs, exp_avg_sqs, steps) in zip(
            self.optimizer.param_groups, self.groups, strict=True
        ):
            beta1, beta2 = group["betas"]
            functional_adam(
                params,
                [param.grad for param in params],
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                foreach=group["foreach"],
                fused=group["fused"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )

    def _state_lists(self, group):
        states = [self.optimizer.state[param] for param in group["params"]]
        return (
            list(group["params"]),
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [state["step"] for state in states],
        )


class StoppingRule:
    """MLPClassifier's end of an epoch: record it, then stop or go on.

    One rule for the single fit (:class:`Trainer`) and the batched search.

    Parameters
    ----------
    history : History
        Updated in place.
    schedule : LearningRateSchedule
    tol, n_iter_no_change : float, int
        Stop when the loss (or validation score) has not improved by ``tol``
        for more than ``n_iter_no_change`` epochs.
    """

    def __init__(self, history, schedule, *, tol, n_iter_no_change):
        self.history = history
        self.schedule = schedule
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.lowest_loss = min(history.loss_curve, default=math.inf)
        #: Why training diverged, with early stopping (which then ends it).
        self.diverged = None

    def record(self, epoch, n_samples, loss, validation):
        """Record epoch ``epoch`` of this call; True if its weights are the best
        so far by validation score.

        A diverged epoch ends training: with early stopping, as MLPClassifier
        does, its validation score is NaN and the best weights stay (see
        ``diverged``); without, there are no weights worth keeping.

        Raises
        ------
        TrainingDivergedError
            If the loss became non-finite or blew up, without early stopping.
        """
        history = self.history
        if diverged(loss, self.lowest_loss):
            message = self._divergence_message(epoch, loss)
            if validation is None:
                raise TrainingDivergedError(message)
            self.diverged = message
            validation = (validation[0], math.nan)
        self.lowest_loss = min(self.lowest_loss, loss)
        history.loss_curve.append(loss)
        history.loss = loss
        history.t += n_samples
        best = False
        if validation is None:
            history.record_loss(loss, self.tol)
        else:
            best = history.record_validation(*validation, self.tol)
        # Counted last, so that an interrupt in here leaves n_iter counting
        # whole epochs only (see History.checkpoint).
        history.n_iter += 1
        self.schedule.epoch_end(history.t)
        return best

    def _divergence_message(self, epoch, loss):
        message = f"Training diverged at epoch {epoch}: the loss became {loss}. "
        if not math.isfinite(loss):
            # MLPClassifier's words for it.
            message += (
                "Solver produced non-finite parameter weights. The input data may "
                "contain large values and need to be preprocessed. "
            )
        return message + (
            f"Lower learning_rate_init (it is {self.schedule.learning_rate_init}), "
            "set max_grad_norm to clip gradients, or scale X (e.g. with "
            "StandardScaler)."
        )

    def plateau(self, watching_validation):
        """After :meth:`record`: ``(stop, message)``, the message None unless
        the rule fired (MLPClassifier's verbose line)."""
        history = self.history
        if not history.no_improvement_count > self.n_iter_no_change:
            return False, None
        stop = self.schedule.on_plateau()
        if not stop:
            history.no_improvement_count = 0
        watched = "Validation score" if watching_validation else "Training loss"
        if not stop:
            action = f"Setting learning rate to {self.schedule.learning_rate:f}"
        elif self.schedule.policy == "adaptive":
            action = "Learning rate too small. Stopping."
        else:
            action = "Stopping."
        return stop, (
            f"{watched} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change:d} consecutive epochs. {action}"
        )


class Trainer:
    """Run epochs of minibatch training on a module.

    Parameters
    ----------
    module : torch.nn.Module
    optimizer : torch.optim.Optimizer
    objective : Objective
    max_grad_norm : float or None
        Clip the global gradient norm to this value.
    schedule : LearningRateSchedule
    tol, n_iter_no_change : float, int
        Stop when the loss (or validation score) has not improved by ``tol``
        for more than ``n_iter_no_change`` epochs.
    validate : callable or None
        ``validate() -> (val_loss, val_score)``; when given, the stopping rule
        watches the validation score and the best weights are restored at the end.
    progress : skorchlite._progress.EpochListener or None
        Told of each epoch (to draw a bar, print a line, call callbacks); may
        ask the loop to stop.
    """

    def __init__(
        self,
        module,
        optimizer,
        objective,
        *,
        max_grad_norm,
        schedule,
        tol,
        n_iter_no_change,
        validate=None,
        progress=None,
    ):
        self.module = module
        self.optimizer = optimizer
        self.objective = objective
        self.max_grad_norm = max_grad_norm
        self.schedule = schedule
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.validate = validate
        self.progress = EpochListener() if progress is None else progress
        # Plain MLPs get their gradients in closed form, others from autograd.
        self.backprop = ClosedFormBackprop.for_module(module, objective)
        #: Set by :meth:`run` when training diverged under early stopping.
        self.diverged = None
        self.optimizer_step = FunctionalAdamStep.for_optimizer(optimizer)

    def _epoch(self, data, batch_size, permutation):
        """One pass over the data; returns the mean loss as a device tensor.

        Unweighted batches take a faster path: the L2 penalty goes straight into
        the gradients, and its value is added once per epoch for the loss curve.
        """
        objective = self.objective
        parameters = [p for g in self.optimizer.param_groups for p in g["params"]]
        batch_totals, n_batches = [], 0
        for X, y, w in data.epoch_batches(batch_size, permutation):
            # Optimizer.zero_grad's profiling hooks cost more than this loop.
            for parameter in parameters:
                parameter.grad = None
            n_rows = X.shape[0]
            if self.backprop is not None:
                batch_totals.append(self.backprop(X, y, w))
            else:
                loss = (
                    objective.mean_loss(self.module(X), y)
                    if w is None
                    else objective(self.module(X), y, w)
                )
                loss.backward()
                batch_totals.append(loss.detach() * n_rows)
            if w is None and objective.alpha:
                objective.add_penalty_gradient(n_rows)
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
            self.optimizer_step()
            n_batches += 1
        # Like MLPClassifier: the mean of the batch losses, weighted by rows.
        epoch_loss = torch.stack(batch_totals).sum() / data.n_samples
        if data.sample_weight is None and objective.alpha:
            # The mean over batches of 0.5 * alpha * ||W||^2 / batch_rows.
            with torch.no_grad():
                epoch_loss += objective.penalty(data.n_samples / n_batches)
        return epoch_loss

    def run(self, data, history, *, max_epochs, batch_size, shuffle, generator):
        """Train for up to ``max_epochs`` epochs, updating ``history`` in place.

        Returns
        -------
        stopped_early : bool
            True if a stopping rule (or ``progress``) ended training before
            ``max_epochs``.
        """
        best_state = None
        stopped_early = False
        rule = StoppingRule(
            history,
            self.schedule,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
        )
        progress = self.progress
        progress.start(max_epochs)
        drop_partial_epoch = history.checkpoint()
        self.module.train()
        try:
            for epoch in range(1, max_epochs + 1):
                progress.epoch_begin()
                started = time.perf_counter()
                permutation = (
                    torch.randperm(data.n_samples, generator=generator)
                    if shuffle
                    else None
                )
                loss = self._epoch(data, batch_size, permutation).item()
                # Validate (and copy the weights that may be the best) before
                # recording anything of the epoch: a Ctrl-C in the validation
                # pass then leaves no epoch recorded without its score.
                validation, candidate = None, None
                if self.validate is not None:
                    validation = self.validate()
                    if validation[1] >= history.best_validation_score:
                        candidate = _copy_state(self.module)
                if rule.record(epoch, data.n_samples, loss, validation):
                    best_state = candidate
                if rule.diverged is not None:
                    if best_state is None:  # no epoch of this call to go back to
                        raise TrainingDivergedError(rule.diverged)
                    progress.epoch_end(
                        epoch, loss, validation, time.perf_counter() - started
                    )
                    self.diverged = rule.diverged
                    stopped_early = True
                    break
                stop_requested = progress.epoch_end(
                    epoch, loss, validation, time.perf_counter() - started
                )
                if stop_requested:
                    stopped_early = True
                    break
                stop, message = rule.plateau(self.validate is not None)
                if message is not None:
                    progress.message(message)
                if stop:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            drop_partial_epoch(data.n_samples)
            warn_at_caller(
                "Training interrupted by user; keeping the weights reached so far."
            )
            stopped_early = True
        finally:
            self.module.eval()
            progress.close()
        if best_state is not None:
            self.module.load_state_dict(best_state)
        if self.diverged is not None:
            usable = self._finite_loss(data, batch_size) and math.isfinite(
                self.validate()[0]
            )
            self.module.eval()  # validate() leaves the module training
            if not usable:
                # The best validation epoch is no model either (e.g. inputs
                # near the precision's limits overflow on some rows).
                raise TrainingDivergedError(self.diverged)
        return stopped_early

    def _finite_loss(self, data, batch_size):
        """Whether the module's loss is finite on every training row."""
        with torch.no_grad():
            return all(
                torch.isfinite(self.objective.per_sample(self.module(X), y)).all()
                for X, y, _ in data.epoch_batches(batch_size, permutation=None)
            )


def fit_lbfgs(module, objective, data, *, max_iter, max_fun, tol):
    """Full-batch L-BFGS: scipy's L-BFGS-B, as MLPClassifier runs it.

    scipy's optimizer (not ``torch.optim.LBFGS``) so that ``max_iter``,
    ``max_fun`` and ``tol`` (its ``gtol``) stop training exactly where they
    stop MLPClassifier's; torch computes the loss and its gradient.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``nit``, ``fun`` (the final loss), ``status`` (0 if converged) and
        ``message``; the module holds the solution.
    """
    X = dense_rows(data.X, data.dtype, data.device) if data.is_sparse else data.X
    parameters = list(module.parameters())
    best = [math.inf, None]  # lowest loss evaluated, and its point

    def set_parameters(x):
        with torch.no_grad():
            vector = torch.from_numpy(x).to(device=data.device, dtype=data.dtype)
            torch.nn.utils.vector_to_parameters(vector, parameters)

    def loss_and_gradient(x):
        set_parameters(x)
        for parameter in parameters:
            parameter.grad = None
        loss = objective(module(X), data.y, data.sample_weight)
        loss.backward()
        value = loss.item()
        if value < best[0]:
            best[:] = value, x.copy()
        gradient = torch.cat([p.grad.reshape(-1) for p in parameters])
        return value, gradient.detach().to("cpu", torch.float64).numpy()

    start = torch.nn.utils.parameters_to_vector(parameters).detach()
    start = start.to("cpu", torch.float64).numpy()
    module.train()
    try:
        result = scipy.optimize.minimize(
            loss_and_gradient,
            start,
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
        set_parameters(result.x)
    except KeyboardInterrupt:
        # The line search may have been stopped at a trial point: go back to
        # the best weights evaluated.
        warn_at_caller(
            "Training interrupted by user; keeping the best weights reached so far."
        )
        set_parameters(start if best[1] is None else best[1])
        with torch.no_grad():
            loss = objective(module(X), data.y, data.sample_weight).item()
        result = scipy.optimize.OptimizeResult(
            nit=0, fun=loss, status=-1, message="interrupted by the user"
        )
    finally:
        module.eval()
    if not math.isfinite(result.fun):
        raise TrainingDivergedError(
            f"L-BFGS diverged: the loss became {result.fun}. Scale X (e.g. with "
            "StandardScaler) or increase alpha."
        )
    result.nit = min(result.nit, max_iter)
    return result


def _copy_state(module):
    return {key: value.detach().clone() for key, value in module.state_dict().items()}
