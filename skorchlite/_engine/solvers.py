"""The solver registry: each ``solver`` value and everything it implies.

A stochastic entry owns its update of a stack of models (one fit is a stack
of one), the state that update keeps, how that state is saved and restored,
whether ``alpha`` is an L2 term or a decoupled weight decay, and which
learning-rate schedule applies. :class:`LBFGS` owns its whole full-batch loop.
The rest of the package asks the entry; none tests which kind it is.

The updates are torch's own optimizers: each calls the kernels that
``torch.optim.Adam`` / ``AdamW`` / ``SGD`` run (the fused Adam kernels on CPU
and CUDA, ``torch.optim.sgd.sgd`` and ``torch.optim.adam.adam`` elsewhere),
once per run of stacked models sharing their hyper-parameters. That is
torch's arithmetic exactly (``tests/test_engine_solvers.py`` holds every entry
to the optimizer its :meth:`Solver.reference` names, step by step, bit for
bit) without ``Optimizer.step``'s Python bookkeeping (~150 us a call here,
ten times the fused kernel) or its lazy import of ``torch._dynamo`` (0.7 s on
the first fit of a process).

Adding a solver is adding one entry here: its state is whatever
:meth:`Solver.new_state` creates, saved and restored without a list to keep
in step.
"""

import math

import numpy as np
import scipy.optimize
import torch
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd

from .data import OneModelData
from .loop import Outcome, StackTraining, TrainingDivergedError
from .stack import full_batch_objective

#: Devices whose fused Adam kernel the optimizers use (torch's own choice).
_FUSED_DEVICES = {"cpu", "cuda"}


class LearningRateSchedule:
    """MLPClassifier's ``learning_rate`` policies for one model.

    ``"constant"`` keeps the rate; ``"invscaling"`` sets
    ``lr_init / (t + 1) ** power_t`` after each epoch (``t`` = samples seen);
    ``"adaptive"`` divides it by 5 when the loss plateaus and stops once it
    falls below 1e-6.
    """

    def __init__(self, policy, learning_rate_init, power_t, learning_rate=None):
        self.policy = policy
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.learning_rate = (
            learning_rate_init if learning_rate is None else learning_rate
        )

    def epoch_end(self, samples_seen):
        if self.policy == "invscaling":
            self.learning_rate = (
                self.learning_rate_init / (samples_seen + 1) ** self.power_t
            )

    def on_plateau(self):
        """Return True if training should stop, else lower the rate and go on."""
        if self.policy != "adaptive" or self.learning_rate <= 1e-6:
            return True
        self.learning_rate /= 5.0
        return False


class SolverState:
    """What a solver keeps between steps, for a stack of ``M`` models.

    Attributes
    ----------
    tensors : dict of str to list of torch.Tensor
        Per name, one ``(M, *parameter_shape)`` tensor per stacked parameter.
    step : int
        Steps taken (every model of a stack steps together).
    learning_rates : list of float
        Each model's current learning rate.
    """

    def __init__(self, tensors, learning_rates, row_options, step=0):
        self.tensors = tensors
        self.learning_rates = list(learning_rates)
        #: Each model's other hyper-parameters its solver's kernel takes.
        self.row_options = list(row_options)
        self.step = step
        self._runs = None

    def forget_views(self):
        """Drop the views of the parameters and state kept between steps
        (new parameter tensors, or other learning rates, need new ones)."""
        self._runs = None

    def set_learning_rates(self, learning_rates):
        if learning_rates != self.learning_rates:
            self.learning_rates = list(learning_rates)
            self.forget_views()

    def keep(self, rows):
        """Keep the models of ``rows`` (a list of ints)."""
        device = next(iter(self.tensors.values()))[0].device
        index = torch.tensor(rows, device=device)
        self.tensors = {
            name: [tensor[index] for tensor in tensors]
            for name, tensors in self.tensors.items()
        }
        self.learning_rates = [self.learning_rates[i] for i in rows]
        self.row_options = [self.row_options[i] for i in rows]
        self.forget_views()

    def copy(self):
        return SolverState(
            {name: [t.clone() for t in ts] for name, ts in self.tensors.items()},
            self.learning_rates,
            self.row_options,
            self.step,
        )


