"""Batched searches: the same results as sklearn's searches, trained in batches."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import loguniform, uniform
from sklearn.datasets import make_moons, make_regression
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    KFold,
    RandomizedSearchCV,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skorchlite import (
    BatchedGridSearchCV,
    BatchedHalvingGridSearchCV,
    BatchedHalvingRandomSearchCV,
    BatchedRandomizedSearchCV,
    TorchMLPClassifier,
    TorchMLPRegressor,
)
from skorchlite._device import torch_threads
from skorchlite._engine.loop import StackTraining, TrainingDivergedError

BASE = {"max_iter": 15, "random_state": 0, "batch_size": 32}


def brier(estimator, X, y):
    """A callable scorer sensitive to every probability (multilabel too)."""
    proba = estimator.predict_proba(X)
    if proba.shape != np.shape(y):  # binary / multiclass: one-hot y
        y = (np.asarray(y)[:, None] == estimator.classes_).astype(float)
    return -np.mean((proba - y) ** 2)


SCORING = {"accuracy": "accuracy", "brier": brier}


def both(estimator, grid, X, y, **kwargs):
    """Fit GridSearchCV and BatchedGridSearchCV alike; return both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = GridSearchCV(estimator, grid, **kwargs).fit(X, y)
        batched = BatchedGridSearchCV(estimator, grid, **kwargs).fit(X, y)
    return plain, batched


def assert_same_results(plain, batched, *, n_batched_fits, atol=1e-10):
    """The searches agree, and the batched one batched ``n_batched_fits`` fits:
    a fit that falls back is an ordinary fit, compared with itself."""
    assert batched.n_batched_fits_ == n_batched_fits
    assert plain.cv_results_["params"] == batched.cv_results_["params"]
    for key, value in plain.cv_results_.items():
        if key.startswith(("split", "mean_t", "std_t")):
            assert_allclose(batched.cv_results_[key], value, atol=atol, err_msg=key)
        elif key.startswith("param_"):
            assert_array_equal(batched.cv_results_[key], value, err_msg=key)
        elif key.startswith("rank_"):
            # Candidates tied exactly (e.g. nesterovs_momentum with momentum=0)
            # may be ranked either way by rounding noise; the others must not.
            scores = plain.cv_results_[key.replace("rank_", "mean_")]
            untied = np.sum(np.abs(scores[:, None] - scores) <= atol, axis=1) == 1
            assert_array_equal(
                batched.cv_results_[key][untied], value[untied], err_msg=key
            )
    assert set(batched.cv_results_) == set(plain.cv_results_)
    if hasattr(plain, "best_index_"):
        assert batched.best_params_ == plain.best_params_ or np.isclose(
            batched.best_score_, plain.best_score_, rtol=0, atol=atol
        )


GRID = {
    "hidden_layer_sizes": [(4,), (8,)],
    "learning_rate_init": [0.01, 0.05],
    "alpha": [1e-4, 0.5],
}


@pytest.mark.parametrize("target", ["moons", "blobs", "multilabel"])
def test_matches_grid_search_cv(target, request):
    X, y = request.getfixturevalue(target)
    plain, batched = both(
        TorchMLPClassifier(**BASE), GRID, X, y, cv=3, scoring=SCORING, refit="brier"
    )
    # Nothing fell back, and one run trained all: the folds' training sets
    # (66 or 67 rows of moons) differ in size but give the same batches.
    assert_same_results(plain, batched, n_batched_fits=8 * 3)
    assert batched.n_batch_groups_ == 1
    assert isinstance(batched.best_estimator_, TorchMLPClassifier)
    assert_allclose(
        batched.predict_proba(X), plain.predict_proba(X), rtol=0, atol=1e-12
    )


