"""The training loop: batching, optimizer steps, stopping rules and history.

Nothing here knows about scikit-learn; the estimator hands in tensors, a module,
an optimizer and a per-sample loss, and reads the :class:`History` back.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.adam import adam as functional_adam

from ._backprop import ClosedFormBackprop
from ._optim import LBFGS
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

    def record_epoch(self, loss, n_samples, validation, tol):
        """Record a finished epoch; True if its validation score is the best yet.

        ``validation`` is ``(loss, score)``, or None to watch the training
        loss. ``n_iter`` is counted last, so that an interrupt landing in here
        leaves it counting whole epochs only (see :meth:`checkpoint`).
        """
        self.loss_curve.append(loss)
        self.loss = loss
        self.t += n_samples
        best = False
        if validation is None:
            self.record_loss(loss, tol)
        else:
            best = self.record_validation(*validation, tol)
        self.n_iter += 1
        return best

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
    """MLPClassifier's objective: weighted mean loss plus an L2 penalty.

    ``sum(w * loss) / sum(w) + 0.5 * alpha * ||W||^2 / sum(w)``, so that an
    integer sample weight is the same as repeating the row (``sum(w)`` is the
    number of rows when unweighted). The loss of a row sums over its labels.

    Parameters
    ----------
    loss_fn : torch.nn.Module
        Torch loss with ``reduction="none"``.
    penalized_weights : list of torch.Tensor
        The weights under the L2 penalty (the biases are not penalized).
    alpha : float
    """

    def __init__(self, loss_fn, penalized_weights, alpha):
        self.loss_fn = loss_fn
        self.penalized_weights = penalized_weights
        self.alpha = alpha

    def per_sample(self, logits, y):
        losses = self.loss_fn(logits, y)
        return losses if losses.ndim == 1 else losses.sum(dim=1)

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
        lowest_loss = min(history.loss_curve, default=math.inf)
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
                if diverged(loss, lowest_loss):
                    raise TrainingDivergedError(
                        f"Training diverged at epoch {epoch}: the loss "
                        f"became {loss}. Lower learning_rate_init (it is "
                        f"{self.schedule.learning_rate_init}), set max_grad_norm to "
                        "clip gradients, or scale X (e.g. with StandardScaler)."
                    )
                lowest_loss = min(lowest_loss, loss)
                # Validate (and copy the weights that may be the best) before
                # recording anything of the epoch: a Ctrl-C in the validation
                # pass then leaves no epoch recorded without its score.
                validation, candidate = None, None
                if self.validate is not None:
                    validation = self.validate()
                    if validation[1] >= history.best_validation_score:
                        candidate = _copy_state(self.module)
                if history.record_epoch(loss, data.n_samples, validation, self.tol):
                    best_state = candidate
                stop_requested = progress.epoch_end(
                    epoch, loss, validation, time.perf_counter() - started
                )
                self.schedule.epoch_end(history.t)
                if stop_requested:
                    stopped_early = True
                    break
                if history.no_improvement_count > self.n_iter_no_change:
                    stop = self.schedule.on_plateau()
                    progress.message(self._plateau_message(stop))
                    if stop:
                        stopped_early = True
                        break
                    history.no_improvement_count = 0
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
        return stopped_early

    def _plateau_message(self, stopping):
        """MLPClassifier's verbose line when the stopping rule fires."""
        watched = "Validation score" if self.validate else "Training loss"
        if not stopping:
            action = f"Setting learning rate to {self.schedule.learning_rate:f}"
        elif self.schedule.policy == "adaptive":
            action = "Learning rate too small. Stopping."
        else:
            action = "Stopping."
        return (
            f"{watched} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change:d} consecutive epochs. {action}"
        )


def fit_lbfgs(module, objective, data, *, max_iter, max_fun, tol):
    """Full-batch L-BFGS with a strong-Wolfe line search, like scipy's L-BFGS-B.

    Returns
    -------
    n_iter : int
    loss : float
    n_evals : int
        Number of loss evaluations; ``max_fun`` was reached if it is not less.
    """
    X = dense_rows(data.X, data.dtype, data.device) if data.is_sparse else data.X
    parameters = list(module.parameters())
    optimizer = LBFGS(
        parameters,
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_fun,
        tolerance_grad=tol,
        tolerance_change=np.finfo(np.float64).eps * 1e7,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    best = [math.inf, None]  # lowest loss evaluated, and its weights

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = objective(module(X), data.y, data.sample_weight)
        loss.backward()
        # LBFGS reads the loss as a float anyway, so this adds no device sync.
        value = loss.item()
        if value < best[0]:
            best[:] = value, [p.detach().clone() for p in parameters]
        return loss

    module.train()
    try:
        optimizer.step(closure)
    except KeyboardInterrupt:
        # The line search may have been stopped at a trial point: go back to
        # the best weights evaluated.
        warn_at_caller(
            "Training interrupted by user; keeping the best weights reached so far."
        )
        if best[1] is not None:
            with torch.no_grad():
                for parameter, value in zip(parameters, best[1], strict=True):
                    parameter.copy_(value)
    except RuntimeError as exc:
        # The strong-Wolfe search can grow its step beyond float32's range.
        if "without overflow" not in str(exc):
            raise
        raise TrainingDivergedError(
            f"L-BFGS diverged: its line search step overflowed {data.dtype}. "
            "Scale X (e.g. with StandardScaler) or increase alpha."
        ) from exc
    finally:
        module.eval()
    with torch.no_grad():
        loss = objective(module(X), data.y, data.sample_weight).item()
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"L-BFGS diverged: the loss became {loss}. Scale X (e.g. with "
            "StandardScaler) or increase alpha."
        )
    state = optimizer.state[parameters[0]]
    return state.get("n_iter", 0), loss, state.get("func_evals", 0)


def _copy_state(module):
    return {key: value.detach().clone() for key, value in module.state_dict().items()}