def _runs(keys):
    """``(key, start, stop)`` for each run of equal consecutive ``keys``."""
    runs, start = [], 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            runs.append((keys[start], start, index))
            start = index
    return runs


class Solver:
    """One value of the ``solver`` parameter (a stochastic one, by default).

    Subclasses set :attr:`name` and :attr:`doc` and implement
    :meth:`new_state` and :meth:`_kernel`; :class:`LBFGS` replaces the loop.
    """

    name = None
    doc = ""
    #: ``alpha`` is a decoupled weight decay, not an L2 term of the loss.
    decoupled_decay = False
    #: State entries that must be >= 0 (a check on loading only).
    nonnegative = ()
    #: The state counts steps (saved as each parameter's ``"step"``).
    _counts_steps = False

    # ---------------------------------------------------- what it implies

    def epochs_per_call(self, max_iter, incremental):
        """Most epochs one fit call runs."""
        return 1 if incremental else max_iter

    def batch_size(self, batch_size, n_samples):
        """The minibatch size of ``batch_size`` on ``n_samples`` rows."""
        if batch_size == "auto":
            return min(200, n_samples)
        return min(batch_size, n_samples)

    def batch_size_warning(self, batch_size, n_samples):
        """MLPClassifier's warning when ``batch_size`` is clipped, or None."""
        if batch_size != "auto" and batch_size > n_samples:
            return (
                "Got `batch_size` less than 1 or larger than sample size. It is "
                "going to be clipped"
            )
        return None

    def holds_out(self, early_stopping):
        """Whether a fit holds rows out for early stopping."""
        return early_stopping

    def training_dtype(self, input_dtype):
        """The dtype ``dtype=None`` trains in, for input of ``input_dtype``."""
        return input_dtype

    def partial_fit_error(self):
        """Why ``partial_fit`` is unavailable, or None."""
        return None

    def stack_error(self):
        """Why models of this solver cannot train stacked, or None."""
        return None

    def loss_curve_error(self):
        """Why a fit of this solver records no ``loss_curve_``, or None."""
        return None

    def l2(self, settings):
        """The L2 strength of the loss (0 under a decoupled weight decay)."""
        return 0.0 if self.decoupled_decay else settings.alpha

    def schedule(self, settings, learning_rate=None):
        """The :class:`LearningRateSchedule` of a model with ``settings``."""
        return LearningRateSchedule(
            "constant", settings.learning_rate_init, settings.power_t, learning_rate
        )

    # ------------------------------------------------------------ training

    def train(self, spec, stack, history, state, listener=None):
        """Train one model (``stack``, a stack of one) as ``spec`` says.

        ``history`` and ``state`` are updated in place; returns its
        :class:`~skorchlite._engine.loop.Outcome`.
        """
        validation = spec.validation
        return StackTraining(
            self,
            stack,
            OneModelData(spec.data, spec.batch_size),
            None if validation is None else OneModelData(validation, spec.batch_size),
            [spec],
            [history],
            state,
            listener,
        ).run()[0]

    def new_state(self, params, settings):
        """A fresh :class:`SolverState` for ``params`` (stacked ``(M, ...)``)
        of models with ``settings`` (one per row)."""
        raise NotImplementedError

    def update(self, state, params, grads):
        """One step of every stacked model, in place.

        ``params`` must be the tensors of the previous step (their views are
        kept between steps); :meth:`SolverState.keep` starts afresh.
        """
        if state._runs is None:
            state._runs = self._plan_runs(state, params)
        n_models = params[0].shape[0]
        for options, rows, run_params, tensors, steps in state._runs:
            whole = rows.start == 0 and rows.stop == n_models
            run_grads = grads if whole else [g[rows] for g in grads]
            self._kernel(run_params, run_grads, tensors, steps, options)
        state.step += 1

    def _plan_runs(self, state, params):
        """The kernel calls of a step: runs of rows with equal options, with
        views of their parameters and state."""
        keys = [
            (lr, *options)
            for lr, options in zip(state.learning_rates, state.row_options, strict=True)
        ]
        runs = []
        for key, start, stop in _runs(keys):
            rows = slice(start, stop)
            # Steps are counted in float32 tensors, on the device for the
            # fused kernels, as torch's optimizers count them.
            steps = [
                torch.tensor(
                    float(state.step),
                    dtype=torch.float32,
                    device=p.device if p.device.type in _FUSED_DEVICES else "cpu",
                )
                for p in params
            ]
            tensors = {
                name: [t[rows] for t in ts] for name, ts in state.tensors.items()
            }
            runs.append((key, rows, [p[rows] for p in params], tensors, steps))
        return runs

    def _kernel(self, params, grads, tensors, steps, options):
        raise NotImplementedError(f"solver={self.name!r} defines no _kernel().")

    def reference(self, params, settings):
        """The torch optimizer this entry's update reproduces, on ``params``
        (one model's, a list): what ``tests/test_engine_solvers.py`` holds
        the update to, step by step."""
        raise NotImplementedError(
            f"solver={self.name!r} names no reference torch optimizer: define "
            "reference() to return the optimizer its update reproduces."
        )

    # ----------------------------------------------------- saved state

    def parameter_order(self, n_params):
        """The order the saved state lists the parameters in."""
        return list(range(n_params))

    def export_state(self, state, row=0):
        """Row ``row`` of ``state`` as plain values: one dict per parameter
        (in :meth:`parameter_order`), or None before the first step."""
        n_params = len(next(iter(state.tensors.values())))
        entries = []
        for index in self.parameter_order(n_params):
            if state.step == 0:
                entries.append(None)
                continue
            entry = {"step": state.step} if self._counts_steps else {}
            for name, tensors in state.tensors.items():
                entry[name] = tensors[index][row].detach().to("cpu").numpy()
            entries.append(entry)
        return entries

    def entry_names(self, params, settings):
        """The names a saved parameter entry holds (derived from the state)."""
        names = set(self.new_state(params, [settings]).tensors)
        return names | {"step"} if self._counts_steps else names

    def import_state(self, entries, params, settings, learning_rate):
        """A :class:`SolverState` of one model from checked ``entries``."""
        state = self.new_state(params, [settings])
        state.learning_rates = [learning_rate]
        present = [entry for entry in entries if entry is not None]
        if not present:
            return state
        if self._counts_steps:
            steps = {entry["step"] for entry in present}
            if len(steps) != 1:
                raise ValueError(
                    "the optimizer state's step counts differ between parameters."
                )
            state.step = steps.pop()
        else:
            state.step = 1
        order = self.parameter_order(len(params))
        for index, entry in zip(order, entries, strict=True):
            if entry is None:
                continue
            for name, tensors in state.tensors.items():
                value = torch.as_tensor(entry[name])
                tensors[index][0].copy_(value)
        return state


