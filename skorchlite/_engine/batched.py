"""Train many MLPs of one shape at once, as one stack.

Every model of a :class:`BatchedGroup` has the same depth, activation, solver
and batches per epoch, so one step of the loop (:mod:`skorchlite._engine.loop`,
the single fit's own) advances all of them: each layer's weights are an
``(M, out, in)`` tensor, hidden widths zero-padded to the widest, and the
solver's update runs once per run of models sharing their hyper-parameters.
Each model reproduces what its own fit computes (same initial weights, batch
order, dropout masks, loss curve and stopping rule), up to floating-point
rounding.

Padded units stay exactly zero: their incoming weights and biases get zero
gradients, and so do their outgoing weights unless the activation of 0 is not
0 (the logistic), where the gradient is masked. Training sets of different
sizes that give the same batches (the folds of most data sets) are
zero-padded to the largest, their padded rows weighing 0.
"""

import dataclasses
import itertools
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch

from .._device import cpu_threads_for, torch_threads
from .data import StackedData
from .func_stack import FuncStack, func_stack_error
from .loop import History, StackTraining
from .network import linear_layers
from .stack import DropoutMasks, MLPStack

# A group whose stacked hidden activations exceed this many numbers is split by
# width: its steps are then memory-bound, and padding narrow models to the
# widest would only add work. Smaller groups are dominated by per-step
# overhead, so padding them into one run is cheaper.
PAD_ALL_MAX_ACTIVATIONS = 2**16

# Runs stack at most about this many hidden activations per step: beyond it the
# step's tensors outgrow the caches, and the time per model grew (60 moons
# models of width 100 took 1.5x as long per model as 20 of them).
RUN_MAX_ACTIVATIONS = 2**19

# Stacked steps with at least this many hidden activations use torch's threads.
PARALLEL_MIN_ACTIVATIONS = 2**15

# A batched run allocates at most about this many bytes (BatchedGroup.memory):
# a larger group trains as several runs (in a search over joblib workers,
# several tasks), fold by fold.
RUN_MAX_BYTES = 2**30


@dataclass
class BatchedJob:
    """One model to train: its initialized module and its fit's specification.

    Attributes
    ----------
    module : torch.nn.Module
        The model's network, with its initial weights; it gets the trained
        weights only through :attr:`outcome` (``outcome.final``).
    spec : skorchlite._engine.spec.FitSpec
    data_key : hashable
        Jobs with the same key train on the same rows.
    outcome : skorchlite._engine.loop.Outcome or None
        Set by :meth:`BatchedGroup.run`, with ``outcome.history``.
    """

    module: object
    spec: object
    data_key: object
    outcome: object = None


def stack_error(job, checked=None, module_key=None):
    """Why ``job`` cannot train in a stack, or None.

    Our MLPs stack with closed-form gradients (:class:`MLPStack`); other
    modules through ``torch.func`` (:class:`FuncStack`) unless
    :func:`func_stack_error` finds a reason. That check runs the module, so
    its reasons are kept in the dict ``checked`` under ``module_key`` (the
    caller's: what decides the module's behaviour), when given.
    """
    reason = job.spec.solver.stack_error()
    if reason is not None:
        return reason
    data = job.spec.data
    if data.is_sparse:
        return "sparse X"
    if MLPStack.of_module(job.module) is not None:
        return None
    if data.n_samples < 2:
        return "fewer than 2 training rows"
    if checked is not None and module_key in checked:
        return checked[module_key]
    rows = data.X[: min(8, data.n_samples)]
    reason = func_stack_error(job.module, rows)
    reason = None if reason is None else f"the module {reason}"
    if checked is not None:
        checked[module_key] = reason
    return reason


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


def _sizes(module):
    return [layer.out_features for layer in linear_layers(module)]


