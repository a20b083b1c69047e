"""The frozen specification of one fit call, from the estimator to the engine.

The estimator validates its parameters and data, then describes the call
here; the loop, the stacked engine, the state codec and the batched searches
read this, never the estimator.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SolverSettings:
    """The hyper-parameters the solvers read (the estimator's, validated)."""

    learning_rate_init: float
    learning_rate: str
    power_t: float
    momentum: float
    nesterovs_momentum: bool
    beta_1: float
    beta_2: float
    epsilon: float
    alpha: float
    max_iter: int
    max_fun: int
    tol: float

    @classmethod
    def of(cls, estimator):
        """The settings of ``estimator``'s (validated) parameters, each as its
        field's type: ``momentum=True`` passes validation (a bool is a real)
        but torch's kernels refuse a bool hyper-parameter."""
        return cls(
            **{
                name: field.type(getattr(estimator, name))
                for name, field in cls.__dataclass_fields__.items()
            }
        )


@dataclass(frozen=True)
class FitSpec:
    """What one fit call of one model trains on, and how.

    Attributes
    ----------
    data : skorchlite._engine.data.TrainingData
        The training rows (without those held out for early stopping).
    validation : TrainingData or None
        The rows held out for early stopping.
    target : skorchlite._targets.Target
        The kind of ``y``: its loss, gradient and validation score.
    solver : skorchlite._engine.solvers.Solver
    settings : SolverSettings
    seed : int
        Seeds this call's batch order and dropout masks.
    batch_size : int
    max_epochs : int
        Epochs this call runs at most (0 for L-BFGS, which counts iterations).
    shuffle : bool
    tol : float
    n_iter_no_change : int or float
    max_grad_norm : float or None
    dropout : float
    validation_batch_size : int
        Rows per forward pass when validating.
    incremental : bool
        A ``partial_fit`` call (which gives no max-iterations warning).
    """

    data: object
    validation: object
    target: object
    solver: object
    settings: SolverSettings
    seed: int
    batch_size: int
    max_epochs: int
    shuffle: bool
    tol: float
    n_iter_no_change: object
    max_grad_norm: object
    dropout: float
    validation_batch_size: int
    incremental: bool = False