class _AdamBase(Solver):
    nonnegative = ("exp_avg_sq",)
    _counts_steps = True

    def new_state(self, params, settings):
        return SolverState(
            {
                "exp_avg": [torch.zeros_like(p) for p in params],
                "exp_avg_sq": [torch.zeros_like(p) for p in params],
            },
            [s.learning_rate_init for s in settings],
            [(s.beta_1, s.beta_2, s.epsilon, self._decay(s)) for s in settings],
        )

    def _decay(self, settings):
        """The decoupled weight decay the kernel applies (AdamW's alpha)."""
        return settings.alpha if self.decoupled_decay else 0.0

    def _kernel(self, params, grads, tensors, steps, options):
        lr, beta_1, beta_2, epsilon, alpha = options
        groups = self._decay_groups(params, alpha)
        if params[0].device.type not in _FUSED_DEVICES:
            for indices, weight_decay in groups:
                torch_adam(
                    [params[i] for i in indices],
                    [grads[i] for i in indices],
                    [tensors["exp_avg"][i] for i in indices],
                    [tensors["exp_avg_sq"][i] for i in indices],
                    [],
                    [steps[i] for i in indices],
                    foreach=False,
                    fused=False,
                    decoupled_weight_decay=self.decoupled_decay,
                    amsgrad=False,
                    beta1=beta_1,
                    beta2=beta_2,
                    lr=lr,
                    weight_decay=weight_decay,
                    eps=epsilon,
                    maximize=False,
                )
            return
        # The fused kernel that torch's functional adam(fused=True) calls, called
        # directly: the functional's regrouping and per-tensor step counting
        # cost ~3x the kernel on these small networks. Every parameter of a
        # run steps together, so one step counter serves them all.
        step = steps[0]
        step.add_(1)
        kernel = torch._fused_adamw_ if self.decoupled_decay else torch._fused_adam_
        for indices, weight_decay in groups:
            kernel(
                [params[i] for i in indices],
                [grads[i] for i in indices],
                [tensors["exp_avg"][i] for i in indices],
                [tensors["exp_avg_sq"][i] for i in indices],
                [],
                [step] * len(indices),
                amsgrad=False,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                weight_decay=weight_decay,
                eps=epsilon,
                maximize=False,
            )

    def _decay_groups(self, params, alpha, stacked=True):
        return [(range(len(params)), 0.0)]

    def reference(self, params, settings):
        groups = [
            {"params": [params[i] for i in indices], "weight_decay": decay}
            for indices, decay in self._decay_groups(
                params, settings.alpha, stacked=False
            )
        ]
        optimizer = torch.optim.AdamW if self.decoupled_decay else torch.optim.Adam
        return optimizer(
            groups,
            lr=settings.learning_rate_init,
            betas=(settings.beta_1, settings.beta_2),
            eps=settings.epsilon,
            fused=params[0].device.type in _FUSED_DEVICES,
        )