class BatchedGroup:
    """Train ``jobs`` (models of one loop shape) together.

    Parameters
    ----------
    jobs : list of BatchedJob
        Same solver, activation, depth, batch size, number of batches per
        epoch, shuffle, target, dtype and device; everything else may differ.
        None of them has a :func:`stack_error`.
    """

    def __init__(self, jobs):
        # Models sharing their hyper-parameters side by side: the solver
        # updates each run of them in one call.
        self.jobs = sorted(jobs, key=lambda job: dataclasses.astuple(job.spec.settings))
        first = self.jobs[0].spec
        self.solver = first.solver
        self.device = first.data.device
        self.dtype = first.data.dtype
        self.batch_size = first.batch_size
        self.n_rows = max(job.spec.data.n_samples for job in self.jobs)
        self.n_features = first.data.X.shape[1]
        #: Our MLPs (closed-form, widths padded), or a user's modules (torch.func).
        self.closed_form = MLPStack.of_module(self.jobs[0].module) is not None
        self.widths = None
        if self.closed_form:
            self.widths = [
                self.n_features,
                *map(max, zip(*(_sizes(job.module) for job in self.jobs), strict=True)),
            ]

    def cost(self):
        """A relative estimate of the group's training time."""
        return len(self.jobs) * self.n_rows * self._n_params()

    def memory(self):
        """An estimate of the bytes training the group allocates.

        The distinct training sets, each model's weights, validation rows and
        parameters (with their gradients, optimizer state and best copy), and
        a step's activations (for a user's module, one number per output
        feature or channel of its weights: a convolution's are more).
        """
        specs = [job.spec for job in self.jobs]
        n_models = len(self.jobs)
        row = self.n_features + specs[0].target.n_outputs + 1  # X, y, weight
        n_sets = len({job.data_key for job in self.jobs})
        validation = sum(s.validation.n_samples for s in specs if s.validation)
        if self.closed_form:
            widths = sum(self.widths[1:])
        else:
            params = self.jobs[0].module.parameters()
            widths = sum(p.shape[0] for p in params if p.dim() >= 2)
        numbers = (
            (n_sets * self.n_rows + validation) * row
            + n_models * self.n_rows
            + 5 * n_models * self._n_params()
            + 4 * n_models * self.batch_size * widths
        )
        return numbers * torch.empty((), dtype=self.dtype).element_size()

    def _n_params(self):
        """Each model's number of parameters in the stack (padded)."""
        if self.closed_form:
            return sum(
                (fan_in + 1) * fan_out
                for fan_in, fan_out in itertools.pairwise(self.widths)
            )
        return sum(p.numel() for p in self.jobs[0].module.parameters())

    def run(self):
        """Train every job, setting its outcome.

        On the CPU the loop runs on one torch thread while a step is small (a
        step of a single fit, or a few models' worth of hidden activations):
        threads then cost more in synchronization than they save, and extra
        threads on busy cores slow every small op down by orders of magnitude
        (the user guide's *Performance and CPU threads* page). Larger stacked
        steps use torch's threads.
        """
        widest = max(
            (job.module for job in self.jobs),
            key=lambda module: sum(p.numel() for p in module.parameters()),
        )
        threads = cpu_threads_for(widest, self.batch_size, backward=True)
        hidden = sum(self.widths[1:-1]) if self.closed_form else 0
        if len(self.jobs) * self.batch_size * hidden >= PARALLEL_MIN_ACTIVATIONS:
            threads = torch.get_num_threads()
        with torch_threads(threads):
            self.train()

    def train(self, cancel=None):
        """Train on the current torch threads; ``seconds`` records how long.

        Stops, leaving the outcomes unfinished, when the ``cancel`` event (a
        ``threading.Event``) is set.
        """
        started = time.perf_counter()
        specs = [job.spec for job in self.jobs]
        stack = self._stack()
        data = StackedData(
            [spec.data for spec in specs],
            [job.data_key for job in self.jobs],
            self.batch_size,
        )
        validation = None
        if any(spec.validation is not None for spec in specs):
            fallback = next(s.validation for s in specs if s.validation is not None)
            validation = StackedData(
                [fallback if s.validation is None else s.validation for s in specs],
                list(range(len(specs))),
                self.batch_size,
            )
        histories = [History() for _ in specs]
        state = self.solver.new_state(stack.params, [spec.settings for spec in specs])
        with torch.no_grad():
            outcomes = StackTraining(
                self.solver, stack, data, validation, specs, histories, state
            ).run(cancel)
        for job, outcome, history in zip(self.jobs, outcomes, histories, strict=True):
            outcome.history = history
            if outcome.final is not None:  # unpad
                outcome.final = [
                    final[tuple(slice(0, n) for n in p.shape)]
                    for final, p in zip(
                        outcome.final, job.module.parameters(), strict=True
                    )
                ]
            job.outcome = outcome
        self.seconds = time.perf_counter() - started

    def _stack(self):
        """The jobs' initial weights as one stack: our MLPs zero-padded to the
        widest, a user's modules (of one architecture) as they are."""
        if not self.closed_form:
            return FuncStack.of_modules([job.module for job in self.jobs])
        M, widths = len(self.jobs), self.widths
        params, real = [], []
        for fan_in, fan_out in itertools.pairwise(widths):
            for shape in ((fan_out, fan_in), (fan_out,)):
                params.append(
                    torch.zeros(M, *shape, dtype=self.dtype, device=self.device)
                )
                real.append(torch.zeros_like(params[-1]))
        with torch.no_grad():
            for m, job in enumerate(self.jobs):
                for stacked, mask, p in zip(
                    params, real, job.module.parameters(), strict=True
                ):
                    place = (m, *(slice(0, n) for n in p.shape))
                    stacked[place] = p.detach()
                    mask[place] = 1.0
        activation = MLPStack.of_module(self.jobs[0].module).activation
        # The outgoing weights of padded units only get a gradient when the
        # activation of 0 is not 0; mask them then.
        grad_mask = None
        padded = any(bool((mask == 0).any()) for mask in real)
        if padded and activation is not None:
            zero = activation.forward(torch.zeros(1, dtype=self.dtype))
            if zero.item() != 0:
                grad_mask = real
        dropout = DropoutMasks.of(
            [job.spec for job in self.jobs], [job.module for job in self.jobs]
        )
        return MLPStack(params, activation, dropout, grad_mask)


