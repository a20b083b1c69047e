"""The training loop of a stack of models: epochs, stopping rules, history.

One loop trains a single fit (a stack of one) and a batched search's group
(a stack of many): each epoch runs every model's batches through the stack's
gradients (:mod:`skorchlite._engine.stack`) and its solver's update
(:mod:`skorchlite._engine.solvers`), then each model's
:class:`StoppingRule` decides whether it goes on; the models that stop leave
the stack. Nothing here knows about scikit-learn: the estimator hands in a
:class:`~skorchlite._engine.spec.FitSpec` per model and reads the
:class:`History` and :class:`Outcome` back.
"""

import math
import time
from dataclasses import dataclass, field

import torch

from .stack import add_penalty_gradient, clip_gradients, penalty


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite, or blew up."""


OVERFLOW_ON_VALIDATION = (
    "The network's outputs overflow to infinity or NaN on some of the rows "
    "early_stopping holds out for validation, so their score would be "
    "meaningless. Scale X (e.g. with StandardScaler) or set early_stopping=False."
)


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


@dataclass
class Outcome:
    """How one model's fit call ended (beyond its :class:`History`)."""

    #: Epochs (or L-BFGS iterations) of this call.
    n_iter: int = 0
    #: It recorded epochs (loss_curve_ and the validation curves); L-BFGS
    #: records none.
    records_curves: bool = True
    #: A stopping rule, the listener, an interrupt or divergence ended it
    #: before its last epoch.
    stopped_early: bool = False
    #: Why it diverged under early stopping (its best weights were kept).
    diverged: str | None = None
    #: Why it diverged with no weights worth keeping: the fit raises this.
    error: str | None = None
    #: The user interrupted it (Ctrl-C); it kept the weights reached so far.
    interrupted: bool = False
    #: The final parameters of a stacked model (one tensor per parameter).
    final: list | None = None
    #: The model's History (a stacked model's, set by its group).
    history: object = None
    #: The ConvergenceWarnings the fit gives (MLPClassifier's words).
    warnings: list = field(default_factory=list)

    def conclude(self, spec):
        """Set :attr:`warnings` from how the stochastic fit of ``spec`` ended."""
        if self.diverged is not None:
            self.warnings.append(
                f"{self.diverged} Kept the weights of the best validation epoch."
            )
        elif not (self.stopped_early or spec.incremental or self.error):
            self.warnings.append(
                f"Stochastic Optimizer: Maximum iterations "
                f"({spec.settings.max_iter}) reached and the optimization hasn't "
                "converged yet."
            )


class EpochListener:
    """What the loop tells of a single fit's epochs (progress bars, verbose
    lines, callbacks); every hook does nothing unless overridden."""

    def start(self, max_epochs):
        """Training of up to ``max_epochs`` epochs begins."""

    def epoch_begin(self):
        """An epoch begins."""

    def epoch_end(self, epoch, loss, validation, seconds):
        """An epoch ended; return True to ask the loop to stop.

        ``epoch`` counts the epochs of this fit call (1 for partial_fit),
        ``validation`` is ``(val_loss, val_accuracy)`` or None.
        """
        return False

    def message(self, text):
        """A line of news, such as a stopping rule firing."""

    def close(self):
        """Training ended, normally or not."""


def _per_model(values, default):
    """A float when every model shares the value (cheaper in the kernels)."""
    values = [default if v is None else v for v in values]
    return float(values[0]) if len(set(values)) == 1 else values