def test_optimizer_parameters_and_class_weight_vary_in_one_batch(blobs):
    X, y = blobs
    y = np.where(y == 2, 1, y)  # imbalanced: class_weight matters
    grid = [
        {
            "solver": ["adam", "adamw"],
            "beta_1": [0.8, 0.9],
            "beta_2": [0.99, 0.999],
            "class_weight": [None, "balanced"],
            "max_grad_norm": [None, 0.5],
        },
        {
            "solver": ["sgd"],
            "momentum": [0.0, 0.9],
            "nesterovs_momentum": [True, False],
            "learning_rate": ["constant", "invscaling", "adaptive"],
            "learning_rate_init": [0.05],
            "n_iter_no_change": [2],
            "tol": [1e-2],
        },
    ]
    plain, batched = both(
        TorchMLPClassifier(hidden_layer_sizes=(6,), **BASE),
        grid,
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=brier,
        return_train_score=True,
    )
    n_candidates = 2**5 + 2 * 2 * 3
    assert_same_results(plain, batched, n_batched_fits=n_candidates * 3)
    assert batched.n_batch_groups_ == 3  # adam, adamw, sgd (equal folds)


def test_logistic_padding_and_sample_weight(moons, rng):
    X, y = moons
    sample_weight = rng.integers(0, 3, len(y)).astype(float)
    plain, batched = both(
        TorchMLPClassifier(activation="logistic", **BASE),
        {"hidden_layer_sizes": [(3,), (9,)], "learning_rate_init": [0.02, 0.1]},
        X,
        y,
        cv=4,
        scoring=brier,
    )
    assert_same_results(plain, batched, n_batched_fits=4 * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = {"hidden_layer_sizes": [(3,), (9,)]}
        est = TorchMLPClassifier(**BASE)
        plain = GridSearchCV(est, grid, cv=4, scoring=brier)
        plain.fit(X, y, sample_weight=sample_weight)
        batched = BatchedGridSearchCV(est, grid, cv=4, scoring=brier)
        batched.fit(X, y, sample_weight=sample_weight)
    assert_same_results(plain, batched, n_batched_fits=2 * 4)


@pytest.mark.parametrize("threads", [1, 2])
def test_deeper_networks_other_activations_and_fixed_order(blobs, threads):
    # Two hidden layers of padded widths, every closed-form activation, batches
    # in a fixed order and in a shuffled one, training sets of 67 or 68 rows;
    # the six groups train one after the other (1 thread) or side by side.
    X, y = blobs
    grid = {
        "hidden_layer_sizes": [(5, 3), (8, 4)],
        "activation": ["identity", "tanh", "relu"],
        "shuffle": [False, True],
    }
    with torch_threads(threads):
        plain, batched = both(
            TorchMLPClassifier(**BASE), grid, X, y, cv=4, scoring=SCORING, refit="brier"
        )
    assert_same_results(plain, batched, n_batched_fits=12 * 4)
    assert batched.n_batch_groups_ == 3 * 2


def test_dropout_varies_inside_one_batch(blobs):
    # Each model draws its own masks, in its own batch and layer shapes: the
    # widths are padded and the training sets (67 or 68 rows) too.
    X, y = blobs
    grid = {"dropout": [0.0, 0.2, 0.5], "hidden_layer_sizes": [(4, 3), (8, 5)]}
    plain, batched = both(
        TorchMLPClassifier(**BASE), grid, X, y, cv=4, scoring=SCORING, refit="brier"
    )
    assert_same_results(plain, batched, n_batched_fits=6 * 4)
    assert batched.n_batch_groups_ == 1


@pytest.mark.parametrize("target", ["moons", "blobs", "multilabel"])
def test_early_stopping_per_model(target, request, rng):
    # Each model holds out its own fit's validation rows, stops on its own
    # validation score and keeps its best weights; models without early
    # stopping share the run when their batches match.
    X, y = request.getfixturevalue(target)
    grid = {
        "early_stopping": [True],
        "learning_rate_init": [0.01, 0.1],
        "n_iter_no_change": [2, 5],
        "validation_fraction": [0.2, 0.3],
    }
    estimator = TorchMLPClassifier(hidden_layer_sizes=(6,), **BASE)
    plain, batched = both(estimator, grid, X, y, cv=3, scoring=SCORING, refit="brier")
    assert_same_results(plain, batched, n_batched_fits=8 * 3)
    sample_weight = rng.integers(0, 3, len(y)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = {"early_stopping": [True, False], "alpha": [1e-4, 0.1]}
        plain = GridSearchCV(estimator, grid, cv=3, scoring=brier)
        plain.fit(X, y, sample_weight=sample_weight)
        batched = BatchedGridSearchCV(estimator, grid, cv=3, scoring=brier)
        batched.fit(X, y, sample_weight=sample_weight)
    assert_same_results(plain, batched, n_batched_fits=4 * 3)


def test_large_groups_run_in_cache_sized_parts():
    # 7 x 5 models of width 100 on batches of 200 rows stack 700,000 hidden
    # activations per step: more than one run's worth, so they take two.
    X, y = make_moons(500, noise=0.1, random_state=0)
    grid = {"learning_rate_init": [0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03]}
    estimator = TorchMLPClassifier(
        hidden_layer_sizes=(100,), max_iter=3, random_state=0
    )
    plain, batched = both(estimator, grid, X, y, cv=5)
    assert_same_results(plain, batched, n_batched_fits=35)
    assert batched.n_batch_groups_ == 2


def test_unsupported_candidates_fall_back_to_ordinary_fits(moons):
    X, y = moons
    grid = [
        {"solver": ["lbfgs"], "max_iter": [20]},
        {"learning_rate_init": [0.01]},
    ]
    plain, batched = both(
        TorchMLPClassifier(hidden_layer_sizes=(5,), **BASE), grid, X, y, cv=2
    )
    # Only the last candidate, on 2 folds.
    assert_same_results(plain, batched, n_batched_fits=2, atol=0)


def test_diverged_fits_get_error_score(moons):
    X, y = moons
    estimator = TorchMLPClassifier(solver="sgd", hidden_layer_sizes=(4,), **BASE)
    grid = {"learning_rate_init": [0.01, 1e12]}
    with pytest.warns(FitFailedWarning, match="TrainingDivergedError"):
        search = BatchedGridSearchCV(estimator, grid, cv=2).fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"][1])
    assert search.best_params_ == {"learning_rate_init": 0.01}
    with pytest.raises(TrainingDivergedError, match="diverged"):
        BatchedGridSearchCV(estimator, grid, cv=2, error_score="raise").fit(X, y)


def test_interface_and_refit(moons):
    X, y = moons
    grid = {"learning_rate_init": [0.01, 0.05]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = BatchedGridSearchCV(
            TorchMLPClassifier(hidden_layer_sizes=(4,), max_iter=10), grid, cv=2
        ).fit(X, y)
        # random_state=None: one int seed for the whole search, kept on the
        # refit model, which a plain fit with that seed reproduces.
        seed = search.best_estimator_.random_state
        assert isinstance(seed, int)
        alone = TorchMLPClassifier(
            hidden_layer_sizes=(4,), max_iter=10, random_state=seed
        ).set_params(**search.best_params_)
        alone.fit(X, y)
    assert_array_equal(search.predict_proba(X), alone.predict_proba(X))
    assert_array_equal(search.predict(X), alone.predict(X))
    assert search.score(X, y) == alone.score(X, y)
    assert_array_equal(search.classes_, [0, 1])
    assert search.n_features_in_ == 2
    for k in range(2):
        assert f"split{k}_test_score" in search.cv_results_
    assert {"mean_fit_time", "std_score_time", "rank_test_score"} <= set(
        search.cv_results_
    )

    no_refit = BatchedGridSearchCV(
        TorchMLPClassifier(**BASE), grid, cv=2, refit=False
    ).fit(X, y)
    assert not hasattr(no_refit, "best_estimator_")
    with pytest.raises(AttributeError):
        no_refit.predict(X)


def test_bad_grid_gets_sklearn_errors(moons):
    X, y = moons
    with pytest.raises(TypeError, match="Parameter grid"):
        BatchedGridSearchCV(TorchMLPClassifier(), {"alpha": 1.0}).fit(X, y)
    # An invalid value fails its fits (like GridSearchCV): error_score.
    search = BatchedGridSearchCV(
        TorchMLPClassifier(**BASE), {"alpha": [-1.0, 1e-4]}, cv=2
    )
    with pytest.warns(FitFailedWarning, match="alpha"):
        search.fit(X, y)
    assert search.best_params_ == {"alpha": 1e-4}


def test_warns_like_grid_search_cv_when_max_iter_is_reached(moons):
    X, y = moons
    # tol=0.5 stops on the plateau rule after 11 epochs; tol=0 runs all 40.
    grid = {"tol": [0.0, 0.5]}
    estimator = TorchMLPClassifier(max_iter=40, random_state=0)
    counts = []
    for search in (GridSearchCV, BatchedGridSearchCV, BatchedRandomizedSearchCV):
        kwargs = {"n_iter": 2} if search is BatchedRandomizedSearchCV else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            search(estimator, grid, cv=3, refit=False, **kwargs).fit(X, y)
        caught = [w for w in caught if w.category is ConvergenceWarning]
        counts.append(len(caught))
        if search is not GridSearchCV:
            # Attributed to the line that called fit.
            assert {w.filename for w in caught} == {__file__}
    assert counts == [3, 3, 3]


def test_an_interrupted_search_stops_every_group(moons, monkeypatch):
    # Ctrl-C (here raised by the tanh group) stops the groups training beside
    # it at their next epoch, instead of letting them run to max_iter.
    X, y = moons
    relu_epochs = []
    epoch = StackTraining._epoch

    def interrupted_epoch(self):
        if self.stack.activation.name == "tanh":
            raise KeyboardInterrupt
        relu_epochs.append(1)
        return epoch(self)

    monkeypatch.setattr(StackTraining, "_epoch", interrupted_epoch)
    estimator = TorchMLPClassifier(
        max_iter=100_000, n_iter_no_change=100_000, tol=0.0, random_state=0
    )
    grid = {"activation": ["tanh", "relu"]}
    with torch_threads(2), pytest.raises(KeyboardInterrupt):
        BatchedGridSearchCV(estimator, grid, cv=2).fit(X, y)
    assert len(relu_epochs) < 100_000


class CountingScaler(StandardScaler):
    """A StandardScaler that records each fit (on how many rows)."""

    fits = []

    def fit(self, X, y=None, sample_weight=None):
        CountingScaler.fits.append(len(X))
        return super().fit(X, y, sample_weight)


def test_pipelines_batch_the_last_step_per_preprocessing(blobs, monkeypatch):
    # Two distinct preprocessings (with_mean) x three folds: the scaler is
    # fitted 6 times, plus once for the refit; the 8 MLPs of each
    # preprocessing batch on its output (the folds' rows stay apart).
    X, y = blobs
    monkeypatch.setattr(CountingScaler, "fits", [])
    pipeline = make_pipeline(CountingScaler(), TorchMLPClassifier(**BASE))
    grid = {
        "countingscaler__with_mean": [True, False],
        "torchmlpclassifier__hidden_layer_sizes": [(4,), (8,)],
        "torchmlpclassifier__learning_rate_init": [0.01, 0.05],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        batched = BatchedGridSearchCV(
            pipeline, grid, cv=3, scoring=SCORING, refit="brier"
        ).fit(X, y)
    assert CountingScaler.fits == [60] * 6 + [90]
    plain = GridSearchCV(pipeline, grid, cv=3, scoring=SCORING, refit="brier")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain.fit(X, y)
    assert_same_results(plain, batched, n_batched_fits=8 * 3)
    assert batched.n_batch_groups_ == 1
    # The refit is an ordinary Pipeline fit.
    assert isinstance(batched.best_estimator_, Pipeline)
    assert_allclose(
        batched.predict_proba(X), plain.predict_proba(X), rtol=0, atol=1e-12
    )


def test_pipelines_with_replaced_steps_and_sample_weight(moons, rng):
    X, y = moons
    sample_weight = rng.integers(0, 3, len(y)).astype(float)
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("mlp", TorchMLPClassifier(**BASE))]
    )
    grid = {
        "scale": [StandardScaler(), MinMaxScaler(), "passthrough"],
        "mlp__alpha": [1e-4, 0.5],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = GridSearchCV(pipeline, grid, cv=3, scoring=brier)
        plain.fit(X, y, mlp__sample_weight=sample_weight)
        batched = BatchedGridSearchCV(pipeline, grid, cv=3, scoring=brier)
        batched.fit(X, y, mlp__sample_weight=sample_weight)
    assert_same_results(plain, batched, n_batched_fits=6 * 3)


def test_regressor_pipeline_batches(regression_data):
    X, y = regression_data
    pipeline = make_pipeline(
        StandardScaler(), TorchMLPRegressor(max_iter=15, random_state=0)
    )
    grid = {
        "torchmlpregressor__hidden_layer_sizes": [(4,), (8, 3)],
        "torchmlpregressor__learning_rate_init": [0.01, 0.05],
    }
    plain, batched = both(pipeline, grid, X, y, cv=3)
    assert_same_results(plain, batched, n_batched_fits=4 * 3)


@pytest.fixture(scope="module")
def regression_data():
    X, y = make_regression(80, n_features=5, n_targets=2, noise=1.0, random_state=0)
    return X, y / 50


def test_verbose_says_which_candidates_fell_back_and_why(moons, capsys):
    X, y = moons
    grid = [
        {"solver": ["lbfgs"], "max_iter": [5, 10]},
        {"random_state": [None]},
        {"learning_rate_init": [0.01, 0.05]},
    ]
    estimator = TorchMLPClassifier(hidden_layer_sizes=(5,), **BASE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = BatchedGridSearchCV(estimator, grid, cv=2, verbose=1).fit(X, y)
    assert search.n_batched_fits_ == 4
    lines = capsys.readouterr().out.splitlines()
    assert "Trained 4 fits in 1 batched group(s); 6 ordinary fit(s)" in lines
    assert (
        "Ordinary fits (4) of candidates 0, 1: solver='lbfgs' has no stacked update"
        in lines
    )
    assert "Ordinary fits (2) of candidates 2: random_state is not an int" in lines


def test_a_bug_in_the_batched_path_raises(moons, monkeypatch):
    # Not swallowed into ordinary fits.
    def broken_epoch(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(StackTraining, "_epoch", broken_epoch)
    search = BatchedGridSearchCV(
        TorchMLPClassifier(**BASE), {"alpha": [1e-4, 1e-2]}, cv=2
    )
    with pytest.raises(RuntimeError, match="a bug"):
        search.fit(*moons)


def test_randomized_search_matches_sklearn(blobs):
    X, y = blobs
    distributions = {
        "learning_rate_init": loguniform(1e-3, 1e-1),
        "hidden_layer_sizes": [(4,), (8,)],
        "alpha": uniform(0, 0.5),
    }
    kwargs = dict(n_iter=5, cv=3, scoring=SCORING, refit="brier", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = TorchMLPClassifier(**BASE)
        plain = RandomizedSearchCV(estimator, distributions, **kwargs).fit(X, y)
        batched = BatchedRandomizedSearchCV(estimator, distributions, **kwargs)
        batched.fit(X, y)
    assert_same_results(plain, batched, n_batched_fits=5 * 3)
    assert batched.best_params_ == plain.best_params_


def test_halving_grid_search_matches_sklearn(moons):
    # Rounds on growing subsamples of the folds: 6, 3 then 2 candidates.
    X, y = moons
    grid = {"learning_rate_init": [0.003, 0.01, 0.03], "alpha": [1e-4, 0.5]}
    kwargs = dict(factor=2, cv=3, random_state=0, min_resources=24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = TorchMLPClassifier(
            hidden_layer_sizes=(6,), **{**BASE, "batch_size": 8}
        )
        plain = HalvingGridSearchCV(estimator, grid, **kwargs).fit(X, y)
        batched = BatchedHalvingGridSearchCV(estimator, grid, **kwargs).fit(X, y)
    assert plain.n_candidates_ == batched.n_candidates_ == [6, 3, 2]
    assert batched.n_resources_ == plain.n_resources_
    assert_same_results(plain, batched, n_batched_fits=(6 + 3 + 2) * 3)
    assert_array_equal(batched.cv_results_["iter"], plain.cv_results_["iter"])
    assert batched.best_params_ == plain.best_params_
    assert batched.best_score_ == pytest.approx(plain.best_score_, abs=1e-10)


def test_halving_random_search_on_max_iter_matches_sklearn(regression_data):
    # The resource is the last step's max_iter, in a Pipeline of a regressor.
    X, y = regression_data
    pipeline = make_pipeline(
        StandardScaler(), TorchMLPRegressor(random_state=0, tol=0.0)
    )
    distributions = {"torchmlpregressor__learning_rate_init": loguniform(1e-3, 1e-1)}
    kwargs = dict(
        n_candidates=4,
        factor=2,
        resource="torchmlpregressor__max_iter",
        min_resources=4,
        max_resources=16,
        cv=3,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = HalvingRandomSearchCV(pipeline, distributions, **kwargs).fit(X, y)
        batched = BatchedHalvingRandomSearchCV(pipeline, distributions, **kwargs)
        batched.fit(X, y)
    assert plain.n_candidates_ == batched.n_candidates_ == [4, 2, 1]
    assert_same_results(plain, batched, n_batched_fits=(4 + 2 + 1) * 3)
    assert batched.best_params_ == plain.best_params_


SEARCHES = {
    "randomized": (
        RandomizedSearchCV,
        BatchedRandomizedSearchCV,
        dict(n_iter=4, random_state=0),
    ),
    "halving-grid": (
        HalvingGridSearchCV,
        BatchedHalvingGridSearchCV,
        dict(factor=2, random_state=0, min_resources=40),
    ),
    "halving-random": (
        HalvingRandomSearchCV,
        BatchedHalvingRandomSearchCV,
        dict(n_candidates=4, factor=2, random_state=0, min_resources=40),
    ),
}


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize(
    "case", ["moons", "blobs", "multilabel", "regression", "weighted-pipeline"]
)
def test_every_search_matches_sklearn_on_every_target(search, case, request, rng):
    plain_class, batched_class, options = SEARCHES[search]
    step, base = "torchmlpclassifier__", {**BASE, "batch_size": 16}
    fit_params, estimator = {}, TorchMLPClassifier(**base)
    if case == "regression":
        X, y = request.getfixturevalue("regression_data")
        estimator, step = TorchMLPRegressor(**base), "torchmlpregressor__"
    elif case == "weighted-pipeline":
        X, y = request.getfixturevalue("blobs")
        fit_params = {f"{step}sample_weight": rng.integers(0, 3, len(y)) * 1.0}
    else:
        X, y = request.getfixturevalue(case)
    candidates = {
        f"{step}learning_rate_init": [0.003, 0.01, 0.03, 0.1],
        f"{step}hidden_layer_sizes": [(4,), (8,)],
    }
    estimator = make_pipeline(StandardScaler(), estimator)
    options = dict(options, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = plain_class(estimator, candidates, **options).fit(X, y, **fit_params)
        batched = batched_class(estimator, candidates, **options)
        batched.fit(X, y, **fit_params)
    n_fits = len(batched.cv_results_["params"]) * 3
    assert_same_results(plain, batched, n_batched_fits=n_fits)
    assert batched.best_params_ == plain.best_params_


class FailingScaler(StandardScaler):
    def fit(self, X, y=None, sample_weight=None):
        raise ValueError("cannot scale")


def test_failing_preprocessing_falls_back_and_is_reported(moons, capsys):
    X, y = moons
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("mlp", TorchMLPClassifier(**BASE))]
    )
    grid = {"scale": [StandardScaler(), FailingScaler()], "mlp__alpha": [1e-4, 0.5]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "One or more of the test scores")
        with pytest.warns(FitFailedWarning, match="cannot scale"):
            plain = GridSearchCV(pipeline, grid, cv=2).fit(X, y)
        capsys.readouterr()
        with pytest.warns(FitFailedWarning, match="cannot scale"):
            batched = BatchedGridSearchCV(pipeline, grid, cv=2, verbose=1).fit(X, y)
    assert_same_results(plain, batched, n_batched_fits=2 * 2)
    assert np.isnan(batched.cv_results_["mean_test_score"][[1, 3]]).all()
    assert (
        "Ordinary fits (4) of candidates 1, 3: fitting the preprocessing steps "
        "raises ValueError" in capsys.readouterr().out.splitlines()
    )
