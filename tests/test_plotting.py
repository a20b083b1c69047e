"""LossCurveDisplay, plot_decision_boundaries, and sklearn's
DecisionBoundaryDisplay with TorchMLPClassifier."""

import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_moons
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import LossCurveDisplay, TorchMLPClassifier, plot_decision_boundaries
from skorchlite.plotting import BINARY_COLORS

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@pytest.fixture(scope="module")
def moons2d():
    return make_moons(120, noise=0.1, random_state=0)


@pytest.fixture(scope="module")
def blobs2d():
    return make_blobs(120, n_features=2, centers=3, random_state=0)


@pytest.fixture(scope="module")
def binary_clf(moons2d):
    clf = TorchMLPClassifier((8,), learning_rate_init=0.05, max_iter=30, random_state=0)
    return _fit(clf, *moons2d)


@pytest.fixture(scope="module")
def multiclass_clf(blobs2d):
    clf = TorchMLPClassifier((8,), learning_rate_init=0.05, max_iter=30, random_state=0)
    return _fit(clf, *blobs2d)


@pytest.fixture(scope="module")
def early_stopped(moons2d):
    clf = TorchMLPClassifier(
        (8,),
        learning_rate_init=0.05,
        max_iter=60,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=0,
    )
    return _fit(clf, *moons2d)


# ------------------------------------------------------------ LossCurveDisplay


def test_loss_curve_display_plots_loss_curve(binary_clf):
    display = LossCurveDisplay.from_estimator(binary_clf)
    assert_array_equal(display.line_.get_xdata(), np.arange(1, binary_clf.n_iter_ + 1))
    assert_allclose(display.line_.get_ydata(), binary_clf.loss_curve_)
    assert display.ax_.get_xlabel() == "epoch"
    assert display.ax_.get_ylabel() == "training loss"
    assert display.ax_.get_title() == "Loss curve: TorchMLPClassifier"
    assert display.figure_ is display.ax_.figure
    assert display.validation_ax_ is None
    assert display.validation_line_ is None
    assert display.best_score_line_ is None
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend == ["training loss"]


def test_loss_curve_display_with_early_stopping(early_stopped):
    display = LossCurveDisplay.from_estimator(early_stopped, name="my model")
    assert display.ax_.get_title() == "Loss curve: my model"
    assert display.validation_ax_ is not display.ax_
    assert display.validation_ax_.get_ylabel() == "validation accuracy"
    assert_allclose(
        display.validation_line_.get_ydata(), early_stopped.validation_scores_
    )
    assert display.best_score_line_.get_ydata()[0] == pytest.approx(
        early_stopped.best_validation_score_
    )
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend[:2] == ["training loss", "validation accuracy"]
    assert legend[2].startswith("best validation accuracy")


def test_loss_curve_display_draws_on_given_axes_with_kwargs(early_stopped):
    fig, ax = plt.subplots()
    display = LossCurveDisplay.from_estimator(
        early_stopped,
        ax=ax,
        color="black",
        label="loss",
        validation_kwargs={"color": "red"},
    )
    assert display.ax_ is ax
    assert display.figure_ is fig
    assert display.line_.get_color() == "black"
    assert display.line_.get_label() == "loss"
    assert display.validation_line_.get_color() == "red"


def test_loss_curve_display_plot_returns_self_and_replots():
    display = LossCurveDisplay(loss_curve=[3.0, 2.0, 1.5], estimator_name="x")
    _, (left, right) = plt.subplots(1, 2)
    assert display.plot(ax=left) is display
    assert display.ax_ is left
    display.plot(ax=right)
    assert display.ax_ is right
    assert_allclose(display.line_.get_ydata(), [3.0, 2.0, 1.5])


def test_loss_curve_display_reads_sklearn_mlp(moons2d):
    mlp = _fit(
        MLPClassifier((8,), max_iter=20, early_stopping=True, random_state=0),
        *moons2d,
    )
    display = LossCurveDisplay.from_estimator(mlp)
    assert display.ax_.get_title() == "Loss curve: MLPClassifier"
    assert_allclose(display.line_.get_ydata(), mlp.loss_curve_)
    assert_allclose(display.validation_line_.get_ydata(), mlp.validation_scores_)


def test_loss_curve_display_unfitted():
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(TorchMLPClassifier())