class StackTraining:
    """Train the models of a stack for up to their specs' ``max_epochs``.

    Parameters
    ----------
    solver : skorchlite._engine.solvers.Solver
    stack : MLPStack, ModuleStack or FuncStack
        Updated in place; the models that stop leave it (their weights are in
        their outcome's ``final``).
    data, validation : OneModelData or StackedData
        Every model's training rows, and validation rows (or None).
    specs : list of FitSpec
        One per model, in stack order; they share the target, batch size and
        shuffle.
    histories : list of History
        Updated in place.
    state : skorchlite._engine.solvers.SolverState
    listener : EpochListener, optional
        Told of the epochs of a single fit; it may stop training. With a
        listener, Ctrl-C ends training keeping the weights reached so far
        (the outcome says ``interrupted``); without, it propagates.
    """

    def __init__(
        self, solver, stack, data, validation, specs, histories, state, listener=None
    ):
        self.solver, self.stack, self.state = solver, stack, state
        self.data, self.validation = data, validation
        self.specs, self.histories = specs, histories
        self.listener = listener
        self.target = specs[0].target
        self.chunk = specs[0].validation_batch_size
        self.outcomes = [Outcome() for _ in specs]
        self.schedules = [
            solver.schedule(spec.settings, lr)
            for spec, lr in zip(specs, state.learning_rates, strict=True)
        ]
        self.rules = [
            StoppingRule(h, sch, tol=spec.tol, n_iter_no_change=spec.n_iter_no_change)
            for spec, h, sch in zip(specs, histories, self.schedules, strict=True)
        ]
        self._l2 = [solver.l2(spec.settings) for spec in specs]
        self._max_norm = [spec.max_grad_norm for spec in specs]
        # Models with the same seed and training-set size shuffle alike.
        self.generators = {}
        for spec, n in zip(specs, data.n_samples, strict=True):
            key = (spec.seed, n)
            self.generators.setdefault(key, torch.Generator().manual_seed(spec.seed))
        self.best = None if validation is None else [p.clone() for p in stack.params]
        self.has_best = [False] * len(specs)
        self.alive = list(range(len(specs)))  # the model of each stacked row

    def run(self, cancel=None):
        """Train; returns the list of :class:`Outcome`.

        Stops at the end of an epoch when ``cancel`` (a ``threading.Event``)
        is set, the outcomes then incomplete.
        """
        starts = [history.n_iter for history in self.histories]
        checkpoints = [history.checkpoint() for history in self.histories]
        listener = self.listener or EpochListener()
        listener.start(self.specs[0].max_epochs)
        self.state.forget_views()  # the stack's tensors are new
        self.stack.train()
        epoch = 0
        try:
            # The stacks write their gradients themselves.
            with torch.no_grad():
                while self.alive and not (cancel is not None and cancel.is_set()):
                    epoch += 1
                    listener.epoch_begin()
                    started = time.perf_counter()
                    losses = self._epoch().tolist()
                    scores = self._scores()
                    stops, messages = self._record(epoch, losses, scores)
                    validation = None if scores[0] is None else scores[0][:2]
                    if self.listener is not None and listener.epoch_end(
                        epoch, losses[0], validation, time.perf_counter() - started
                    ):
                        self.outcomes[0].stopped_early = stops[0] = True
                    elif self.listener is not None and messages[0] is not None:
                        listener.message(messages[0])
                    self._finish([row for row, stop in enumerate(stops) if stop])
        except KeyboardInterrupt:
            if self.listener is None:
                raise
            checkpoints[0](self.data.n_samples[0])
            self.outcomes[0].interrupted = self.outcomes[0].stopped_early = True
            if self.best is not None and self.has_best[0]:
                with torch.no_grad():
                    for p, kept in zip(self.stack.params, self.best, strict=True):
                        p.copy_(kept)
        finally:
            self.stack.eval()
            listener.close()
        if cancel is not None and cancel.is_set():
            return self.outcomes
        for outcome, history, start, spec in zip(
            self.outcomes, self.histories, starts, self.specs, strict=True
        ):
            outcome.n_iter = history.n_iter - start
            outcome.conclude(spec)
        return self.outcomes

    def _epoch(self):
        """One pass of every model over its rows: each model's mean loss, an
        ``(M,)`` tensor on the device."""
        stack, solver, state, data = self.stack, self.solver, self.state, self.data
        l2 = _per_model([self._l2[j] for j in self.alive], 0.0)
        max_norm = None
        if any(self._max_norm[j] is not None for j in self.alive):
            max_norm = _per_model([self._max_norm[j] for j in self.alive], math.inf)
        permutations = None
        if self.specs[0].shuffle:
            # One draw per generator: models sharing it shuffle alike.
            keys = [
                (self.specs[j].seed, n)
                for j, n in zip(self.alive, data.n_samples, strict=True)
            ]
            drawn = {
                key: torch.randperm(key[1], generator=self.generators[key])
                for key in dict.fromkeys(keys)
            }
            permutations = [drawn[key] for key in keys]
        weighted = torch.tensor(data.weighted)
        any_weighted = bool(weighted.any())
        total, n_batches = 0.0, 0
        for X, y, w, n_real, start in data.epoch(permutations):
            loss, grads, weight_sum = stack.gradients(
                self.target, X, y, w, n_real, start
            )
            if l2 and any_weighted:
                # A weighted batch's loss includes the L2 term.
                with_penalty = loss + penalty(stack, l2, weight_sum)
                loss = torch.where(weighted.to(loss.device), with_penalty, loss)
            if l2:
                add_penalty_gradient(stack, grads, l2, weight_sum)
            clip_gradients(grads, max_norm)
            solver.update(state, stack.params, grads)
            total = total + loss * (float(n_real) if type(n_real) is int else n_real)
            n_batches += 1
        n_samples = torch.tensor(data.n_samples, dtype=loss.dtype, device=loss.device)
        # Like MLPClassifier: the mean of the batch losses, weighted by rows.
        epoch_loss = total / n_samples
        if l2:
            # Unweighted models count the mean over batches of
            # 0.5 * alpha * ||W||^2 / batch_rows once per epoch.
            unweighted = epoch_loss + penalty(stack, l2, 1) * n_batches / n_samples
            epoch_loss = torch.where(weighted.to(loss.device), epoch_loss, unweighted)
        return epoch_loss

    def _scores(self):
        """Each model's validation (loss, score, outputs finite), None for
        those without."""
        if self.validation is None:
            return [None] * len(self.alive)
        self.stack.eval()
        with torch.no_grad():
            scores = list(
                zip(
                    *_validation(self.stack, self.target, self.validation, self.chunk),
                    strict=True,
                )
            )
        self.stack.train()
        return [
            score if self.specs[j].validation is not None else None
            for j, score in zip(self.alive, scores, strict=True)
        ]

    def _record(self, epoch, losses, scores):
        """Record the epoch of each model: whether each stops, and the stopping
        rule's message (MLPClassifier's verbose line) or None."""
        stops, messages, improved = [], [], []
        for row, j in enumerate(self.alive):
            validation = None
            if scores[row] is not None:
                *validation, finite = scores[row]
                if not finite:
                    self.outcomes[j].error = OVERFLOW_ON_VALIDATION
                    stops.append(True)
                    messages.append(None)
                    continue
            stop, best, message = _epoch_end(
                self.rules[j],
                self.outcomes[j],
                self.specs[j],
                epoch,
                self.data.n_samples[row],
                losses[row],
                validation,
            )
            stops.append(stop)
            messages.append(message)
            if best:
                improved.append(row)
                self.has_best[j] = True
        if improved:
            rows = torch.tensor(improved, device=self.stack.params[0].device)
            for kept, p in zip(self.best, self.stack.params, strict=True):
                kept[rows] = p[rows]
        return stops, messages

    def _finish(self, finished):
        """Take the models of rows ``finished`` out of the stack."""
        stack, outcomes = self.stack, self.outcomes
        # invscaling and adaptive moved the learning rates (kept in the state
        # of the models that stop too: partial_fit goes on from them).
        self.state.set_learning_rates(
            [self.schedules[j].learning_rate for j in self.alive]
        )
        for row in finished:
            j = self.alive[row]
            if self.specs[j].validation is not None and self.has_best[j]:
                for p, kept in zip(stack.params, self.best, strict=True):
                    p[row] = kept[row]
            elif outcomes[j].diverged is not None:
                # No epoch of this call to go back to.
                outcomes[j].error, outcomes[j].diverged = outcomes[j].diverged, None
        if any(outcomes[self.alive[row]].diverged for row in finished):
            self._check_usable(finished)
        for row in finished:
            outcomes[self.alive[row]].final = [p[row].clone() for p in stack.params]
        keep = [row for row in range(len(self.alive)) if row not in set(finished)]
        self.alive = [self.alive[row] for row in keep]
        if finished and self.alive:
            for part in (stack, self.data, self.validation, self.state):
                if part is not None:
                    part.keep(keep)
            if self.best is not None:
                index = torch.tensor(keep, device=stack.params[0].device)
                self.best = [kept[index] for kept in self.best]

    def _check_usable(self, finished):
        """Diverged models keep their best validation epoch only if its loss
        is finite on every training and validation row (inputs near the
        precision's limits can overflow on some)."""
        with torch.no_grad():
            finite = _finite_loss(self.stack, self.target, self.data, self.chunk)
            val_losses = _validation(
                self.stack, self.target, self.validation, self.chunk
            )[0]
        for row in finished:
            outcome = self.outcomes[self.alive[row]]
            if outcome.diverged and not (
                finite[row] and math.isfinite(val_losses[row])
            ):
                outcome.error, outcome.diverged = outcome.diverged, None


