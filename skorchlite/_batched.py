"""Train many MLPs of one shape at once, as rows of stacked tensors.

Every model of a :class:`BatchedGroup` has the same depth, activation, solver
and batches per epoch, so one step of the loop advances all of them: the
weights of model ``m`` are row ``m`` of a flat ``(M, P)`` parameter matrix
(hidden widths zero-padded to the widest), the gradients are written out in
closed form as batched matrix products (like :mod:`skorchlite._backprop` for
one model: autograd's bookkeeping would dominate these short steps), and the
optimizer works on whole rows, with per-model learning rates, betas, momenta
and L2 strengths as ``(M, 1)`` columns. Each model reproduces what
``TorchMLPClassifier.fit`` computes alone (same initial weights, same batch
order, same loss curve and stopping rule), up to floating-point rounding.

Padded units stay exactly zero: their incoming weights and biases get zero
gradients, and so do their outgoing weights unless the activation of 0 is not 0
(the logistic), where the gradient is masked. Training sets of different sizes
that give the same batches (the folds of most data sets) are zero-padded to
the largest, their padded rows weighing 0. Dropout masks are drawn model by
model, from a generator seeded as the model's fit seeds the dropout generator
it owns (:func:`skorchlite._mlp.dropout_generator`), in the shape the fit
draws them, so they are the fit's own masks.
"""

import itertools
import math
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch

from ._device import cpu_threads_for, torch_threads
from ._mlp import ACTIVATIONS, linear_layers
from ._solvers import SOLVERS, _column
from ._training import (
    History,
    LearningRateSchedule,
    StoppingRule,
    TrainingDivergedError,
)

# Stacked steps with at least this many hidden activations use torch's threads.
PARALLEL_MIN_ACTIVATIONS = 2**15

# The training rows of every model are gathered in epoch order this many
# numbers (64 MB of float64) at a time at most.
GATHER_MAX_NUMBERS = 2**23


@dataclass
class BatchedJob:
    """One model to train: a prepared estimator and its training rows.

    Attributes
    ----------
    estimator : TorchMLPClassifier
        Validated and initialized (``module_`` holds the initial weights and
        ``_seed`` is set) but not trained.
    data_key : hashable
        Jobs with the same key train on the same rows (``X``, ``y``).
    X, y : torch.Tensor
        Training rows and encoded targets, on the training device.
    weights : numpy.ndarray or None
        ``sample_weight * class_weight`` of the rows, None if unweighted.
    validation : TrainingData or None
        The rows held out for early stopping (the estimator's own split).
    error : str or None
        Set by :meth:`BatchedGroup.run` if the fit diverged.
    converged : bool
        Set by :meth:`BatchedGroup.run` if the fit stopped before ``max_iter``
        epochs (its loss stopped improving).
    diverged : str or None
        Set by :meth:`BatchedGroup.run` if the fit diverged under early
        stopping, which keeps its best weights (the fit warns why).
    """

    estimator: object
    data_key: object
    X: torch.Tensor
    y: torch.Tensor
    weights: object = None
    validation: object = None
    error: str | None = None
    converged: bool = False
    diverged: str | None = None


class _LearningRate:
    """The ``param_groups`` stand-in that :class:`LearningRateSchedule` drives."""

    def __init__(self, learning_rate):
        self.param_groups = [{"lr": learning_rate}]


