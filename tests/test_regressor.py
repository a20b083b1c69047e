"""TorchMLPRegressor: MLPRegressor's behaviour, and what skorchlite adds to it.

sklearn's own MLPRegressor tests run in tests/test_sklearn_mlp.py and its
estimator checks in tests/test_common.py; here, comparisons with MLPRegressor
itself (which starts from the same initial weights for an int random_state)
and the features the classifier has.
"""

import io
import math
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, scale

from skorchlite import (
    BatchedGridSearchCV,
    LossCurveDisplay,
    TorchMLPRegressor,
    load,
    save,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(120, n_features=5, noise=5.0, random_state=0)
    return scale(X), scale(y)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    return X, rng.poisson(np.exp(0.5 * X[:, 0] + 0.3))


def _both(**params):
    return TorchMLPRegressor(**params), MLPRegressor(**params)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_fit_follows_mlpregressor(regression, counts, loss, solver):
    # Same initial weights, no shuffling: the same epochs, step by step.
    X, y = counts if loss == "poisson" else regression
    params = dict(
        loss=loss,
        solver=solver,
        hidden_layer_sizes=(8,),
        learning_rate_init=0.01,
        batch_size=32,
        shuffle=False,
        max_iter=5,
        random_state=0,
    )
    ours, theirs = (model.fit(X, y) for model in _both(**params))
    # torch's Adam adds epsilon after the bias correction of the second
    # moment, MLPRegressor's before: their steps differ by ~1e-5.
    rtol = 1e-8 if solver == "sgd" else 1e-3
    # The reported loss adds the L2 term of the weights after each epoch's
    # steps once (cheaper than per batch); MLPRegressor's, before each step.
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=max(rtol, 1e-6))
    ours_params = ours.coefs_ + ours.intercepts_
    theirs_params = theirs.coefs_ + theirs.intercepts_
    for a, b in zip(ours_params, theirs_params, strict=True):
        assert_allclose(a, b, rtol=rtol, atol=1e-12 if solver == "sgd" else 1e-6)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol, atol=1e-6)
    assert ours.out_activation_ == theirs.out_activation_


def test_multioutput_loss_is_mlpregressors_at_the_same_weights(regression):
    X, y = regression
    Y = np.column_stack([y, 2 * y, -y])
    params = dict(
        solver="sgd", hidden_layer_sizes=(6,), max_iter=1, batch_size=120, alpha=0.1
    )
    ours, theirs = (model.set_params(random_state=0) for model in _both(**params))
    ours.fit(X, Y)
    theirs.set_params(warm_start=True, learning_rate_init=1e-300).fit(X, Y)
    # Copies: our coefs_ are views of our module.
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    # One more epoch from our weights, with a vanishing step: theirs reports
    # the loss of those weights.
    ours.set_params(warm_start=True, learning_rate_init=1e-300).fit(X, Y)
    theirs.fit(X, Y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)
    assert ours.predict(X).shape == (120, 3)


def test_poisson_rejects_negative_targets(regression):
    X, y = regression
    with pytest.raises(ValueError, match='negative which is not allowed for loss="p'):
        TorchMLPRegressor(loss="poisson").fit(X, y)