class Adam(_AdamBase):
    name = "adam"
    doc = "``torch.optim.Adam``."


class AdamW(_AdamBase):
    name = "adamw"
    doc = (
        "``torch.optim.AdamW``: ``alpha`` is its decoupled ``weight_decay`` of the "
        "weights (not the biases)."
    )
    decoupled_decay = True

    def _decay_groups(self, params, alpha, stacked=True):
        # Weights decay, biases (and a user module's norm scales) do not: the
        # parameters of 2 or more dimensions per model, as alpha penalizes
        # them for the other solvers (an MLP's even indices: torch's AdamW
        # groups of our MLPs). Stacked parameters have a leading model axis.
        weight_dims = 3 if stacked else 2
        weights = [i for i, p in enumerate(params) if p.dim() >= weight_dims]
        others = [i for i, p in enumerate(params) if p.dim() < weight_dims]
        return [(weights, alpha), (others, 0.0)]

    def parameter_order(self, n_params):
        # The order of the two parameter groups (older files list it so).
        return [*range(0, n_params, 2), *range(1, n_params, 2)]


class SGD(Solver):
    name = "sgd"
    doc = (
        "``torch.optim.SGD``, with ``momentum``, ``nesterovs_momentum`` and the "
        "``learning_rate`` schedule."
    )

    def schedule(self, settings, learning_rate=None):
        return LearningRateSchedule(
            settings.learning_rate,
            settings.learning_rate_init,
            settings.power_t,
            learning_rate,
        )

    def new_state(self, params, settings):
        # A zero buffer gives torch's first step exactly (0 * momentum + grad).
        return SolverState(
            {"momentum_buffer": [torch.zeros_like(p) for p in params]},
            [s.learning_rate_init for s in settings],
            [
                (s.momentum, bool(s.nesterovs_momentum and s.momentum > 0))
                for s in settings
            ],
        )

    def reference(self, params, settings):
        return torch.optim.SGD(
            params,
            lr=settings.learning_rate_init,
            momentum=settings.momentum,
            nesterov=bool(settings.nesterovs_momentum and settings.momentum > 0),
        )

    def _kernel(self, params, grads, tensors, steps, options):
        lr, momentum, nesterov = options
        torch_sgd(
            params,
            grads,
            tensors["momentum_buffer"] if momentum else [None] * len(params),
            weight_decay=0.0,
            momentum=momentum,
            lr=lr,
            dampening=0.0,
            nesterov=nesterov,
            maximize=False,
        )