def plan_groups(members):
    """Group ``members``, ``(index, BatchedJob)`` pairs, into the runs that
    train together: models of one loop shape (:func:`_group_key`), large
    groups split by width (:func:`_split_by_width`) and memory
    (:func:`_split_by_memory`)."""
    groups = defaultdict(list)
    for member in members:
        groups[_group_key(member[1])].append(member)
    return [
        run
        for key, group in groups.items()
        for part in (_split_by_width(group) if key[0] == "mlp" else [group])
        for run in _split_by_memory(part)
    ]


def spread(groups, n_workers):
    """Split the costliest of ``groups`` (lists of ``(index, BatchedJob)``)
    so that none costs more than an even share of ``n_workers``; returns the
    parts, costliest first.

    A group's steps cost about as much for half of its models (they are
    dispatch-bound), so two halves on two idle workers take half the time.
    """

    def cost(members):
        return BatchedGroup([job for _, job in members]).cost()

    share = sum(map(cost, groups)) / n_workers
    parts = []
    for members in groups:
        n_parts = min(len(members), math.ceil(cost(members) / share))
        parts += _split_evenly(members, n_parts)
    return sorted(parts, key=cost, reverse=True)


def _split_by_memory(members):
    """Split a group whose :meth:`BatchedGroup.memory` exceeds
    ``RUN_MAX_BYTES`` into runs that do not, fold by fold (a run then holds
    fewer distinct training sets)."""
    nbytes = BatchedGroup([job for _, job in members]).memory()
    if nbytes <= RUN_MAX_BYTES:
        return [members]
    first_seen = {}
    for _, job in members:
        first_seen.setdefault(job.data_key, len(first_seen))
    by_data = sorted(members, key=lambda member: first_seen[member[1].data_key])
    return _split_evenly(by_data, min(len(members), -(-nbytes // RUN_MAX_BYTES)))


def _split_evenly(members, n_parts):
    size = -(-len(members) // n_parts)
    return [members[i : i + size] for i in range(0, len(members), size)]


def _split_by_width(members):
    """Split a large group into runs of similar widths (powers of 2) and sizes."""

    def widths(job):
        return [layer.out_features for layer in linear_layers(job.module)[:-1]]

    def activations(group):
        widest = [max(w) for w in zip(*(widths(job) for _, job in group), strict=True)]
        return len(group) * group[0][1].spec.batch_size * sum(widest)

    if activations(members) <= PAD_ALL_MAX_ACTIVATIONS:
        return [members]
    buckets = defaultdict(list)
    for member in members:
        key = tuple(1 << (w - 1).bit_length() for w in widths(member[1]))
        buckets[key].append(member)
    runs = []
    for bucket in buckets.values():
        n_runs = -(-activations(bucket) // RUN_MAX_ACTIVATIONS)
        size = -(-len(bucket) // n_runs)
        runs += [bucket[i : i + size] for i in range(0, len(bucket), size)]
    return runs


def _group_key(job):
    """Models with the same key run the same loop: they train together."""
    spec = job.spec
    n_samples = spec.data.n_samples
    target = spec.target
    stack = MLPStack.of_module(job.module)
    if stack is None:  # a user's module: one architecture, exactly
        network = (
            "module",
            type(job.module),
            tuple((n, tuple(t.shape)) for n, t in job.module.named_parameters()),
            tuple((n, tuple(t.shape)) for n, t in job.module.named_buffers()),
        )
    else:
        activation = None if stack.activation is None else stack.activation.name
        network = ("mlp", activation, len(stack.params))
    return (
        *network,
        # Training sets of different sizes share a run if they give the same
        # batches (all full but the last).
        spec.batch_size,
        -(-n_samples // spec.batch_size),
        spec.data.X.shape[1],
        spec.data.dtype,
        str(spec.data.device),
        spec.solver.name,
        spec.shuffle,
        target.name,
        target.out_activation,
        target.n_outputs,
    )