def _validation(stack, target, validation, chunk):
    """Each model's validation (loss, score, outputs finite): three lists."""
    outputs, ys, ws = [], [], []
    for X, y, w, _, _ in validation.in_order(chunk):
        outputs.append(stack.outputs(X))
        ys.append(y)
        ws.append(w)
    outputs, y = torch.cat(outputs, dim=1), torch.cat(ys, dim=1)
    w = None if ws[0] is None else torch.cat(ws, dim=1)
    losses = target.losses_and_delta(outputs, y)[0]
    mean_loss = losses.mean(dim=1) if w is None else (losses * w).sum(1) / w.sum(1)
    score = target.validation_score(outputs, y, w)
    # The score of NaN or infinite outputs would be silently wrong.
    finite = torch.isfinite(outputs).flatten(1).all(dim=1)
    return mean_loss.tolist(), score.tolist(), finite.tolist()


def _finite_loss(stack, target, data, chunk):
    """Whether each model's loss is finite on every one of its rows."""
    finite = None
    for X, y, _, _, _ in data.in_order(chunk):
        losses = target.losses_and_delta(stack.outputs(X), y)[0]
        batch = torch.isfinite(losses).all(dim=1)
        finite = batch if finite is None else finite & batch
    return finite.tolist()


def _epoch_end(rule, outcome, spec, epoch, n_samples, loss, validation):
    """Record an epoch of one model: ``(stop, best, message)``."""
    try:
        best = rule.record(epoch, n_samples, loss, validation)
    except TrainingDivergedError as exc:
        outcome.error = str(exc)
        return True, False, None
    if rule.diverged is not None:
        outcome.diverged = rule.diverged
        outcome.stopped_early = True
        return True, best, None
    stop, message = rule.plateau(validation is not None)
    if stop:
        outcome.stopped_early = True
    return stop or epoch >= spec.max_epochs, best, message
