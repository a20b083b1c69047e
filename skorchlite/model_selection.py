"""Hyper-parameter search that trains the whole grid at once.

:class:`BatchedGridSearchCV` is :class:`sklearn.model_selection.GridSearchCV`
for :class:`~skorchlite.TorchMLPClassifier`: the (candidate, fold) models that
share a training-loop shape are stacked into batched tensors
(:mod:`skorchlite._batched`) and one step of the loop advances all of them.
"""

import copy
import time
import warnings
from collections import defaultdict
from numbers import Integral

import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _score,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params, _num_samples, indexable

from ._base import BaseTorchMLP, _seed_from
from ._batched import BatchedGroup, BatchedJob, train_groups
from ._classifier import TorchMLPClassifier
from ._mlp import ACTIVATIONS, linear_layers
from ._regressor import TorchMLPRegressor
from ._solvers import SOLVERS


class BatchedGridSearchCV(GridSearchCV):
    """Exhaustive search over a TorchMLPClassifier grid, trained in batches.

    The interface, ``cv_results_`` and fitted attributes are those of
    :class:`sklearn.model_selection.GridSearchCV`, so swapping the import keeps
    the rest of the code. Instead of fitting the ``n_candidates * n_splits``
    models one after the other, the models whose training loops have the same
    shape (solver, activation, depth, batch size, batches per epoch, shuffle,
    dtype, device) are trained together, as stacked tensors: hidden widths and
    the folds' training sets are zero-padded, and ``learning_rate_init``,
    ``alpha``, ``beta_1``, ``beta_2``, ``epsilon``, ``momentum``,
    ``nesterovs_momentum``, ``learning_rate``, ``power_t``, ``class_weight``,
    ``dropout``, ``max_grad_norm``, ``tol``, ``n_iter_no_change``, ``max_iter``
    and ``random_state`` vary freely inside one batch. Each model stops on its own
    rule, exactly as ``TorchMLPClassifier.fit`` would stop it; with
    ``early_stopping=True`` it holds out its fit's validation rows, and keeps
    its best weights.

    Each batched model is the model ``TorchMLPClassifier(**params).fit`` gives on
    that fold (same initial weights, batch order, loss curve and stopping
    epoch, up to floating-point rounding), then scored through its own
    ``predict`` path, so ``cv_results_`` matches ``GridSearchCV``'s.

    Falls back to ordinary fits (run with ``n_jobs``) for the candidates the
    batched path does not cover: an estimator that is not a
    ``TorchMLPClassifier`` (e.g. a ``Pipeline``), ``solver="lbfgs"``,
    ``dropout > 0`` on a GPU, activations other than
    ``"identity"``, ``"logistic"``, ``"tanh"`` and ``"relu"``, sparse ``X``,
    fit parameters other than ``sample_weight``, and estimators with sklearn
    callbacks.
    ``best_estimator_`` is always refit with an ordinary ``fit``.

    Parameters
    ----------
    estimator : TorchMLPClassifier or estimator
        The estimator to tune. With ``random_state=None``, one int seed is
        drawn per search and set on every candidate (and on
        ``best_estimator_``), so the refit model is reproducible; a
        ``RandomState`` instance gives each candidate the int it would draw
        first, as its clones inside ``GridSearchCV`` do.
    param_grid : dict or list of dicts
        As in ``GridSearchCV``.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in ``GridSearchCV``.
    n_jobs : int or None, default=None
        Parallel jobs for the fallback fits only; batched training uses torch's
        threads.
    refit : bool, str or callable, default=True
        As in ``GridSearchCV``.
    cv : int, cross-validation generator or iterable, default=None
        As in ``GridSearchCV`` (stratified 5-fold for classifiers by default).
    verbose : int, default=0
        Prints the number of fits, and how many were batched, when > 0.
    pre_dispatch : int or str, default="2*n_jobs"
        As in ``GridSearchCV`` (fallback fits).
    error_score : "raise" or float, default=np.nan
        Score of a fit that fails (diverges); ``"raise"`` raises its error.
    return_train_score : bool, default=False
        As in ``GridSearchCV``.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        As in ``GridSearchCV``. ``mean_fit_time`` of a batched model is its
        group's training time divided by the group's size.
    best_estimator_ : TorchMLPClassifier
        A plain fitted estimator, refit on all of ``X`` with ``best_params_``.
    best_score_ : float
    best_params_ : dict
    best_index_ : int
    scorer_ : function or dict
    n_splits_ : int
    refit_time_ : float
    multimetric_ : bool
    n_batched_fits_ : int
        How many (candidate, fold) models were trained in batches.
    n_batch_groups_ : int
        How many batched training runs they took.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The one-model-at-a-time search.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import BatchedGridSearchCV, TorchMLPClassifier
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> search = BatchedGridSearchCV(
    ...     TorchMLPClassifier(max_iter=50, random_state=0),
    ...     {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [0.01, 0.03]},
    ...     cv=3,
    ... ).fit(X, y)
    >>> search.n_batched_fits_, search.n_batch_groups_
    (12, 2)
    >>> sorted(search.best_params_)
    ['hidden_layer_sizes', 'learning_rate_init']
    >>> bool(search.best_score_ > 0.8)
    True
    """

    @_fit_context(
        # the estimator is validated by its own fit
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training vectors.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Targets.
        **params : dict of str -> object
            ``sample_weight`` (split with the folds) and ``groups`` (for the
            splitter), as in ``GridSearchCV``.

        Returns
        -------
        self : BatchedGridSearchCV
            The fitted search.
        """
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        split_params = routed.splitter.split
        self.n_splits_ = cv.get_n_splits(X, y, **split_params)
        splits = list(cv.split(X, y, **split_params))
        if len(splits) != self.n_splits_:
            raise ValueError(
                "cv.split and cv.get_n_splits return inconsistent results. "
                f"Expected {self.n_splits_} splits, got {len(splits)}"
            )
        candidates = list(ParameterGrid(self.param_grid))
        if not candidates or not splits:
            raise ValueError(
                "No fits were performed. Was the CV iterator empty? Were there no "
                "candidates?"
            )
        base = _with_int_seed(clone(self.estimator))
        context = _SearchContext(
            X, y, splits, candidates, routed, scorers, self.return_train_score
        )
        out = self._evaluate(base, context)
        self._store_results(base, candidates, out, scorers, refit_metric, X, y, routed)
        return self

    # ------------------------------------------------------------ evaluate

    def _evaluate(self, base, context):
        """One ``_fit_and_score``-style result dict per (candidate, split)."""
        n_splits = len(context.splits)
        tasks = [
            (c, s) for c in range(len(context.candidates)) for s in range(n_splits)
        ]
        if self.verbose > 0:
            print(
                f"Fitting {n_splits} folds for each of {len(context.candidates)} "
                f"candidates, totalling {len(tasks)} fits"
            )
        out = [None] * len(tasks)
        groups, fallback = defaultdict(list), []
        data_cache = {}
        for index, (c, s) in enumerate(tasks):
            job = self._prepare(base, context, c, s, data_cache)
            if job is None:
                fallback.append(index)
            else:
                groups[_group_key(job)].append((index, job))
        groups = [part for group in groups.values() for part in _split_by_width(group)]
        runs = [BatchedGroup([job for _, job in members]) for members in groups]
        train_groups(runs)
        for members, run in zip(groups, runs, strict=True):
            fallback.extend(self._score_group(members, run.seconds, context, out))
        self.n_batched_fits_ = len(tasks) - len(fallback)
        self.n_batch_groups_ = len(groups)
        if self.verbose > 0:
            print(
                f"Trained {self.n_batched_fits_} fits in {len(groups)} batched "
                f"group(s); {len(fallback)} ordinary fit(s)"
            )
        kwargs = dict(
            scorer=context.scorers,
            fit_params=context.routed.estimator.fit,
            score_params=context.routed.scorer.score,
            return_train_score=self.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            return_parameters=False,
            error_score=self.error_score,
            verbose=self.verbose,
        )
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
        results = parallel(
            delayed(_fit_and_score)(
                clone(base),
                context.X,
                context.y,
                train=context.splits[tasks[i][1]][0],
                test=context.splits[tasks[i][1]][1],
                parameters=context.candidates[tasks[i][0]],
                split_progress=(tasks[i][1], n_splits),
                candidate_progress=(tasks[i][0], len(context.candidates)),
                **kwargs,
            )
            for i in fallback
        )
        for i, result in zip(fallback, results, strict=True):
            out[i] = result
        return out

    def _prepare(self, base, context, c, s, data_cache):
        """A :class:`BatchedJob` for candidate ``c`` on split ``s``, or None to
        fall back to an ordinary fit."""
        estimator = clone(base).set_params(**clone(context.candidates[c], safe=False))
        if not _batchable(estimator, context):
            return None
        started = time.perf_counter()
        train = context.splits[s][0]
        try:
            # The prelude of the estimator's own first fit, up to its fit plan.
            estimator._validate_params()
            X_train, y_train = _safe_split(estimator, context.X, context.y, train)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                X_train, y_train = estimator._validate_fit_data(
                    X_train, y_train, True, None
                )
            fit_params = _check_method_params(
                context.X, params=context.routed.estimator.fit, indices=train
            )
            weights = estimator._training_weights(
                X_train, y_train, fit_params.get("sample_weight")
            )
            estimator._initialize(X_train, estimator._hidden_layer_sizes())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the ordinary fit would warn
                plan = estimator._fit_plan(
                    X_train, y_train, weights, False, estimator._seed
                )
        except (ValueError, TypeError):
            # Data or parameters the estimator's fit refuses: the ordinary fit
            # raises (or scores) the error, as GridSearchCV does.
            return None
        if plan.data.is_sparse:
            return None
        device, dtype = estimator._module_placement()
        if estimator.dropout and device.type != "cpu":
            return None  # its fit draws the masks from the device's RNG
        # Models on the same rows share them in the stacked tensors.
        key = (s, dtype, device)
        if plan.validation is not None:
            key += (estimator._seed, estimator.validation_fraction)
        data = data_cache.setdefault(key, plan.data)
        weights = plan.data.sample_weight
        validation = plan.validation
        job = BatchedJob(estimator, key, data.X, data.y, weights, validation)
        job.task = (c, s)
        job.prepare_time = time.perf_counter() - started
        return job

    def _score_group(self, members, seconds, context, out):
        """Score one trained group into ``out``; returns the indices to refit
        ordinarily (failed fits when ``error_score="raise"``)."""
        per_model = seconds / len(members)
        failed = []
        for index, job in members:
            if job.error is not None and self.error_score == "raise":
                failed.append(index)  # the ordinary fit raises the real error
                continue
            if job.diverged is not None:
                job.estimator._warn_diverged(job.diverged)
            elif job.error is None and not job.converged:
                job.estimator._warn_max_iter_reached()
            out[index] = self._score_job(job, context, per_model)
        return failed

    def _score_job(self, job, context, fit_time):
        train, test = context.splits[job.task[1]]
        estimator = job.estimator
        result = {"fit_error": job.error}
        if job.error is not None:
            error = self.error_score
            if hasattr(context.scorers, "_scorers"):  # multimetric
                scores = {name: error for name in context.scorers._scorers}
            else:
                scores = error
            result["test_scores"] = scores
            if context.return_train_score:
                result["train_scores"] = copy.copy(scores)
            score_time = 0.0
        else:

            def score_on(rows, train_rows=None):
                X, y = _safe_split(estimator, context.X, context.y, rows, train_rows)
                params = context.routed.scorer.score
                return _score(
                    estimator,
                    X,
                    y,
                    context.scorers,
                    _check_method_params(context.X, params, indices=rows),
                    self.error_score,
                )

            started = time.perf_counter()
            result["test_scores"] = score_on(test, train)
            score_time = time.perf_counter() - started
            if context.return_train_score:
                result["train_scores"] = score_on(train)
        result["n_test_samples"] = _num_samples(test)
        result["fit_time"] = fit_time + job.prepare_time
        result["score_time"] = score_time
        return result

    # ------------------------------------------------------------- results

    def _store_results(
        self, base, candidates, out, scorers, refit_metric, X, y, routed
    ):
        """Aggregate ``out`` and refit, as ``GridSearchCV.fit`` does."""
        _warn_or_raise_about_fit_failures(out, self.error_score)
        if callable(self.scoring):
            _insert_error_scores(out, self.error_score)
        results = self._format_results(candidates, self.n_splits_, out)
        self.multimetric_ = isinstance(out[0]["test_scores"], dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(out[0]["test_scores"])
            refit_metric = self.refit
        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(
                self.refit, refit_metric, results
            )
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][
                    self.best_index_
                ]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(base).set_params(
                **clone(self.best_params_, safe=False)
            )
            started = time.time()
            if y is None:
                self.best_estimator_.fit(X, **routed.estimator.fit)
            else:
                self.best_estimator_.fit(X, y, **routed.estimator.fit)
            self.refit_time_ = time.time() - started
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results


class _SearchContext:
    """What every (candidate, split) evaluation of one ``fit`` call shares."""

    def __init__(self, X, y, splits, candidates, routed, scorers, return_train):
        self.X, self.y = X, y
        self.splits = splits
        self.candidates = candidates
        self.routed = routed
        self.scorers = scorers
        self.return_train_score = return_train


def _with_int_seed(estimator):
    """Give our estimator one int seed for the whole search."""
    if not isinstance(estimator, BaseTorchMLP):
        return estimator
    random_state = estimator.random_state
    if not isinstance(random_state, Integral):
        # A RandomState is deep-copied into every clone, which then draws the
        # same first int: draw it once from a copy.
        estimator.set_params(random_state=_seed_from(copy.deepcopy(random_state)))
    return estimator


def _batchable(estimator, context):
    """Whether the batched loop reproduces ``estimator.fit`` exactly."""
    if (
        type(estimator) not in (TorchMLPClassifier, TorchMLPRegressor)
        or context.y is None
    ):
        return False
    fit_params = context.routed.estimator.fit
    return (
        _has_stacked_update(estimator.solver)
        and _has_closed_form_gradient(estimator.activation)
        and not getattr(estimator, "_skl_callbacks", None)
        and set(fit_params) <= {"sample_weight"}
        and not sp.issparse(context.X)
        and isinstance(estimator.random_state, Integral)
    )


def _has_stacked_update(solver):
    spec = SOLVERS.get(solver) if isinstance(solver, str) else None
    return spec is not None and spec.stacked_update is not None


def _has_closed_form_gradient(activation):
    spec = ACTIVATIONS.get(activation) if isinstance(activation, str) else None
    return spec is not None and spec.closed_form


# A group whose stacked hidden activations exceed this many numbers is split by
# width: its steps are then memory-bound, and padding narrow models to the
# widest would only add work. Smaller groups are dominated by per-step
# overhead, so padding them into one run is cheaper.
PAD_ALL_MAX_ACTIVATIONS = 2**16

# Runs stack at most about this many hidden activations per step: beyond it the
# step's tensors outgrow the caches, and the time per model grew (60 moons
# models of width 100 took 1.5x as long per model as 20 of them).
RUN_MAX_ACTIVATIONS = 2**19


def _split_by_width(members):
    """Split a large group into runs of similar widths (powers of 2) and sizes."""

    def widths(job):
        return [
            layer.out_features for layer in linear_layers(job.estimator.module_)[:-1]
        ]

    def activations(group):
        widest = [max(w) for w in zip(*(widths(job) for _, job in group), strict=True)]
        job = group[0][1]
        return len(group) * job.estimator._batch_size(job.X.shape[0]) * sum(widest)

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
    estimator = job.estimator
    n_samples = job.X.shape[0]
    batch_size = estimator._batch_size(n_samples)
    return (
        # Training sets of different sizes share a run if they give the same
        # batches (all full but the last).
        batch_size,
        -(-n_samples // batch_size),
        job.X.shape[1],
        job.X.dtype,
        str(job.X.device),
        estimator.solver,
        estimator.activation,
        estimator.n_layers_,
        bool(estimator.shuffle),
        estimator._target.name,
        estimator._target.out_activation,
        estimator.n_outputs_,
    )