class LBFGS(Solver):
    """Full-batch L-BFGS: scipy's L-BFGS-B, as MLPClassifier runs it."""

    name = "lbfgs"
    doc = (
        "full-batch L-BFGS: scipy's L-BFGS-B, run as scikit-learn's MLPs run it "
        "(``max_iter``, ``max_fun`` and ``tol`` stop it by the same rule), on the "
        "loss and gradients torch computes."
    )

    def epochs_per_call(self, max_iter, incremental):
        return 0  # iterations, not epochs

    def batch_size(self, batch_size, n_samples):
        return n_samples

    def batch_size_warning(self, batch_size, n_samples):
        return None

    def holds_out(self, early_stopping):
        return False  # MLPClassifier's lbfgs ignores early_stopping too

    def training_dtype(self, input_dtype):
        # scipy's L-BFGS-B is float64, as MLPClassifier's lbfgs.
        return np.dtype(np.float64)

    def partial_fit_error(self):
        return (
            "partial_fit is only available for stochastic optimizers. "
            f"{self.name} is not stochastic."
        )

    def stack_error(self):
        return f"solver={self.name!r} has no stacked update"

    def loss_curve_error(self):
        return f"solver={self.name!r} has iterations, not epochs"

    def new_state(self, params, settings):
        return None

    def entry_names(self, params, settings):
        return set()

    def import_state(self, entries, params, settings, learning_rate):
        raise ValueError(f"solver={self.name!r} keeps no optimizer state.")

    def train(self, spec, stack, history, state, listener=None):
        """scipy's L-BFGS-B on ``stack`` (a stack of one): ``max_iter``,
        ``max_fun`` and ``tol`` (its ``gtol``) stop training exactly where they
        stop MLPClassifier's; torch computes the loss and its gradient.

        Returns an :class:`~skorchlite._engine.loop.Outcome`.
        """
        data, settings = spec.data, spec.settings
        X, y, w = data.full_batch()
        params = stack.params
        l2 = self.l2(settings)
        best = [math.inf, None]  # lowest loss evaluated, and its point

        def set_parameters(x):
            vector = torch.from_numpy(x).to(device=data.device, dtype=data.dtype)
            offset = 0
            for p in params:
                p.copy_(vector[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

        def loss_and_gradient(x):
            set_parameters(x)
            loss, grads = full_batch_objective(stack, spec.target, X, y, w, l2)
            value = loss.item()
            if value < best[0]:
                best[:] = value, x.copy()
            gradient = torch.cat([g.reshape(-1) for g in grads])
            return value, gradient.to("cpu", torch.float64).numpy()

        start = torch.cat([p.detach().reshape(-1) for p in params])
        start = start.to("cpu", torch.float64)
        start = start.numpy()
        outcome = Outcome(records_curves=False)
        with torch.no_grad():
            try:
                result = scipy.optimize.minimize(
                    loss_and_gradient,
                    start,
                    method="L-BFGS-B",
                    jac=True,
                    options={
                        "maxfun": settings.max_fun,
                        "maxiter": settings.max_iter,
                        "gtol": settings.tol,
                    },
                )
                set_parameters(result.x)
            except KeyboardInterrupt:
                # The line search may have been stopped at a trial point: go
                # back to the best weights evaluated.
                outcome.interrupted = True
                set_parameters(start if best[1] is None else best[1])
                loss, _ = full_batch_objective(stack, spec.target, X, y, w, l2)
                result = scipy.optimize.OptimizeResult(
                    nit=0, fun=loss.item(), status=-1, message="interrupted"
                )
        if not math.isfinite(result.fun):
            raise TrainingDivergedError(
                f"L-BFGS diverged: the loss became {result.fun}. Scale X (e.g. "
                "with StandardScaler) or increase alpha."
            )
        n_iter = min(result.nit, settings.max_iter)
        history.n_iter += n_iter
        history.loss = result.fun
        outcome.n_iter = n_iter
        if result.status > 0:  # not converged (-1: interrupted)
            outcome.warnings.append(
                f"lbfgs failed to converge after {result.nit} iteration(s) "
                f"(status={result.status}): {result.message}. Increase max_iter "
                "or max_fun, or scale the data (e.g. with StandardScaler)."
            )
        return outcome


#: Every solver by its name.
SOLVERS = {solver.name: solver() for solver in (Adam, AdamW, SGD, LBFGS)}