def test_loss_curve_display_lbfgs(moons2d):
    clf = _fit(TorchMLPClassifier((4,), solver="lbfgs", random_state=0), *moons2d)
    with pytest.raises(ValueError, match=r"no loss curve.*lbfgs"):
        LossCurveDisplay.from_estimator(clf)


def test_loss_curve_display_lbfgs_refit_after_adam(binary_clf, moons2d):
    # A refit with lbfgs keeps the stale loss_curve_ of the earlier adam fit.
    clf = clone(binary_clf)
    _fit(clf, *moons2d)
    _fit(clf.set_params(solver="lbfgs"), *moons2d)
    with pytest.raises(ValueError, match="lbfgs"):
        LossCurveDisplay.from_estimator(clf)


def test_loss_curve_display_of_a_pipeline_plots_its_last_step(moons2d):
    pipeline = _fit(
        make_pipeline(
            StandardScaler(),
            TorchMLPClassifier((4,), max_iter=7, learning_rate_init=0.05),
        ),
        *moons2d,
    )
    display = LossCurveDisplay.from_estimator(pipeline)
    assert_allclose(display.line_.get_ydata(), pipeline[-1].loss_curve_)
    assert display.estimator_name == "TorchMLPClassifier"


def test_loss_curve_display_of_an_lbfgs_pipeline_names_the_solver(moons2d):
    pipeline = make_pipeline(
        StandardScaler(), TorchMLPClassifier((4,), solver="lbfgs", max_iter=5)
    )
    _fit(pipeline, *moons2d)
    with pytest.raises(ValueError, match=r"not by solver='lbfgs'"):
        LossCurveDisplay.from_estimator(pipeline)


def test_loss_curve_display_of_an_estimator_without_a_curve(moons2d):
    clf = LogisticRegression().fit(*moons2d)
    with pytest.raises(ValueError, match=r"LogisticRegression .* no loss_curve_"):
        LossCurveDisplay.from_estimator(clf)


# ------------------------------------------- sklearn's DecisionBoundaryDisplay


def _grid(display):
    return np.c_[display.xx0.ravel(), display.xx1.ravel()]


@pytest.mark.parametrize("response_method", ["predict", "predict_proba"])
def test_decision_boundary_display_binary(binary_clf, moons2d, response_method):
    X, _ = moons2d
    display = DecisionBoundaryDisplay.from_estimator(
        binary_clf, X, response_method=response_method, grid_resolution=20
    )
    assert display.n_classes == 2
    grid = _grid(display)
    if response_method == "predict":
        expected = binary_clf.predict(grid)
        # both classes appear on the grid: the boundary is drawn
        assert set(np.unique(display.response)) == {0, 1}
    else:
        expected = binary_clf.predict_proba(grid)[:, 1]
    assert_allclose(display.response.ravel(), expected)


@pytest.mark.parametrize("response_method", ["predict", "predict_proba"])
def test_decision_boundary_display_multiclass(multiclass_clf, blobs2d, response_method):
    X, _ = blobs2d
    display = DecisionBoundaryDisplay.from_estimator(
        multiclass_clf, X, response_method=response_method, grid_resolution=20
    )
    assert display.n_classes == 3
    grid = _grid(display)
    if response_method == "predict":
        assert_array_equal(display.response.ravel(), multiclass_clf.predict(grid))
    else:
        assert display.response.shape == (20, 20, 3)
        assert_allclose(
            display.response.reshape(-1, 3), multiclass_clf.predict_proba(grid)
        )
    assert len(display.multiclass_colors_) == 3


def test_decision_boundary_display_string_labels(moons2d):
    X, y = moons2d
    labels = np.array(["no", "yes"])[y]
    clf = _fit(TorchMLPClassifier((8,), max_iter=20, random_state=0), X, labels)
    display = DecisionBoundaryDisplay.from_estimator(
        clf, X, response_method="predict", grid_resolution=10
    )
    # sklearn encodes string predictions as indices into classes_
    expected = np.searchsorted(clf.classes_, clf.predict(_grid(display)))
    assert_array_equal(display.response.ravel(), expected)


# ----------------------------------------------------- plot_decision_boundaries


def _split(X, y):
    return {"Train": (X[:80], y[:80]), "Test": (X[80:], y[80:])}


