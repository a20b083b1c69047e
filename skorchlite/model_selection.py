"""Hyper-parameter searches that train many models at once.

:class:`BatchedGridSearchCV`, :class:`BatchedRandomizedSearchCV`,
:class:`BatchedHalvingGridSearchCV` and :class:`BatchedHalvingRandomSearchCV`
are sklearn's searches for :class:`~skorchlite.TorchMLPClassifier` and
:class:`~skorchlite.TorchMLPRegressor` (alone or at the end of a ``Pipeline``):
the (candidate, fold) models that share a training-loop shape are stacked into
batched tensors (:mod:`skorchlite._engine.batched`) and one step of the loop advances
all of them.
"""

import copy
import inspect
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, replace
from numbers import Integral

import scipy.sparse as sp
import torch
from joblib import Parallel, delayed, effective_n_jobs
from joblib.parallel import get_active_backend
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
    check_cv,
)
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _score,
    _warn_or_raise_about_fit_failures,
)
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params, _num_samples, indexable

from ._base import (
    BaseTorchEstimator,
    _seed_from,
    has_callbacks,
    prepare_fit,
    publish_fit,
)
from ._classifier import TorchClassifier, TorchMLPClassifier
from ._device import torch_threads
from ._engine.batched import (
    BatchedGroup,
    BatchedJob,
    plan_groups,
    spread,
    stack_error,
    train_groups,
)
from ._module import split_module_params
from ._regressor import TorchMLPRegressor, TorchRegressor
from ._warnings import warn_at_caller

#: The estimators whose fits the batched loop reproduces (exactly these types:
#: a subclass may change what fit does).
BATCHED_CLASSES = (
    TorchMLPClassifier,
    TorchMLPRegressor,
    TorchClassifier,
    TorchRegressor,
)