class _Layout:
    """Where each padded layer lives in a row of the stacked parameters.

    Layer ``l`` is an ``(out, in + 1)`` block: its weight, as in
    ``nn.Linear``, with the bias as the last column. The first layer's input
    gets a column of ones, so its product with that block adds the bias, and
    the block's gradient is one product too.
    """

    def __init__(self, widths):
        self.widths = widths  # padded: [n_features, *hidden, n_outputs]
        self.slices = []
        offset = 0
        for fan_in, fan_out in itertools.pairwise(widths):
            self.slices.append(
                (fan_out, fan_in + 1, slice(offset, offset + fan_out * (fan_in + 1)))
            )
            offset += fan_out * (fan_in + 1)
        self.size = offset

    def blocks(self, flat):
        """The ``(M, out, in + 1)`` view of each layer."""
        M = flat.shape[0]
        return [
            flat[:, part].view(M, rows, columns) for rows, columns, part in self.slices
        ]

    def pack(self, module, row, fill=None):
        """Copy ``module``'s weights into ``row`` (the zero-padded places stay).

        With ``fill``, write that value instead: marks the unpadded places.
        """
        for layer, block in zip(
            linear_layers(module), self.blocks(row[None]), strict=True
        ):
            fan_out, fan_in = layer.weight.shape
            block[0, :fan_out, :fan_in] = (
                layer.weight.detach() if fill is None else fill
            )
            block[0, :fan_out, -1] = layer.bias.detach() if fill is None else fill

    def unpack(self, row, module):
        """Copy the unpadded part of ``row`` into ``module``'s layers."""
        with torch.no_grad():
            for layer, block in zip(
                linear_layers(module), self.blocks(row[None]), strict=True
            ):
                fan_out, fan_in = layer.weight.shape
                layer.weight.copy_(block[0, :fan_out, :fan_in])
                layer.bias.copy_(block[0, :fan_out, -1])


def _matmul(a, b):
    """``a @ b`` for stacks of matrices, in the faster orientation.

    Batched GEMMs with few output columns are slow on the CPU (a 200 x 100 by
    100 x 1 product per model ran ~4x slower than its transpose here), so the
    product is computed as ``(b.mT @ a.mT).mT`` when that has more columns.
    """
    if b.shape[2] < a.shape[1]:
        return torch.bmm(b.mT, a.mT).mT
    return torch.bmm(a, b)


def _pad_rows(tensor, n_rows):
    """``tensor`` with zero rows appended up to ``n_rows``."""
    padding = tensor.new_zeros((n_rows - tensor.shape[0], *tensor.shape[1:]))
    return torch.cat([tensor, padding])


def _stack_padded(tensors, n_rows):
    """Stack ``tensors``, each zero-padded to ``n_rows`` rows."""
    return torch.stack([_pad_rows(tensor, n_rows) for tensor in tensors])


def _stack_inputs(Xs, n_rows):
    """Stack the ``Xs`` zero-padded to ``n_rows`` rows, with a column of ones."""
    X = _stack_padded(Xs, n_rows)
    return torch.cat([X, X.new_ones((*X.shape[:2], 1))], dim=2)


def _stack_weights(weights, lengths, n_rows, like):
    """Stack row weights (ones where None), zero-padded to ``n_rows`` rows."""
    return _stack_padded(
        [
            torch.ones(n, dtype=like.dtype, device=like.device)
            if w is None
            else torch.as_tensor(w, dtype=like.dtype, device=like.device)
            for w, n in zip(weights, lengths, strict=True)
        ],
        n_rows,
    )


def _pad_permutation(permutation, n_rows):
    """A shuffle of the real rows, then the padded rows in order."""
    padding = torch.arange(permutation.shape[0], n_rows)
    return torch.cat([permutation, padding])


def train_groups(groups):
    """Train every :class:`BatchedGroup`, several at once on a multi-core CPU.

    A stacked step of small networks is a few dozen short operators, too short
    for torch's threads to share well, so CPU groups rather train side by side,
    each on one torch thread, in as many Python threads as torch has CPU
    threads (torch releases the GIL inside its operators). The costliest
    groups start first. Other devices train one group after the other.

    If a group fails or the user interrupts (Ctrl-C), the other groups stop at
    the end of their current epoch and the error is raised.
    """
    on_cpu = [group for group in groups if group.device.type == "cpu"]
    n_workers = min(len(on_cpu), torch.get_num_threads())
    for group in groups:
        if group not in on_cpu or n_workers <= 1:
            group.run()
    if n_workers <= 1:
        return
    on_cpu.sort(key=BatchedGroup.cost, reverse=True)
    cancel = threading.Event()
    with torch_threads(1), ThreadPoolExecutor(n_workers) as pool:
        try:
            futures = [pool.submit(group.train, cancel) for group in on_cpu]
            for future in wait(futures, return_when=FIRST_EXCEPTION).done:
                future.result()  # raises a group's error
        except BaseException:
            cancel.set()
            raise


