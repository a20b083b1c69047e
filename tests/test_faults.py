"""Faults during training and prediction: interrupts, divergence, memory."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skorchlite import TorchMLPClassifier
from skorchlite._engine import solvers
from skorchlite._engine.loop import StackTraining, TrainingDivergedError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=40, n_features=4, n_informative=3, n_redundant=0, random_state=0
    )


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_state_equal(module, state):
    current = module.state_dict()
    assert current.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(current[key], value), key


def _assert_usable(clf, X):
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(clf.classes_)


def _interrupt_at_step(monkeypatch, step, module_holder):
    """Raise KeyboardInterrupt inside the ``step``-th Adam update.

    The default path stays as it is: every step of the (fused) Adam, whether
    ``optimizer.step`` or the functional shortcut takes it, runs torch's fused
    Adam kernel, and the interrupt comes from there, where a Ctrl-C most
    likely lands. Records the module's weights after each completed step in
    the returned ``states``.
    """
    real_kernel = torch._fused_adam_
    states = []

    def interrupted_kernel(*args, **kwargs):
        if len(states) + 1 == step:
            raise KeyboardInterrupt
        result = real_kernel(*args, **kwargs)
        states.append(_state(module_holder[0].module_))
        return result

    monkeypatch.setattr(torch, "_fused_adam_", interrupted_kernel)
    return states


# ------------------------------------------------------- KeyboardInterrupt


def test_interrupt_mid_epoch_keeps_the_weights_reached(data, monkeypatch):
    X, y = data
    clf = TorchMLPClassifier((5,), batch_size=10, max_iter=50, random_state=0)
    # 4 steps per epoch: step 11 is the third step of epoch 3.
    states = _interrupt_at_step(monkeypatch, 11, [clf])
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(X, y)
    assert len(states) == 10
    _assert_state_equal(clf.module_, states[-1])
    assert not clf.module_.training
    # Only complete epochs count.
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 80
    _assert_usable(clf, X)
    monkeypatch.undo()
    clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 3 and clf.t_ == 120
    clf.fit(X, y)
    assert clf.n_iter_ > 3


def test_interrupt_inside_a_step_leaves_the_optimizer_at_the_weights_reached(
    data, monkeypatch
):
    X, y = data
    clf = TorchMLPClassifier((5,), batch_size=10, max_iter=50, random_state=0)
    states = _interrupt_at_step(monkeypatch, 11, [clf])
    with pytest.warns(UserWarning, match="Training interrupted"):
        clf.fit(X, y)
    assert len(states) == 10
    # Adam's bias correction reads the step count: it must count the 10 steps
    # whose update the weights hold, not the interrupted one (torch's
    # functional adam counts before its kernel runs; our state counts after).
    entries = pickle.loads(pickle.dumps(clf)).__getstate__()["_optimizer_state"]
    assert [entry["step"] for entry in entries["parameters"]] == [10] * 4


def test_interrupt_with_early_stopping_restores_the_best_weights(data, monkeypatch):
    X, y = data
    clf = TorchMLPClassifier(
        (5,),
        batch_size=12,
        learning_rate_init=0.05,
        early_stopping=True,
        validation_fraction=0.3,
        n_iter_no_change=1000,
        max_iter=100,
        random_state=0,
    )
    records = []
    real_scores = StackTraining._scores

    def recording_scores(self):
        scores = real_scores(self)
        records.append((scores[0][1], _state(clf.module_)))
        return scores

    monkeypatch.setattr(StackTraining, "_scores", recording_scores)
    # 28 training rows in batches of 12: 3 steps per epoch; stop in epoch 9.
    _interrupt_at_step(monkeypatch, 26, [clf])
    with pytest.warns(UserWarning, match="Training interrupted"):
        clf.fit(X, y)
    assert clf.n_iter_ == len(records) == 8
    scores = [score for score, _ in records]
    assert clf.validation_scores_ == scores
    assert clf.best_validation_score_ == max(scores)
    assert len(set(scores)) > 1  # the best epoch is not simply the last one
    best_epoch = max(i for i, score in enumerate(scores) if score == max(scores))
    _assert_state_equal(clf.module_, records[best_epoch][1])
    _assert_usable(clf, X)


def test_interrupt_of_lbfgs_keeps_the_best_weights_evaluated(data, monkeypatch):
    X, y = data
    real_objective = solvers.full_batch_objective
    losses = []

    def interrupted_objective(*args):
        if len(losses) == 12:
            losses.append(None)
            raise KeyboardInterrupt
        loss, grads = real_objective(*args)
        losses.append(loss.item())
        return loss, grads

    monkeypatch.setattr(solvers, "full_batch_objective", interrupted_objective)
    clf = TorchMLPClassifier((5,), solver="lbfgs", max_iter=500, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted"):
        clf.fit(X, y)
    evaluated = [loss for loss in losses[:12]]
    # loss_ is recomputed on the kept weights: the best evaluated ones.
    assert clf.loss_ == min(evaluated)
    assert clf.n_iter_ < 500
    _assert_usable(clf, X)


def test_interrupt_during_partial_fit_keeps_the_model_usable(data, monkeypatch):
    X, y = data
    clf = TorchMLPClassifier((5,), batch_size=10, max_iter=3, random_state=0)
    clf.fit(X, y)
    curve, seen = list(clf.loss_curve_), clf.t_
    states = _interrupt_at_step(monkeypatch, 2, [clf])
    with pytest.warns(UserWarning, match="Training interrupted"):
        clf.partial_fit(X, y)
    _assert_state_equal(clf.module_, states[-1])
    # The interrupted epoch does not count.
    assert clf.loss_curve_ == curve and clf.t_ == seen
    _assert_usable(clf, X)


def test_interrupt_outside_the_training_loop_keeps_the_previous_model(
    data, monkeypatch
):
    # Before training starts there is nothing to keep: the interrupt propagates
    # and the previous model is left as it was.
    X, y = data
    clf = TorchMLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    expected, attributes = clf.predict_proba(X), dict(vars(clf))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchMLPClassifier, "_to_training_data", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert vars(clf) == attributes
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


# --------------------------------------------------------------- divergence


def _diverging(**params):
    return {"solver": "sgd", "learning_rate_init": 1e20, "max_iter": 30, **params}


def test_divergence_names_the_epoch_and_the_remedies(data):
    X, y = data
    clf = TorchMLPClassifier((4,), random_state=0, **_diverging())
    with pytest.raises(TrainingDivergedError) as info:
        clf.fit(X * 1e9, y)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "diverged at epoch" in message
    assert "learning_rate_init" in message and "max_grad_norm" in message
    # A first fit that diverges leaves the estimator unfitted.
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "refit"])
def test_divergence_keeps_the_previous_good_model(data, how):
    X, y = data
    clf = TorchMLPClassifier((4,), solver="sgd", max_iter=5, random_state=0)
    clf.fit(X, y)
    clf.set_params(**_diverging(warm_start=how == "warm_start"))
    # partial_fit runs one epoch per call: call until one diverges, and check
    # that the failing call leaves the model of the call before it.
    for _ in range(30):
        expected = clf.predict_proba(X)
        module_state = _state(clf.module_)
        solver_state = clf._solver_state.copy()
        attributes = copy.deepcopy(
            {k: v for k, v in vars(clf).items() if k.endswith("_") and k != "module_"}
        )
        try:
            if how == "partial_fit":
                clf.partial_fit(X * 1e9, y)
            else:
                clf.fit(X * 1e9, y)
        except TrainingDivergedError as exc:
            assert "epoch" in str(exc)
            break
    else:
        pytest.fail("training did not diverge")
    _assert_state_equal(clf.module_, module_state)
    restored = clf._solver_state
    assert restored.step == solver_state.step
    for name, tensors in solver_state.tensors.items():
        for before, after in zip(tensors, restored.tensors[name], strict=True):
            assert torch.equal(before, after)
    for name, value in attributes.items():
        np.testing.assert_equal(getattr(clf, name), value)
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


def test_gradient_clipping_prevents_the_divergence(data):
    # Badly scaled X and a large learning rate: without clipping the loss
    # explodes within a few epochs; clipping each step's gradient norm to 1
    # bounds every update, and training goes on to a finite model.
    X, y = data
    X = X * 100
    params = dict(solver="sgd", learning_rate_init=0.1, max_iter=30, random_state=0)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch"):
        TorchMLPClassifier((4,), **params).fit(X, y)
    clf = TorchMLPClassifier((4,), max_grad_norm=1.0, **params).fit(X, y)
    assert np.isfinite(clf.loss_curve_).all()
    assert max(clf.loss_curve_) < 10 * clf.loss_curve_[0]
    assert clf.loss_ < clf.loss_curve_[0]
    _assert_usable(clf, X)


# --------------------------------------------------------------- prediction


def test_predict_runs_in_batches_of_predict_batch_size(data):
    X, y = data
    clf = TorchMLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    sizes = []
    hook = clf.module_.register_forward_pre_hook(
        lambda module, inputs: sizes.append(len(inputs[0]))
    )
    try:
        clf.set_params(predict_batch_size=7)
        proba = clf.predict_proba(X)
    finally:
        hook.remove()
    assert sizes == [7, 7, 7, 7, 7, 5]
    np.testing.assert_allclose(proba, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="predict_batch_size"):
        clf.set_params(predict_batch_size=0).fit(X, y)


@pytest.mark.parametrize("row", range(12))
def test_a_fit_whose_validation_rows_overflow_is_refused(row):
    # A row far beyond the others' scale: in the training rows it makes the
    # loss diverge; held out for early stopping, its outputs overflow and its
    # score would be meaningless. Either way the fit says so, or it predicts
    # finite probabilities for every row it was given.
    X = np.zeros((12, 6))
    X[row] = np.finfo(np.float64).max
    y = np.array([0, 1] * 6)
    clf = TorchMLPClassifier((4,), max_iter=3, early_stopping=True, random_state=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    except ValueError as exc:
        message = str(exc)
        assert "diverged" in message or "rows early_stopping holds out" in message
        return
    assert np.isfinite(clf.predict_proba(X)).all()