def test_plot_decision_boundaries_panels(binary_clf, moons2d):
    X, y = moons2d
    datasets = _split(X, y)
    displays = plot_decision_boundaries(binary_clf, datasets, grid_resolution=30)
    assert len(displays) == 2
    train, test = displays
    assert train.figure_ is test.figure_
    assert train.ax_ is not test.ax_
    # one shared grid, covering the points of both data sets
    assert_array_equal(train.xx0, test.xx0)
    assert_array_equal(train.response, test.response)
    assert train.xx0.min() < X[:, 0].min() and train.xx0.max() > X[:, 0].max()
    panels = zip(displays, datasets.items(), strict=True)
    for display, (title, (X_part, y_part)) in panels:
        accuracy = binary_clf.score(X_part, y_part)
        assert display.ax_.get_title() == f"{title} (accuracy {accuracy:.3f})"
        assert display.ax_.get_xlabel() == "feature 0"
        assert display.ax_.get_ylabel() == "feature 1"
        points = display.ax_.collections[-2:]
        assert [len(c.get_offsets()) for c in points] == list(np.bincount(y_part))
        legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
        assert legend == ["class 0", "class 1"]


def test_plot_decision_boundaries_binary_colors_match_classes(binary_clf, moons2d):
    (display,) = plot_decision_boundaries(
        binary_clf, {"all": moons2d}, grid_resolution=10
    )
    points = display.ax_.collections[-2:]
    for collection, color in zip(points, BINARY_COLORS, strict=True):
        assert_allclose(collection.get_facecolor()[0], to_rgba(color))
    # predict regions use the same two colors
    cmap = display.surface_.get_cmap()
    assert_allclose(cmap(0), to_rgba(BINARY_COLORS[0]))
    assert_allclose(cmap(cmap.N - 1), to_rgba(BINARY_COLORS[1]))


@pytest.mark.parametrize("response_method", ["predict", "predict_proba"])
def test_plot_decision_boundaries_multiclass(multiclass_clf, blobs2d, response_method):
    X, y = blobs2d
    displays = plot_decision_boundaries(
        multiclass_clf,
        _split(X, y),
        response_method=response_method,
        grid_resolution=20,
    )
    for display in displays:
        points = display.ax_.collections[-3:]
        for collection, color in zip(points, display.multiclass_colors_, strict=True):
            assert_allclose(collection.get_facecolor()[0], color)


def test_plot_decision_boundaries_custom_colors_axes_and_labels(
    multiclass_clf, blobs2d
):
    X, y = blobs2d
    _, axes = plt.subplots(2, 1)
    colors = ["red", "green", "blue"]
    displays = plot_decision_boundaries(
        multiclass_clf,
        _split(X, y),
        axes=axes,
        colors=colors,
        xlabel="x",
        ylabel="y",
        grid_resolution=10,
    )
    assert [display.ax_ for display in displays] == list(axes)
    assert_allclose(displays[0].multiclass_colors_, [to_rgba(c) for c in colors])
    assert displays[1].ax_.get_xlabel() == "x"
    assert displays[1].ax_.get_ylabel() == "y"


def test_plot_decision_boundaries_pandas_feature_names(moons2d):
    pd = pytest.importorskip("pandas", reason="pandas feature names")
    X, y = moons2d
    frame = pd.DataFrame(X, columns=["width", "height"])
    clf = _fit(TorchMLPClassifier((8,), max_iter=20, random_state=0), frame, y)
    datasets = {"Train": (frame.iloc[:80], y[:80]), "Test": (frame.iloc[80:], y[80:])}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "X does not have names"
        displays = plot_decision_boundaries(clf, datasets, grid_resolution=10)
    assert displays[0].ax_.get_xlabel() == "width"
    assert displays[0].ax_.get_ylabel() == "height"


def test_plot_decision_boundaries_errors(binary_clf, moons2d):
    X, y = moons2d
    with pytest.raises(NotFittedError):
        plot_decision_boundaries(TorchMLPClassifier(), {"a": (X, y)})
    with pytest.raises(ValueError, match="at least one"):
        plot_decision_boundaries(binary_clf, {})
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="3 axes for 2 data sets"):
        plot_decision_boundaries(binary_clf, _split(X, y), axes=axes)
    with pytest.raises(ValueError, match="one color per class"):
        plot_decision_boundaries(binary_clf, {"a": (X, y)}, colors=["red"])
    with pytest.raises(ValueError, match=r"shape \(n_samples,\).*Multilabel"):
        plot_decision_boundaries(binary_clf, {"a": (X, np.c_[y, y])})