class _BatchedSearchMixin(BaseSearchCV):
    """``BaseSearchCV.fit`` with the (candidate, fold) fits trained in batches.

    Put after the sklearn search in the bases (``class
    BatchedGridSearchCV(GridSearchCV, _BatchedSearchMixin)``): its ``fit``
    then runs the search's own ``_run_search`` (and, for the halving searches,
    their own preparation in ``fit``), and only the evaluation of each list of
    candidates is batched.
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
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        **params : dict of str -> object
            ``sample_weight`` (``<step>__sample_weight`` for a Pipeline; split
            with the folds) and ``groups`` (for the splitter), as in sklearn's
            searches.

        Returns
        -------
        self : object
            The fitted search.
        """
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        split_params = routed.splitter.split
        callback_ctx = None
        if hasattr(self, "_init_callback_context"):  # scikit-learn >= 1.9
            callback_ctx = self._init_callback_context(
                max_subtasks=1 + (self.refit is not False)
            ).call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=None)
        self._checked_cv_orig = check_cv(
            self.cv, y, classifier=is_classifier(self.estimator)
        )
        check_input = getattr(self, "_check_input_parameters", None)
        if check_input is not None:  # scikit-learn >= 1.9; before, halving's fit
            check_input(X=X, y=y, split_params=split_params)
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **split_params)
        base = _with_int_seed(clone(self.estimator))
        self.n_batched_fits_ = self.n_batch_groups_ = 0
        all_candidates, all_out, all_more = [], [], defaultdict(list)
        results = {}

        def evaluate_candidates(
            candidate_params, cv=None, more_results=None, callback_ctx=None
        ):
            nonlocal results
            cv = cv or self._checked_cv_orig
            candidates = list(candidate_params)
            splits = list(cv.split(X, y, **split_params))
            if len(splits) != self.n_splits_:
                raise ValueError(
                    "cv.split and cv.get_n_splits return inconsistent results. "
                    f"Expected {self.n_splits_} splits, got {len(splits)}"
                )
            if not candidates or not splits:
                raise ValueError(
                    "No fits were performed. Was the CV iterator empty? Were there "
                    "no candidates?"
                )
            context = _SearchContext(
                base,
                X,
                y,
                splits,
                candidates,
                routed,
                scorers,
                self.return_train_score,
                self.error_score,
            )
            out = self._evaluate(context)
            _warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                _insert_error_scores(out, self.error_score)
            all_candidates.extend(candidates)
            all_out.extend(out)
            for key, value in (more_results or {}).items():
                all_more[key].extend(value)
            results = self._format_results(
                all_candidates, self.n_splits_, all_out, all_more
            )
            return results

        if "callback_ctx" in inspect.signature(self._run_search).parameters:
            self._run_search(evaluate_candidates, callback_ctx=callback_ctx)
        else:
            self._run_search(evaluate_candidates)
        self._store_results(base, all_out, results, scorers, refit_metric, X, y, routed)
        if callback_ctx is not None:
            callback_ctx.call_on_fit_task_end(estimator=self, X=X, y=y, metadata=None)
        return self

    # ------------------------------------------------------------ evaluate

    def _evaluate(self, context):
        """One ``_fit_and_score``-style result dict per (candidate, split).

        The batched groups are planned here; they train in this process when
        joblib has one worker (``n_jobs=None`` or 1 outside a
        ``parallel_config``), each group (or part) a task of ``_group_task``
        otherwise, dispatched with the fallback fits through joblib
        (``n_jobs``, ``pre_dispatch``): loky, threads, dask, ray, spark.
        """
        n_splits = len(context.splits)
        tasks = [
            (c, s) for c in range(len(context.candidates)) for s in range(n_splits)
        ]
        if self.verbose > 0:
            print(
                f"Fitting {n_splits} folds for each of {len(context.candidates)} "
                f"candidates, totalling {len(tasks)} fits"
            )
        jobs, reasons = [], defaultdict(list)
        for index, job in _prepare_all(context, enumerate(tasks)):
            if isinstance(job, str):
                reasons[job].append(index)
            else:
                jobs.append((index, job))
        groups = plan_groups(jobs)
        n_workers = effective_n_jobs(self.n_jobs)
        early = sorted(i for indices in reasons.values() for i in indices)
        if n_workers == 1:
            parts = groups
            scored = [_train_and_score(context, groups)]
            ordinary = self._ordinary_fits(context, tasks, early)
        else:
            parts = spread(groups, n_workers)
            scored, ordinary = self._dispatch(context, tasks, parts, early, n_workers)
        out = [None] * len(tasks)
        for index, result in zip(early, ordinary, strict=True):
            out[index] = result
        n_runs = 0
        for part in scored:
            for index, result in part.results.items():
                out[index] = result
            for reason, indices in part.ordinary.items():
                reasons[reason].extend(indices)
            for message in part.warnings:
                warn_at_caller(message, ConvergenceWarning)
            n_runs += part.n_runs
        late = sorted(
            i for indices in reasons.values() for i in indices if out[i] is None
        )
        for index, result in zip(
            late, self._ordinary_fits(context, tasks, late), strict=True
        ):
            out[index] = result
        n_fallback = len(early) + len(late)
        self.n_batched_fits_ += len(tasks) - n_fallback
        self.n_batch_groups_ += n_runs
        if self.verbose > 0:
            where = ""
            if n_workers > 1:
                where = f" as {len(parts)} task(s) over {n_workers} joblib workers"
            print(
                f"Trained {len(tasks) - n_fallback} fits in {n_runs} batched "
                f"group(s){where}; {n_fallback} ordinary fit(s)"
            )
            for reason, indices in reasons.items():
                candidates = sorted({tasks[i][0] for i in indices})
                print(
                    f"Ordinary fits ({len(indices)}) of candidates "
                    f"{', '.join(map(str, candidates))}: {reason}"
                )
        return out

    def _dispatch(self, context, tasks, parts, ordinary, n_workers):
        """Run the groups' ``parts`` (costliest first) and the ``ordinary``
        fits as joblib tasks; returns their results, in order."""
        shared = _shipped(context)
        calls = [
            delayed(_group_task)(shared, [(index, job.task) for index, job in part])
            for part in parts
        ]
        calls += [self._ordinary_fit(context, tasks, index) for index in ordinary]
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
        # Workers in this process (threads, an in-process dask cluster) share
        # its torch threads: each gets its part. Process workers are set by
        # their backend (loky: cpu_count // n_jobs; dask, ray: 1 per task).
        with torch_threads(max(1, torch.get_num_threads() // n_workers)):
            results = parallel(calls)
        return results[: len(parts)], results[len(parts) :]

    def _ordinary_fits(self, context, tasks, indices):
        """``_fit_and_score`` of the (candidate, split) ``tasks[indices]``."""
        if not indices:
            return []
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
        return parallel(self._ordinary_fit(context, tasks, i) for i in indices)

    def _ordinary_fit(self, context, tasks, index):
        c, s = tasks[index]
        return delayed(_fit_and_score)(
            clone(context.base),
            context.X,
            context.y,
            train=context.splits[s][0],
            test=context.splits[s][1],
            parameters=context.candidates[c],
            split_progress=(s, len(context.splits)),
            candidate_progress=(c, len(context.candidates)),
            scorer=context.scorers,
            fit_params=context.routed.estimator.fit,
            score_params=context.routed.scorer.score,
            return_train_score=context.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            return_parameters=False,
            error_score=context.error_score,
            verbose=self.verbose,
        )

    # ------------------------------------------------------------- results

    def _store_results(self, base, out, results, scorers, refit_metric, X, y, routed):
        """Select the best candidate and refit, as ``BaseSearchCV.fit`` does."""
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


_RAISE_DIVERGED = "the fit diverged, and error_score='raise' raises its error"


class BatchedGridSearchCV(GridSearchCV, _BatchedSearchMixin):
    """Exhaustive search over a TorchMLP grid, trained in batches.

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

    ``TorchClassifier`` and ``TorchRegressor`` (a module of your own) batch
    through ``torch.func``: candidates whose modules have the same parameter
    names and shapes train together (one group per architecture, so per
    distinct ``module__*`` values that change a shape); modules with dropout,
    batch norm's running statistics or data-dependent control flow fall
    back, with the reason under ``verbose=1``.

    A ``Pipeline`` whose last step is one of ours batches too: its other
    steps are fitted once per fold and distinct values of the grid's
    parameters for them, and the last
    step's models are batched on their output.

    Falls back to ordinary fits (run with ``n_jobs``) for the candidates the
    batched path does not cover: other estimators, ``solver="lbfgs"``,
    ``dropout > 0`` on a GPU, activations other than ``"identity"``,
    ``"logistic"``, ``"tanh"`` and ``"relu"``, sparse ``X``, fit parameters
    other than ``sample_weight``, estimators with sklearn callbacks, and fits
    that raise before training (invalid parameters or data). ``verbose=1``
    prints which candidates fell back and why. ``best_estimator_`` is always
    refit with an ordinary ``fit``.

    Parameters
    ----------
    estimator : estimator of ours, Pipeline ending in one, or other estimator
        The estimator to tune. With ``random_state=None`` (on the estimator or
        on a Pipeline's last step), one int seed is
        drawn per search and set on every candidate (and on
        ``best_estimator_``), so the refit model is reproducible; a
        ``RandomState`` instance gives each candidate the int it would draw
        first, as its clones inside ``GridSearchCV`` do.
    param_grid : dict or list of dicts
        As in ``GridSearchCV``.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in ``GridSearchCV``.
    n_jobs : int or None, default=None
        joblib workers for the batched groups (one task each, large groups
        split) and the fallback fits. ``None`` means 1, unless inside a
        ``joblib.parallel_config`` context. With 1 worker, the groups train
        in this process, side by side on torch's threads; under
        ``parallel_config(backend="dask")`` (or ray's, spark's) they train on
        the cluster's workers (see the user guide's dask page).
    refit : bool, str or callable, default=True
        As in ``GridSearchCV``.
    cv : int, cross-validation generator or iterable, default=None
        As in ``GridSearchCV`` (stratified 5-fold for classifiers by default).
    verbose : int, default=0
        When > 0, prints the number of fits, how many were batched, and which
        candidates fell back to ordinary fits and why.
    pre_dispatch : int or str, default="2*n_jobs"
        As in ``GridSearchCV``: how many tasks (groups or fallback fits) are
        dispatched ahead.
    error_score : "raise" or float, default=np.nan
        Score of a fit that fails (diverges); ``"raise"`` raises its error.
    return_train_score : bool, default=False
        As in ``GridSearchCV``.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        As in ``GridSearchCV``. ``mean_fit_time`` of a batched model is its
        group's training time divided by the group's size.
    best_estimator_ : estimator
        A plain fitted estimator (or Pipeline), refit on all of ``X`` with
        ``best_params_``.
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


class BatchedRandomizedSearchCV(RandomizedSearchCV, _BatchedSearchMixin):
    """Randomized search over TorchMLP parameters, trained in batches.

    :class:`sklearn.model_selection.RandomizedSearchCV` whose
    ``n_iter * n_splits`` fits train as :class:`BatchedGridSearchCV` trains
    a grid's: the same sampled candidates, ``cv_results_``, ``best_params_``
    and refit as ``RandomizedSearchCV``, and the same fallback to ordinary fits
    (``verbose=1`` says which and why).

    Parameters
    ----------
    estimator : estimator of ours, Pipeline ending in one, or other estimator
        As in :class:`BatchedGridSearchCV`.
    param_distributions : dict or list of dicts
        As in ``RandomizedSearchCV``.
    n_iter : int, default=10
        Number of candidates sampled.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in ``RandomizedSearchCV``.
    n_jobs : int or None, default=None
        As in :class:`BatchedGridSearchCV`.
    refit : bool, str or callable, default=True
        As in ``RandomizedSearchCV``.
    cv : int, cross-validation generator or iterable, default=None
        As in ``RandomizedSearchCV``.
    verbose : int, default=0
        As in :class:`BatchedGridSearchCV`.
    pre_dispatch : int or str, default="2*n_jobs"
        As in :class:`BatchedGridSearchCV`.
    random_state : int, RandomState instance or None, default=None
        Samples the candidates, as in ``RandomizedSearchCV``.
    error_score : "raise" or float, default=np.nan
        As in :class:`BatchedGridSearchCV`.
    return_train_score : bool, default=False
        As in ``RandomizedSearchCV``.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        As in ``RandomizedSearchCV``.
    best_estimator_ : estimator
        Refit on all of ``X`` with ``best_params_`` by an ordinary ``fit``.
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
    sklearn.model_selection.RandomizedSearchCV : The one-model-at-a-time search.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import BatchedRandomizedSearchCV, TorchMLPClassifier
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> search = BatchedRandomizedSearchCV(
    ...     TorchMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    ...     {"learning_rate_init": loguniform(1e-3, 1e-1), "alpha": [1e-4, 1e-2]},
    ...     n_iter=4, cv=3, random_state=0,
    ... ).fit(X, y)
    >>> search.n_batched_fits_
    12
    >>> sorted(search.best_params_)
    ['alpha', 'learning_rate_init']
    """


class BatchedHalvingGridSearchCV(HalvingGridSearchCV, _BatchedSearchMixin):
    """Successive halving over a TorchMLP grid, each round trained in batches.

    :class:`sklearn.model_selection.HalvingGridSearchCV` (experimental in
    scikit-learn; importing skorchlite enables it) whose rounds train as
    :class:`BatchedGridSearchCV` trains a grid: the same rounds, candidates,
    ``cv_results_``, ``best_params_`` and refit as ``HalvingGridSearchCV``.
    With ``resource="n_samples"`` each round's folds are subsamples, and its
    models batch on them; ``resource="max_iter"`` batches too.

    Parameters
    ----------
    estimator : estimator of ours, Pipeline ending in one, or other estimator
        As in :class:`BatchedGridSearchCV`.
    param_grid : dict or list of dicts
        As in ``HalvingGridSearchCV``.
    factor : int or float, default=3
        As in ``HalvingGridSearchCV``.
    resource : "n_samples" or str, default="n_samples"
        As in ``HalvingGridSearchCV``.
    max_resources : int or "auto", default="auto"
        As in ``HalvingGridSearchCV``.
    min_resources : {"exhaust", "smallest"} or int, default="exhaust"
        As in ``HalvingGridSearchCV``.
    aggressive_elimination : bool, default=False
        As in ``HalvingGridSearchCV``.
    cv : int, cross-validation generator or iterable, default=5
        As in ``HalvingGridSearchCV``.
    scoring : str, callable or None, default=None
        As in ``HalvingGridSearchCV``.
    refit : bool or callable, default=True
        As in ``HalvingGridSearchCV``.
    error_score : "raise" or float, default=np.nan
        As in :class:`BatchedGridSearchCV`.
    return_train_score : bool, default=True
        As in ``HalvingGridSearchCV``.
    random_state : int, RandomState instance or None, default=None
        Subsamples the rows of each round, as in ``HalvingGridSearchCV``.
    n_jobs : int or None, default=None
        As in :class:`BatchedGridSearchCV`.
    verbose : int, default=0
        As in :class:`BatchedGridSearchCV`.

    Attributes
    ----------
    n_resources_ : list of int
    n_candidates_ : list of int
    n_remaining_candidates_ : int
    max_resources_ : int
    min_resources_ : int
    n_iterations_ : int
    n_possible_iterations_ : int
    n_required_iterations_ : int
    cv_results_ : dict of numpy (masked) ndarrays
        As in ``HalvingGridSearchCV``.
    best_estimator_ : estimator
        Refit on all of ``X`` with ``best_params_`` by an ordinary ``fit``.
    best_score_ : float
    best_params_ : dict
    best_index_ : int
    scorer_ : function or dict
    n_splits_ : int
    refit_time_ : float
    multimetric_ : bool
    n_batched_fits_ : int
        How many (candidate, fold) models were trained in batches, all rounds.
    n_batch_groups_ : int
        How many batched training runs they took.

    See Also
    --------
    sklearn.model_selection.HalvingGridSearchCV : The one-model-at-a-time search.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import BatchedHalvingGridSearchCV, TorchMLPClassifier
    >>> X, y = make_moons(300, noise=0.1, random_state=0)
    >>> search = BatchedHalvingGridSearchCV(
    ...     TorchMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    ...     {"learning_rate_init": [0.003, 0.01, 0.03, 0.1]},
    ...     factor=2, cv=3, random_state=0,
    ... ).fit(X, y)
    >>> search.n_candidates_, search.n_batched_fits_
    ([4, 2, 1], 21)
    """


class BatchedHalvingRandomSearchCV(HalvingRandomSearchCV, _BatchedSearchMixin):
    """Successive halving over sampled TorchMLP candidates, trained in batches.

    :class:`sklearn.model_selection.HalvingRandomSearchCV` (experimental in
    scikit-learn; importing skorchlite enables it) whose rounds train as
    :class:`BatchedGridSearchCV` trains a grid: the same sampled candidates,
    rounds, ``cv_results_``, ``best_params_`` and refit as
    ``HalvingRandomSearchCV``.

    Parameters
    ----------
    estimator : estimator of ours, Pipeline ending in one, or other estimator
        As in :class:`BatchedGridSearchCV`.
    param_distributions : dict or list of dicts
        As in ``HalvingRandomSearchCV``.
    n_candidates : "exhaust" or int, default="exhaust"
        As in ``HalvingRandomSearchCV``.
    factor : int or float, default=3
        As in ``HalvingRandomSearchCV``.
    resource : "n_samples" or str, default="n_samples"
        As in ``HalvingRandomSearchCV``.
    max_resources : int or "auto", default="auto"
        As in ``HalvingRandomSearchCV``.
    min_resources : {"exhaust", "smallest"} or int, default="smallest"
        As in ``HalvingRandomSearchCV``.
    aggressive_elimination : bool, default=False
        As in ``HalvingRandomSearchCV``.
    cv : int, cross-validation generator or iterable, default=5
        As in ``HalvingRandomSearchCV``.
    scoring : str, callable or None, default=None
        As in ``HalvingRandomSearchCV``.
    refit : bool or callable, default=True
        As in ``HalvingRandomSearchCV``.
    error_score : "raise" or float, default=np.nan
        As in :class:`BatchedGridSearchCV`.
    return_train_score : bool, default=True
        As in ``HalvingRandomSearchCV``.
    random_state : int, RandomState instance or None, default=None
        Samples the candidates and subsamples the rows, as in
        ``HalvingRandomSearchCV``.
    n_jobs : int or None, default=None
        As in :class:`BatchedGridSearchCV`.
    verbose : int, default=0
        As in :class:`BatchedGridSearchCV`.

    Attributes
    ----------
    n_resources_ : list of int
    n_candidates_ : list of int
    n_remaining_candidates_ : int
    max_resources_ : int
    min_resources_ : int
    n_iterations_ : int
    n_possible_iterations_ : int
    n_required_iterations_ : int
    cv_results_ : dict of numpy (masked) ndarrays
        As in ``HalvingRandomSearchCV``.
    best_estimator_ : estimator
        Refit on all of ``X`` with ``best_params_`` by an ordinary ``fit``.
    best_score_ : float
    best_params_ : dict
    best_index_ : int
    scorer_ : function or dict
    n_splits_ : int
    refit_time_ : float
    multimetric_ : bool
    n_batched_fits_ : int
        How many (candidate, fold) models were trained in batches, all rounds.
    n_batch_groups_ : int
        How many batched training runs they took.

    See Also
    --------
    sklearn.model_selection.HalvingRandomSearchCV : The one-model-at-a-time
        search.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import BatchedHalvingRandomSearchCV, TorchMLPClassifier
    >>> X, y = make_moons(300, noise=0.1, random_state=0)
    >>> search = BatchedHalvingRandomSearchCV(
    ...     TorchMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    ...     {"learning_rate_init": loguniform(1e-3, 1e-1)},
    ...     n_candidates=4, factor=2, cv=3, random_state=0,
    ... ).fit(X, y)
    >>> search.n_candidates_
    [4, 2, 1]
    >>> search.n_batched_fits_ == 3 * sum(search.n_candidates_)
    True
    """


class _SearchContext:
    """What every (candidate, split) evaluation of one ``fit`` call shares:
    all that a task on another worker needs, shipped to each worker once."""

    def __init__(
        self, base, X, y, splits, candidates, routed, scorers, return_train, error
    ):
        self.base = base
        self.X, self.y = X, y
        self.splits = splits
        self.candidates = candidates
        self.routed = routed
        self.scorers = scorers
        self.return_train_score = return_train
        self.error_score = error


@dataclass
class _Scored:
    """What training and scoring some batched groups hands back to the search."""

    #: ``_fit_and_score``-style result dicts, by (candidate, split) index.
    results: dict
    #: The indices to fit ordinarily, by reason.
    ordinary: dict
    #: The trained models' ConvergenceWarning messages, for the search to raise.
    warnings: list
    #: How many batched runs trained them.
    n_runs: int


def _prepare_all(context, members):
    """``(index, BatchedJob or the reason to fit it ordinarily)`` for each of
    ``members``, ``(index, (candidate, split))`` pairs."""
    caches = {"data": {}, "preprocessed": defaultdict(list), "stack_error": {}}
    # Small operators (building modules, validating folds): on busy cores,
    # more threads made them 3-5x slower (0.4-0.7 s instead of 0.05-0.16 s
    # for a search of 18 fits).
    with torch_threads(1):
        return [(index, _prepare(context, c, s, caches)) for index, (c, s) in members]


def _group_task(context, members):
    """One joblib task of a search: prepare ``members``, ``(index, (candidate,
    split))`` pairs, from the shared ``context``, train them in batches and
    score them.

    The task gets the candidates and splits by number and rebuilds each
    model's data and initial weights from ``context`` (so that the data
    travels once per worker, not per task): the same job the search
    prepared to plan its groups, as preparation is deterministic.
    """
    jobs, reasons = [], defaultdict(list)
    for index, job in _prepare_all(context, members):
        if isinstance(job, str):
            reasons[job].append(index)
        else:
            jobs.append((index, job))
    scored = _train_and_score(context, plan_groups(jobs))
    for reason, indices in reasons.items():
        scored.ordinary[reason].extend(indices)
    return scored


def _train_and_score(context, groups):
    """Train ``groups`` (lists of ``(index, BatchedJob)``) and score each
    model as ``_fit_and_score`` scores its ordinary fit."""
    runs = [BatchedGroup([job for _, job in members]) for members in groups]
    train_groups(runs)
    scored = _Scored({}, defaultdict(list), [], len(runs))
    for members, run in zip(groups, runs, strict=True):
        per_model = run.seconds / len(members)
        for index, job in members:
            error = publish_fit(job.estimator, job.outcome)
            if error is not None and context.error_score == "raise":
                # The ordinary fit raises the real error.
                scored.ordinary[_RAISE_DIVERGED].append(index)
                continue
            if error is None:
                scored.warnings += job.outcome.warnings
            scored.results[index] = _score_job(job, error, context, per_model)
    return scored


def _shipped(context):
    """``context`` as the tasks get it: under joblib's dask backend, a future
    of it scattered to every worker.

    joblib's dask backend would scatter it by itself, to one worker the
    others then copy from; the copy on every worker (``broadcast``) also
    survives the loss of a worker, whose tasks dask reruns elsewhere.
    """
    backend = get_active_backend()[0]
    client = getattr(backend, "client", None)
    if type(backend).__name__ != "DaskDistributedBackend" or client is None:
        return context
    return client.scatter(context, broadcast=True, hash=False)


def _prepare(context, c, s, caches):
    """A :class:`BatchedJob` for candidate ``c`` on split ``s``, or why
    it falls back to an ordinary fit (a str)."""
    params = context.candidates[c]
    candidate = clone(context.base).set_params(**clone(params, safe=False))
    estimator, final_name = _final_step(candidate)
    reason = _fallback_reason(candidate, estimator, final_name, params, context)
    if reason is not None:
        return reason
    started = time.perf_counter()
    train = context.splits[s][0]
    X_train, y_train = _safe_split(candidate, context.X, context.y, train)
    fit_params = _check_method_params(
        context.X, params=context.routed.estimator.fit, indices=train
    )
    sample_weight = fit_params.get(_routed_name(final_name, "sample_weight"))
    data_key = (s,)
    if final_name is not None:
        found = _preprocessed(candidate, params, s, X_train, y_train, caches)
        if isinstance(found, str):
            return found
        number, steps, X_train = found
        # Scored as the pipeline its ordinary fit gives: the preprocessing
        # fitted on this fold, shared by the candidates that search the
        # same preprocessing parameters.
        candidate.steps = [*steps, candidate.steps[-1]]
        data_key += (number,)
    try:
        # The prelude of the estimator's own first fit, up to its spec.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the ordinary fit would warn
            spec = prepare_fit(estimator, X_train, y_train, sample_weight)
    except InvalidParameterError:
        return "invalid parameters (the ordinary fit reports them)"
    except (ValueError, TypeError) as exc:
        # Data the estimator's fit refuses: the ordinary fit raises (or
        # scores) the error, as sklearn's searches do.
        message = str(exc).split("\n")[0][:120]
        return f"its fit raises {type(exc).__name__}: {message}"
    # Models on the same rows share them in the stacked tensors.
    key = (*data_key, spec.data.dtype, spec.data.device)
    if spec.validation is not None:
        key += (spec.seed, estimator.validation_fraction)
    # One copy of the rows; each model keeps its own weights.
    shared = caches["data"].setdefault(key, spec.data)
    data = replace(shared, sample_weight=spec.data.sample_weight)
    job = BatchedJob(estimator.module_, replace(spec, data=data), key)
    # Checking a user's module runs it: once per module and input kind.
    module_params = split_module_params(estimator.get_params(deep=False))[0]
    module_key = (
        type(estimator.module_),
        repr(sorted(module_params.items())),
        spec.data.X.shape[1],
        spec.data.dtype,
        str(spec.data.device),
    )
    reason = stack_error(job, caches["stack_error"], module_key)
    if reason is not None:
        return reason
    job.estimator = estimator
    job.task = (c, s)
    job.scored = candidate
    job.prepare_time = time.perf_counter() - started
    return job


def _score_job(job, error, context, fit_time):
    """The ``_fit_and_score``-style result of one trained job (its fit
    ``error`` a str, or None)."""
    train, test = context.splits[job.task[1]]
    estimator = job.scored
    result = {"fit_error": error}
    if error is not None:
        if hasattr(context.scorers, "_scorers"):  # multimetric
            scores = {name: context.error_score for name in context.scorers._scorers}
        else:
            scores = context.error_score
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
                context.error_score,
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


def _final_step(candidate):
    """The estimator to batch and, for a Pipeline, its step name."""
    if isinstance(candidate, Pipeline) and candidate.steps:
        name, last = candidate.steps[-1]
        return last, name
    return candidate, None


def _routed_name(step, param):
    """A fit parameter's name for the searched estimator (``step__param`` in a
    Pipeline, without metadata routing)."""
    return param if step is None else f"{step}__{param}"


def _with_int_seed(estimator):
    """Give our estimator (or a Pipeline's final one) one int seed for the
    whole search."""
    target, _ = _final_step(estimator)
    if not isinstance(target, BaseTorchEstimator):
        return estimator
    random_state = target.random_state
    if not isinstance(random_state, Integral):
        # A RandomState is deep-copied into every clone, which then draws the
        # same first int: draw it once from a copy.
        target.set_params(random_state=_seed_from(copy.deepcopy(random_state)))
    return estimator


def _fallback_reason(candidate, estimator, final_name, params, context):
    """Why the batched loop cannot reproduce ``candidate.fit``, or None."""
    if type(estimator) not in BATCHED_CLASSES:
        return (
            f"{type(estimator).__name__} is not one of "
            f"{', '.join(c.__name__ for c in BATCHED_CLASSES)} (alone or a "
            "Pipeline's last step)"
        )
    if context.y is None:
        return "no y"
    if final_name is not None:
        if type(candidate) is not Pipeline:
            return f"{type(candidate).__name__} is a Pipeline subclass"
        if getattr(candidate, "transform_input", None) is not None:
            return "Pipeline(transform_input=...)"
        if "steps" in params:
            return "the grid replaces the Pipeline's steps"
    allowed = {_routed_name(final_name, "sample_weight")}
    extra = sorted(set(context.routed.estimator.fit) - allowed)
    if extra:
        return f"fit parameters {', '.join(extra)} (only {allowed.pop()} batches)"
    if has_callbacks(estimator):
        return "the estimator has sklearn callbacks"
    if final_name is None and sp.issparse(context.X):
        return "sparse X"
    if not isinstance(estimator.random_state, Integral):
        return "random_state is not an int"
    return None


def _same_value(a, b):
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # e.g. arrays: compared by identity only
        return False


def _preprocessed(pipeline, params, split, X_train, y_train, caches):
    """``(number, fitted steps, transformed X_train)`` of the Pipeline's steps
    before the last, fitted once per split and distinct preprocessing
    parameters of the candidates (``number`` tells them apart); or why the
    candidate falls back (a str)."""
    last = pipeline.steps[-1][0]
    own = {
        name: value
        for name, value in params.items()
        if name != last and not name.startswith(f"{last}__")
    }
    seen = caches["preprocessed"][split]
    for number, (other, found) in enumerate(seen):
        if other.keys() == own.keys() and all(
            _same_value(value, other[name]) for name, value in own.items()
        ):
            return found if isinstance(found, str) else (number, *found)
    if len(pipeline.steps) == 1:
        found = ([], X_train)
    else:
        steps = pipeline[:-1]
        try:
            Xt = steps.fit_transform(X_train, y_train)
        except Exception as exc:  # the user's transformers: their ordinary fit
            found = f"fitting the preprocessing steps raises {type(exc).__name__}"
        else:
            found = (steps.steps, Xt)
    seen.append((own, found))
    return found if isinstance(found, str) else (len(seen) - 1, *found)