class BatchedGroup:
    """Train ``jobs`` (models of one loop shape) together.

    Parameters
    ----------
    jobs : list of BatchedJob
        Same solver, activation (one with a closed-form derivative), depth,
        batch size, number of batches per epoch, shuffle, target type, dtype
        and device; everything else may differ.
    """

    def __init__(self, jobs):
        self.jobs = jobs
        first = jobs[0].estimator
        self.solver = SOLVERS[first.solver]
        if self.solver.stacked_update is None:
            raise ValueError(
                f"solver={first.solver!r} has no stacked update: it cannot be "
                "trained in a batched group."
            )
        activation = ACTIVATIONS[first.activation]
        if not activation.closed_form:
            raise ValueError(
                f"activation={first.activation!r} has no closed-form derivative: "
                "it cannot be trained in a batched group."
            )
        self.shuffle = first.shuffle
        self.function, self.derivative = activation.function, activation.derivative
        self.target = first._target
        self.n_samples = [job.X.shape[0] for job in jobs]
        self.n_rows = max(self.n_samples)
        self.batch_size = first._batch_size(self.n_rows)
        modules = [job.estimator.module_ for job in jobs]
        sizes = [[layer.out_features for layer in linear_layers(m)] for m in modules]
        widths = [jobs[0].X.shape[1], *map(max, zip(*sizes, strict=True))]
        self.layout = _Layout(widths)
        self.dtype = jobs[0].X.dtype
        self.device = jobs[0].X.device
        # Dropout draws each model's masks as its own fit does: from a CPU
        # generator seeded like the fit's dropout generator, mask by mask, in the
        # shape of the model's own batch and layer.
        self.dropout = None
        if any(job.estimator.dropout for job in jobs):
            self.dropout = [
                (
                    job.estimator.dropout,
                    torch.Generator().manual_seed(job.estimator._seed),
                    hidden,
                    n,
                )
                for job, hidden, n in zip(jobs, sizes, self.n_samples, strict=True)
            ]

    # --------------------------------------------------------------- setup

    def _stack_data(self):
        """Stack the training sets, zero-padded to ``n_rows``, with a ones column.

        Training sets of different sizes (e.g. the folds of 1797 rows) share a
        run when they give the same batches; their padded rows get weight 0.
        """
        keys = list(dict.fromkeys(job.data_key for job in self.jobs))
        first = {}
        for job in self.jobs:
            first.setdefault(job.data_key, job)
        self.X = _stack_inputs([first[key].X for key in keys], self.n_rows)
        self.y = _stack_padded([first[key].y for key in keys], self.n_rows)
        index = {key: i for i, key in enumerate(keys)}
        self.data_id = torch.tensor(
            [index[job.data_key] for job in self.jobs], device=self.device
        )
        weighted = [job.weights is not None for job in self.jobs]
        # Weighted fits count the L2 penalty in each batch's loss, unweighted
        # ones add it once per epoch (see Trainer._epoch).
        self.weighted = torch.tensor(weighted, device=self.device)
        self.any_weighted = any(weighted)  # padding alone is no weighting
        self.n_samples_col = _column(self.n_samples, self.X)[:, 0]
        if self.any_weighted or min(self.n_samples) < self.n_rows:
            weights = [job.weights for job in self.jobs]
            self.w = _stack_weights(weights, self.n_samples, self.n_rows, self.X)
        else:
            self.w = None

    def _stack_parameters(self):
        M, layout = len(self.jobs), self.layout
        flat = torch.zeros(M, layout.size, dtype=self.dtype, device=self.device)
        real = torch.zeros_like(flat)
        is_weight = torch.ones(1, layout.size, dtype=self.dtype, device=self.device)
        for block in layout.blocks(is_weight):
            block[:, :, -1] = 0.0  # biases
        with torch.no_grad():
            for m, job in enumerate(self.jobs):
                layout.pack(job.estimator.module_, flat[m])
                layout.pack(job.estimator.module_, real[m], fill=1.0)
        self.flat = flat
        self._view_layers()
        self.is_weight = is_weight
        # The outgoing weights of padded units only get a gradient when the
        # activation of 0 is not 0; mask them then.
        zero = self.function(torch.zeros(1, dtype=self.dtype))
        padded = bool((real == 0).any())
        self.pad_mask = real if padded and zero.item() != 0 else None

    def _hyperparameters(self):
        estimators = [job.estimator for job in self.jobs]
        flat = self.flat
        self.alpha = [e.alpha for e in estimators]
        self.lr = [e.learning_rate_init for e in estimators]
        self.lr_col = _column(self.lr, flat)
        self.tol = [e.tol for e in estimators]
        self.n_iter_no_change = [e.n_iter_no_change for e in estimators]
        self.max_iter = [e.max_iter for e in estimators]
        self.schedules = [
            LearningRateSchedule(
                _LearningRate(e.learning_rate_init),
                self.solver.schedule_policy(e),
                e.learning_rate_init,
                e.power_t,
            )
            for e in estimators
        ]
        self.rules = [
            StoppingRule(
                history,
                schedule,
                tol=e.tol,
                n_iter_no_change=e.n_iter_no_change,
            )
            for e, history, schedule in zip(
                estimators, self.histories, self.schedules, strict=True
            )
        ]
        clip = [e.max_grad_norm for e in estimators]
        self.max_grad_norm = (
            None
            if all(c is None for c in clip)
            else _column([math.inf if c is None else c for c in clip], flat)
        )
        # A decoupled weight decay (AdamW) is no L2 term of the loss.
        l2 = [0.0 if self.solver.decoupled_decay else a for a in self.alpha]
        self.l2 = _column(l2, flat) * self.is_weight  # (M, P)
        self.use_l2 = any(l2)
        self.update = self.solver.stacked_update(
            estimators, flat, self.is_weight, self.lr_col
        )

    # ------------------------------------------------------------ training

    def _gradient(self, X, y, w, n_real, start):
        """Closed-form gradient of every model's batch loss (as in ``_backprop``).

        ``X`` is ``(M, B, n_features + 1)``, its last column ones; ``y`` is
        ``(M, n_outputs, B)`` (class indices: ``(M, B)``). Activations
        are kept as ``(M, width, B)``: batched products with few output
        columns are slow on the CPU, and elementwise steps need their operands
        in one memory layout to run at full speed.

        Returns ``(grad (M, P), losses (M,), weight_sum)``: the mean (or
        ``w``-weighted) loss without the L2 term, and the normalizer it used.
        """
        M, n_rows = X.shape[:2]
        z, outputs, activations, masks = self._forward(X, start)
        losses, delta = self.target.losses_and_delta(z, y, dim=1)
        if w is None:
            weight_sum = n_rows
            loss = losses.sum(dim=1) / n_rows
            delta.div_(n_rows)
        else:
            weight_sum = w.sum(dim=1)
            weight_sum = torch.where(weight_sum > 0, weight_sum, n_real)
            loss = (losses * w).sum(dim=1) / weight_sum
            weight_sum = weight_sum[:, None]
            delta.mul_((w / weight_sum)[:, None, :])
        grads = []
        for index in range(len(self.layers), 0, -1):
            weight = self.layers[index - 1][0]
            grads.append(
                torch.cat(
                    [_matmul(delta, outputs[index].mT), delta.sum(dim=2, keepdim=True)],
                    dim=2,
                )
            )
            if weight.shape[1] == 1:  # one output: an outer product
                delta = weight.mT * delta
            else:
                delta = torch.bmm(weight.mT, delta)
            if masks:
                delta = delta.mul_(masks[index - 1])
            delta = self.derivative(delta, activations[index - 1])
        grads.append(_matmul(delta, X))
        grad = torch.cat([g.reshape(M, -1) for g in reversed(grads)], dim=1)
        return grad, loss, weight_sum

    def _forward(self, X, start=None):
        """Every model's logits ``(M, n_outputs, B)`` for ``X`` ``(M, B, in + 1)``.

        Also returns each layer's input, each hidden layer's activation before
        dropout, and the dropout masks: dropout applies while training, when
        ``start`` (the batch's first row in the epoch) is given.
        """
        outputs = [X.mT]  # the input of each layer
        activations, masks = [], []
        z = torch.bmm(self.first_block, outputs[0])
        for layer, (weight, bias) in enumerate(self.layers):
            activations.append(self.function(z))
            if self.dropout is None or start is None:
                outputs.append(activations[-1])
            else:
                masks.append(self._dropout_mask(layer, activations[-1], start))
                outputs.append(activations[-1] * masks[-1])
            z = torch.baddbmm(bias, weight, outputs[-1])
        return z, outputs, activations, masks

    def _dropout_mask(self, layer, activation, start):
        """Each model's dropout mask (scaled by ``1 / (1 - p)``) of ``layer``."""
        mask = torch.zeros_like(activation)
        for row, (p, generator, hidden, n_samples) in enumerate(self.dropout):
            if not p:
                mask[row] = 1.0
                continue
            n_rows = min(self.batch_size, n_samples - start)
            noise = torch.empty(n_rows, hidden[layer], dtype=mask.dtype)
            noise.bernoulli_(1 - p, generator=generator).div_(1 - p)
            mask[row, : hidden[layer], :n_rows] = noise.T
        return mask

    def _stack_validation(self):
        """Each model's validation rows, padded to the longest (weight 0)."""
        sets = [job.validation for job in self.jobs]
        self.validating = any(v is not None for v in sets)
        if not self.validating:
            return
        fallback = next(v for v in sets if v is not None)  # for the others
        sets = [fallback if v is None else v for v in sets]
        n_val = max(v.n_samples for v in sets)
        self.X_val = _stack_inputs([v.X for v in sets], n_val)
        self.y_val = _stack_padded([v.y for v in sets], n_val)
        weights = [v.sample_weight for v in sets]
        lengths = [v.n_samples for v in sets]
        self.w_val = _stack_weights(weights, lengths, n_val, self.X_val)
        self.best = self.flat.clone()  # each model's best weights so far

    def _validation_scores(self):
        """Each model's validation (loss, score), weighted, as its fit's
        validator: two (M,) tensors."""
        outputs = self._forward(self.X_val)[0].mT
        losses = self.target.losses_and_delta(outputs, self.y_val)[0]
        w = self.w_val
        return (
            (losses * w).sum(dim=1) / w.sum(dim=1),
            self.target.validation_score(outputs, self.y_val, w),
        )

    def _step(self, X, y, w, n_real, start, step):
        """One minibatch step of every model; returns the batch losses (M,).

        ``n_real`` (int or (M,) tensor) counts each model's rows that are not
        padding; ``start`` is the batch's first row in the epoch.
        """
        flat = self.flat
        grad, loss, weight_sum = self._gradient(X, y, w, n_real, start)
        if self.any_weighted and self.use_l2:
            penalty = 0.5 * (self.l2 * flat.square()).sum(dim=1) / weight_sum[:, 0]
            loss = torch.where(self.weighted, loss + penalty, loss)
        if isinstance(weight_sum, int) and self.use_l2:
            grad.addcmul_(flat, self.l2, value=1 / weight_sum)
        elif self.use_l2:
            grad.addcmul_(flat, self.l2 / weight_sum)
        if self.pad_mask is not None:
            grad.mul_(self.pad_mask)
        if self.max_grad_norm is not None:
            norm = grad.norm(dim=1, keepdim=True)
            grad.mul_((self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        self.update.step(flat, grad, step, self.lr_col)
        return loss

    def _epoch(self, step, permutations):
        """One epoch of every model; ``permutations`` (M, n_rows) or None."""
        n, size = self.n_samples_col, self.batch_size
        if permutations is None:
            permutations = torch.arange(self.n_rows, device=self.device)
            permutations = permutations.expand(self.flat.shape[0], -1)
        # Each model's rows in this epoch's order are gathered a few batches at
        # a time (one gather per batch costs more; all at once, more memory).
        numbers_per_row = self.flat.shape[0] * self.X.shape[2]
        chunk = max(1, GATHER_MAX_NUMBERS // (numbers_per_row * size)) * size
        total = torch.zeros_like(n)
        n_batches = 0
        M = self.flat.shape[0]
        # Rows of the data sets stacked end to end: one index_select gathers
        # every model's rows (2-3x faster than indexing two dimensions).
        X_rows = self.X.view(-1, self.X.shape[2])
        y_rows = self.y.view(-1, *self.y.shape[2:])
        offsets = (self.data_id * self.n_rows)[:, None]
        for first in range(0, self.n_rows, chunk):
            rows = permutations[:, first : first + chunk]
            index = (offsets + rows).view(-1)
            X = X_rows.index_select(0, index).view(M, -1, X_rows.shape[1])
            y = y_rows.index_select(0, index).view(M, -1, *y_rows.shape[1:])
            if y.dim() == 3:  # outputs in the activations' layout (M, outputs, B)
                y = y.mT.contiguous()
            w = None if self.w is None else self.w.gather(1, rows)
            for start in range(first, min(first + chunk, self.n_rows), size):
                batch = slice(start - first, start - first + size)
                step += 1
                n_real = min(size, self.n_rows - start)
                if start + n_real > min(self.n_samples):  # some models are padded
                    n_real = (n - start).clamp(max=n_real)
                batch_w = None if w is None else w[:, batch]
                batch_loss = self._step(
                    X[:, batch], y[..., batch], batch_w, n_real, start, step
                )
                total += batch_loss * n_real
                n_batches += 1
        epoch_loss = total / n
        if self.use_l2:
            penalty = 0.5 * (self.l2 * self.flat.square()).sum(dim=1)
            penalty = penalty / (n / n_batches)
            epoch_loss = torch.where(self.weighted, epoch_loss, epoch_loss + penalty)
        return epoch_loss, step

    def run(self):
        """Train every job; set each estimator's weights and fitted history.

        On the CPU the loop runs on one torch thread while a step is small (a
        step of a single fit, or a few models' worth of hidden activations):
        threads then cost more in synchronization than they save, and extra
        threads on busy cores slow every small op down by orders of magnitude
        (the user guide's *Performance and CPU threads* page). Larger stacked
        steps use torch's threads.
        """
        widest = max(
            (job.estimator.module_ for job in self.jobs),
            key=lambda module: sum(p.numel() for p in module.parameters()),
        )
        threads = cpu_threads_for(widest, self.batch_size, backward=True)
        activations = len(self.jobs) * self.batch_size * sum(self.layout.widths[1:-1])
        if activations >= PARALLEL_MIN_ACTIVATIONS:
            threads = torch.get_num_threads()
        with torch_threads(threads):
            self.train()

    def cost(self):
        """A relative estimate of the group's training time."""
        return len(self.jobs) * self.n_rows * self.layout.size

    def train(self, cancel=None):
        """Train on the current torch threads; ``seconds`` records how long.

        Stops, leaving the estimators unfinished, when the ``cancel`` event
        (a ``threading.Event``) is set.
        """
        started = time.perf_counter()
        self._run(cancel)
        self.seconds = time.perf_counter() - started

    def _run(self, cancel=None):
        M = len(self.jobs)
        self.histories = histories = [History() for _ in range(M)]
        self._stack_data()
        self._stack_parameters()
        self._stack_validation()
        self._hyperparameters()
        alive = list(range(M))  # job index of each stacked row
        final = [None] * M
        # Models with the same seed and training-set size shuffle alike.
        seeds = [
            (job.estimator._seed, n)
            for job, n in zip(self.jobs, self.n_samples, strict=True)
        ]
        generators = {s: torch.Generator().manual_seed(s[0]) for s in set(seeds)}
        scheduled = any(s.policy != "constant" for s in self.schedules)
        step = 0
        with torch.no_grad():
            while alive:
                if cancel is not None and cancel.is_set():
                    return
                permutations = None
                if self.shuffle:
                    by_seed = {
                        s: _pad_permutation(
                            torch.randperm(s[1], generator=generators[s]), self.n_rows
                        )
                        for s in dict.fromkeys(seeds[j] for j in alive)
                    }
                    permutations = torch.stack([by_seed[seeds[j]] for j in alive]).to(
                        self.device
                    )
                losses, step = self._epoch(step, permutations)
                scores = [None] * len(alive)
                if self.validating:
                    val_losses, val_scores = self._validation_scores()
                    scores = list(
                        zip(val_losses.tolist(), val_scores.tolist(), strict=True)
                    )
                finished, improved = [], []
                for row, (job, loss, score) in enumerate(
                    zip(alive, losses.tolist(), scores, strict=True)
                ):
                    if self.jobs[job].validation is None:
                        scores[row] = score = None
                    stop, best = self._epoch_end(job, loss, score)
                    if stop:
                        finished.append(row)
                    if best:
                        improved.append(row)
                if improved:
                    rows = torch.tensor(improved, device=self.device)
                    self.best[rows] = self.flat[rows]
                if finished:
                    for row in finished:
                        kept = self.flat if scores[row] is None else self.best
                        final[alive[row]] = kept[row].clone()
                    keep = [r for r in range(len(alive)) if r not in set(finished)]
                    alive = [alive[r] for r in keep]
                    self._keep(keep)
                if scheduled and alive:
                    # invscaling / adaptive moved the learning rates on the host.
                    self.lr_col = _column(
                        [self.schedules[j].learning_rate for j in alive], self.flat
                    )
        for job, history, row in zip(self.jobs, histories, final, strict=True):
            self._finish(job, history, row)

    def _epoch_end(self, j, loss, validation):
        """Record epoch ``loss`` (and ``validation``: loss, score) of job ``j``
        with its fit's stopping rule.

        Returns ``(stop, best)``: whether it stops training, and whether these
        are its best weights so far (by validation score).
        """
        rule = self.rules[j]
        try:
            best = rule.record(
                rule.history.n_iter + 1, self.n_samples[j], loss, validation
            )
        except TrainingDivergedError as exc:
            self.jobs[j].error = f"TrainingDivergedError: {exc}"
            return True, False
        if rule.diverged is not None:
            if not any(map(math.isfinite, rule.history.validation_scores[:-1])):
                # No epoch to go back to: the fit raises.
                self.jobs[j].error = f"TrainingDivergedError: {rule.diverged}"
            else:
                self.jobs[j].diverged = rule.diverged
            return True, best
        stop, _ = rule.plateau(validation is not None)
        if stop:
            self.jobs[j].converged = True
            return True, best
        return rule.history.n_iter >= self.max_iter[j], best

    def _view_layers(self):
        """Views of ``flat``: the first layer's block, then (weight, bias) pairs."""
        blocks = self.layout.blocks(self.flat)
        self.first_block = blocks[0]
        self.layers = [(block[:, :, :-1], block[:, :, -1:]) for block in blocks[1:]]

    def _keep(self, rows):
        """Drop the stacked rows of models that stopped training."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        names = [
            "flat",
            "data_id",
            "X_val",
            "y_val",
            "w_val",
            "best",
            "n_samples_col",
            "weighted",
            "l2",
            "lr_col",
            "max_grad_norm",
            "pad_mask",
            "w",
        ]
        for name in names:
            value = getattr(self, name, None)
            if isinstance(value, torch.Tensor):
                setattr(self, name, value[index])
        self.update.keep(index)
        if self.dropout is not None:
            self.dropout = [self.dropout[row] for row in rows]
        self._view_layers()

    def _finish(self, job, history, row):
        estimator = job.estimator
        self.layout.unpack(row, estimator.module_)
        estimator.module_.eval()
        if job.error is None and not torch.isfinite(row).all():
            job.error = (
                "ValueError: Solver produced non-finite parameter weights. The input "
                "data may contain large values and need to be preprocessed; or "
                "lower learning_rate_init."
            )
        estimator._publish_history(history, n_iter=history.n_iter)