def test_poisson_predicts_positive_means(counts):
    X, y = counts
    reg = TorchMLPRegressor(loss="poisson", solver="lbfgs", random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp"
    prediction = reg.predict(X)
    assert (prediction > 0).all()
    assert prediction.mean() == pytest.approx(y.mean(), rel=0.05)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predictions_have_the_precision_of_the_network(regression, dtype):
    X, y = regression
    reg = TorchMLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(
        X.astype(dtype), y
    )
    assert reg.predict(X.astype(dtype)).dtype == dtype


def test_a_new_number_of_outputs_needs_a_new_fit(regression):
    X, y = regression
    reg = TorchMLPRegressor(
        hidden_layer_sizes=(4,), max_iter=2, warm_start=True, random_state=0
    )
    reg.fit(X, y)
    with pytest.raises(ValueError, match="y has 2 output"):
        reg.fit(X, np.column_stack([y, y]))
    assert reg.n_outputs_ == 1


def test_early_stopping_scores_r2_on_the_held_out_rows(regression):
    X, y = regression
    reg = TorchMLPRegressor(
        hidden_layer_sizes=(16,),
        early_stopping=True,
        validation_fraction=0.25,
        learning_rate_init=0.01,
        max_iter=40,
        n_iter_no_change=5,
        random_state=3,
    ).fit(X, y)
    assert reg.best_loss_ is None
    assert len(reg.validation_scores_) == len(reg.validation_loss_curve_) == reg.n_iter_
    # The split the fit held out (the documented seed policy), and the kept
    # weights: the latest best epoch's.
    n_val = math.ceil(0.25 * len(X))
    _, X_val, _, y_val = train_test_split(X, y, test_size=n_val, random_state=3)
    scores = np.array(reg.validation_scores_)
    best = np.flatnonzero(scores == scores.max())[-1]
    assert reg.best_validation_score_ == scores.max()
    assert r2_score(y_val, reg.predict(X_val)) == pytest.approx(scores[best], rel=1e-9)
    held_out_loss = 0.5 * np.mean((reg.predict(X_val) - y_val) ** 2)
    assert reg.validation_loss_curve_[best] == pytest.approx(held_out_loss, rel=1e-9)


def test_partial_fit_continues(regression):
    X, y = regression
    reg = TorchMLPRegressor(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0
    )
    for _ in range(5):
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 1
    assert len(reg.loss_curve_) == 5
    assert reg.t_ == 5 * len(X)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    with pytest.raises(ValueError, match="early_stopping=True"):
        TorchMLPRegressor(early_stopping=True).partial_fit(X, y)
    assert not hasattr(TorchMLPRegressor(solver="lbfgs"), "partial_fit")


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_save_load_and_pickle_round_trip(regression, n_outputs):
    X, y = regression
    Y = y if n_outputs == 1 else np.column_stack([y, -y])
    reg = TorchMLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(
        X, Y
    )
    buffer = io.BytesIO()
    save(reg, buffer)
    for other in (load(io.BytesIO(buffer.getvalue())), pickle.loads(pickle.dumps(reg))):
        assert type(other) is TorchMLPRegressor
        assert_array_equal(other.predict(X), reg.predict(X))
        other.partial_fit(X, Y)  # and training goes on


def test_onnx_export_predicts_as_predict(regression):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    import onnxruntime

    from skorchlite import export_onnx

    X, y = regression
    reg = TorchMLPRegressor(
        hidden_layer_sizes=(8,), solver="lbfgs", random_state=0
    ).fit(X, y)
    session = onnxruntime.InferenceSession(export_onnx(reg).SerializeToString())
    (predictions,) = session.run(None, {"X": X.astype(np.float32)})
    assert predictions.shape == (len(X),)
    assert_allclose(predictions, reg.predict(X), atol=1e-5)


def test_batched_search_equals_grid_search(regression):
    X, y = regression
    estimator = TorchMLPRegressor(max_iter=15, learning_rate_init=0.01, random_state=0)
    grid = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        batched = BatchedGridSearchCV(estimator, grid, cv=3).fit(X, y)
        ordinary = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert batched.n_batched_fits_ == 12
    assert_allclose(
        batched.cv_results_["mean_test_score"],
        ordinary.cv_results_["mean_test_score"],
        rtol=1e-10,
    )
    assert batched.best_params_ == ordinary.best_params_


def test_loss_curve_display_draws_r2(regression):
    X, y = regression
    reg = TorchMLPRegressor(
        hidden_layer_sizes=(8,), early_stopping=True, max_iter=8, random_state=0
    )
    pipeline = make_pipeline(StandardScaler(), reg).fit(X, y)
    display = LossCurveDisplay.from_estimator(pipeline[-1])
    assert display.validation_ax_.get_ylabel() == "validation R²"
    assert_allclose(display.validation_line_.get_ydata(), reg.validation_scores_)
