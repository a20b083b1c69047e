"""Run every example at full length and check its figures and accuracy goals.

The examples run in this process (``runpy``) rather than in subprocesses:
importing torch, scikit-learn and matplotlib again for each one would cost
more than the examples themselves.
"""

import re
import runpy
import warnings
from pathlib import Path

import matplotlib
import pytest
from sklearn.exceptions import ConvergenceWarning

matplotlib.use("Agg")
import matplotlib.pyplot as plt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _check_moons(namespace):
    assert namespace["test_accuracy"] > 0.96
    assert len(namespace["clf"].loss_curve_) == 100  # one epoch per partial_fit


def _check_circles(namespace):
    accuracies = namespace["test_accuracies"]
    assert 0.35 < accuracies["identity"] < 0.65  # a linear model: chance level
    assert accuracies["relu"] > 0.97


def _check_blobs(namespace):
    assert namespace["test_accuracy"] > 0.99
    assert namespace["clf"].n_outputs_ == 4


def _check_spirals(namespace):
    assert namespace["X"].shape == (300, 2)
    assert namespace["test_accuracy"] > 0.95


def _check_model_selection(namespace):
    search = namespace["search"]
    assert len(search.cv_results_["params"]) == 6
    assert search.n_splits_ == 5
    assert search.best_score_ == namespace["mean_scores"].max()
    assert namespace["test_accuracy"] > 0.9


def _check_breast_cancer(namespace):
    assert namespace["test_accuracy"] > 0.94
    for model in namespace["models"].values():
        clf = model[-1]
        assert clf.n_iter_ < clf.max_iter  # early stopping ended training
        assert len(clf.validation_scores_) == clf.n_iter_


def _check_gpu(namespace):
    assert namespace["test_accuracy"] > 0.96
    assert namespace["weights"].device.type == namespace["device"]
    assert namespace["same"]


def _check_diabetes(namespace):
    reg = namespace["reg"]
    assert reg.n_iter_ < reg.max_iter  # early stopping ended training
    assert len(reg.validation_scores_) == reg.n_iter_
    # As good as scikit-learn's own network with the same parameters.
    assert namespace["test_r2"] > namespace["baseline_r2"]["MLPRegressor"] - 0.03
    assert namespace["test_r2"] > 0.25


def _check_own_module_cnn(namespace):
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    from skorchlite import TorchClassifier

    cnn, mlp = namespace["cnn"], namespace["mlp"]
    assert isinstance(cnn.module_, namespace["SmallCNN"])
    assert cnn.n_outputs_ == 10 and not cnn.module_.training
    # What the example says: the CNN, with fewer weights, beats the MLP.
    assert namespace["cnn_accuracy"] > max(0.97, namespace["mlp_accuracy"])
    assert namespace["n_weights"](cnn.module_) < namespace["n_weights"](mlp.module_)
    assert namespace["same"]

    search = namespace["search"]
    assert len(search.cv_results_["params"]) == 6
    assert search.n_splits_ == 3
    assert search.best_score_ == namespace["mean_scores"].max()
    assert isinstance(search.best_estimator_, TorchClassifier)
    assert namespace["test_accuracy"] > 0.97
    # The search's score of its best candidate on the first fold is an
    # ordinary fit's (batched or not; float32 rounding may flip a prediction).
    X_train, y_train = namespace["X_train"], namespace["y_train"]
    train, test = next(StratifiedKFold(3).split(X_train, y_train))
    alone = clone(search.estimator).set_params(**search.best_params_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs, as there
        alone.fit(X_train[train], y_train[train])
    score = alone.score(X_train[test], y_train[test])
    best = search.best_index_
    assert abs(search.cv_results_["split0_test_score"][best] - score) <= 1 / len(test)


def _check_quickstart(namespace):
    assert namespace["test_accuracy"] > 0.96


# script -> (figures it saves, check of its module namespace)
CASES = {
    "plot_1_binary_moons.py": (
        ["moons_decision_boundaries.png", "moons_loss_curve.png"],
        _check_moons,
    ),
    "plot_2_nonlinearity_circles.py": (
        ["circles_decision_boundaries.png"],
        _check_circles,
    ),
    "plot_3_multiclass_blobs.py": (
        ["blobs_confusion_matrix.png", "blobs_decision_boundaries.png"],
        _check_blobs,
    ),
    "plot_4_spirals.py": (["spirals_decision_boundaries.png"], _check_spirals),
    "plot_5_model_selection.py": (
        ["model_selection_grid.png"],
        _check_model_selection,
    ),
    "plot_6_breast_cancer.py": (
        ["breast_cancer_curves.png"],
        _check_breast_cancer,
    ),
    "plot_7_gpu.py": (["gpu_moons.png"], _check_gpu),
    "plot_8_diabetes_regression.py": (
        ["diabetes_loss_curve.png", "diabetes_prediction_error.png"],
        _check_diabetes,
    ),
    "plot_9_own_module_cnn.py": (["own_module_cnn.png"], _check_own_module_cnn),
    "quickstart.py": (["quickstart_decision_boundary.png"], _check_quickstart),
}


def test_every_example_is_tested():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example(script, tmp_path, monkeypatch, capsys):
    figures, check = CASES[script]
    monkeypatch.setenv("SKORCHLITE_EXAMPLE_OUTPUT", str(tmp_path))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            namespace = runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    finally:
        plt.close("all")

    # A tutorial prints no warnings: no unconverged fits, no feature-name or
    # layout complaints.
    noisy = [
        w for w in caught if issubclass(w.category, ConvergenceWarning | UserWarning)
    ]
    assert not noisy, [str(w.message) for w in noisy]

    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(figures)
    for name in figures:
        with open(tmp_path / name, "rb") as figure:
            assert figure.read(8) == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / name).stat().st_size > 10_000  # more than a blank canvas

    # The printed accuracy (or R²) is the one the example computed.
    out = capsys.readouterr().out
    printed = re.findall(r"test (accuracy|R²)(?: \((\w+)\))?: ([01]\.\d{3})", out)
    assert printed
    for name, value in (("accuracy", "test_accuracy"), ("R²", "test_r2")):
        if value in namespace:
            ours = [number for kind, by, number in printed if kind == name and not by]
            assert float(ours[-1]) == round(namespace[value], 3)
    check(namespace)
