"""Plots that scikit-learn does not already have: loss curves, boundary panels.

:class:`LossCurveDisplay` follows scikit-learn's Display pattern
(``from_estimator`` / ``plot(ax=...)`` / ``ax_`` / ``figure_``).
:func:`plot_decision_boundaries` draws scikit-learn's own
:class:`~sklearn.inspection.DecisionBoundaryDisplay` on a shared grid for
several data sets side by side (train and test, typically) with the points on
top, coloured like the regions of their class.
"""

import numpy as np
from sklearn.base import is_regressor
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._engine.solvers import SOLVERS

# The first two of scikit-learn's default (Petroff) multiclass colors, so that
# binary and multiclass plots share a palette.
BINARY_COLORS = ("#3f90da", "#ffa90e")


class LossCurveDisplay:
    """Training loss per epoch, and the validation score when early stopping ran.

    Use :meth:`from_estimator` to create one from a fitted
    :class:`~skorchlite.TorchMLPClassifier` (or scikit-learn's
    ``MLPClassifier``); all parameters are stored as attributes.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss after each epoch (``loss_curve_``).
    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score after each epoch (``validation_scores_``), drawn on
        a second y axis.
    estimator_name : str, default=None
        Name used in the title.
    score_name : str, default="accuracy"
        What the validation score is (``from_estimator``: "accuracy" for
        classifiers, "R²" for regressors).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes of the training loss.
    figure_ : matplotlib Figure
        Figure holding the plot.
    line_ : matplotlib Line2D
        The training loss curve.
    validation_ax_ : matplotlib Axes or None
        Second y axis (``ax_.twinx()``) of the validation score, if any.
    validation_line_ : matplotlib Line2D or None
        The validation score curve, if any.
    best_score_line_ : matplotlib Line2D or None
        Horizontal line at the best validation score, the one of the weights
        that early stopping restored.

    See Also
    --------
    sklearn.inspection.DecisionBoundaryDisplay : Decision regions of a classifier.
    plot_decision_boundaries : Decision regions next to several data sets.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skorchlite import LossCurveDisplay, TorchMLPClassifier
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> clf = TorchMLPClassifier((16,), max_iter=100, learning_rate_init=0.01,
    ...                          early_stopping=True, random_state=0).fit(X, y)
    >>> display = LossCurveDisplay.from_estimator(clf)
    >>> len(display.line_.get_xdata()) == clf.n_iter_
    True
    >>> display.validation_ax_.get_ylabel()
    'validation accuracy'
    """

    def __init__(
        self,
        *,
        loss_curve,
        validation_scores=None,
        estimator_name=None,
        score_name="accuracy",
    ):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name
        self.score_name = score_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, **kwargs):
        """Plot the loss curve of a fitted estimator.

        Parameters
        ----------
        estimator : estimator instance
            A fitted estimator with a ``loss_curve_`` (and, after early
            stopping, ``validation_scores_``), trained with a stochastic solver,
            or a :class:`~sklearn.pipeline.Pipeline` ending with one.
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure is created if None.
        name : str, default=None
            Name in the title; the estimator's class name if None.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : LossCurveDisplay

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If the estimator recorded no loss curve (``solver="lbfgs"``).
        """
        check_is_fitted(estimator)
        if isinstance(estimator, Pipeline):
            estimator = estimator[-1]
        estimator_name = type(estimator).__name__
        loss_curve = getattr(estimator, "loss_curve_", None)
        # A refit with lbfgs keeps the loss_curve_ of an earlier fit (as in
        # MLPClassifier), so an MLP's solver is checked as well (other
        # estimators, such as LogisticRegression, have an lbfgs solver too).
        solver = SOLVERS.get(getattr(estimator, "solver", None))
        is_mlp = hasattr(estimator, "hidden_layer_sizes")
        if is_mlp and solver is not None and solver.loss_curve_error() is not None:
            recording = [
                repr(name)
                for name, entry in SOLVERS.items()
                if entry.loss_curve_error() is None
            ]
            raise ValueError(
                f"This {estimator_name} has no loss curve to plot: loss_curve_ is "
                f"only recorded by the solvers {', '.join(recording)}, not by "
                f"solver={solver.name!r}."
            )
        if not loss_curve:
            raise ValueError(
                f"This {estimator_name} has no loss curve to plot: it has no "
                "loss_curve_."
            )
        display = cls(
            loss_curve=np.asarray(loss_curve, dtype=float),
            validation_scores=getattr(estimator, "validation_scores_", None),
            estimator_name=estimator_name if name is None else name,
            # The validation score is the estimator's ``score``.
            score_name="R²" if is_regressor(estimator) else "accuracy",
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, validation_kwargs=None, **kwargs):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure is created if None.
        validation_kwargs : dict, default=None
            Keyword arguments of the validation score's ``plot`` call.
        **kwargs : dict
            Keyword arguments of the training loss's ``plot`` call.

        Returns
        -------
        display : LossCurveDisplay
            The object itself, with the attributes set.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        epochs = np.arange(1, len(self.loss_curve) + 1)
        (self.line_,) = ax.plot(
            epochs, self.loss_curve, **{"label": "training loss", **kwargs}
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        name = self.estimator_name
        ax.set_title(f"Loss curve: {name}" if name else "Loss curve")
        lines = [self.line_]
        self.validation_ax_ = self.validation_line_ = self.best_score_line_ = None
        if self.validation_scores is not None and len(self.validation_scores):
            lines += self._plot_validation(ax, epochs, validation_kwargs or {})
        ax.legend(
            lines,
            [line.get_label() for line in lines],
            loc="center right" if len(lines) > 1 else "upper right",
        )
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _plot_validation(self, ax, epochs, validation_kwargs):
        scores = np.asarray(self.validation_scores, dtype=float)
        self.validation_ax_ = ax.twinx()
        (self.validation_line_,) = self.validation_ax_.plot(
            epochs[: len(scores)],
            scores,
            **{
                "label": f"validation {self.score_name}",
                "color": "C1",
                **validation_kwargs,
            },
        )
        self.validation_ax_.set_ylabel(f"validation {self.score_name}")
        best = np.nanmax(scores)  # a diverged epoch scores NaN
        self.best_score_line_ = self.validation_ax_.axhline(
            best,
            color=self.validation_line_.get_color(),
            linestyle=":",
            label=f"best validation {self.score_name} ({best:.3f})",
        )
        return [self.validation_line_, self.best_score_line_]


def plot_decision_boundaries(
    estimator,
    datasets,
    *,
    response_method="predict",
    axes=None,
    grid_resolution=200,
    eps=0.5,
    colors=None,
    xlabel=None,
    ylabel=None,
    **kwargs,
):
    """Draw a classifier's decision regions next to several data sets.

    One panel per data set (train and test, typically), all on the same grid
    so that they compare at a glance. Each panel is a scikit-learn
    :class:`~sklearn.inspection.DecisionBoundaryDisplay` with the points of
    the data set on top, coloured like the region of their true class, a
    legend of the classes and the accuracy in the title.

    Parameters
    ----------
    estimator : fitted classifier
        A binary or multiclass classifier trained on two features.
    datasets : dict of str to (X, y)
        Panel title to data: ``X`` of shape (n_samples, 2), ``y`` its labels.
    response_method : {"predict", "predict_proba", "decision_function", \
"auto"}, default="predict"
        What the regions show, as in ``DecisionBoundaryDisplay``: the predicted
        class, or its probability (shaded) or logit.
    axes : sequence of matplotlib Axes, default=None
        One Axes per data set; a new row of subplots if None.
    grid_resolution : int, default=200
        Number of grid points along each axis.
    eps : float, default=0.5
        Margin added around the points of all data sets.
    colors : list of matplotlib colors, default=None
        One color per class. None uses scikit-learn's default multiclass
        colors (the first two of them for binary problems).
    xlabel, ylabel : str, default=None
        Axis labels; the feature names (or ``"feature 0"``/``"feature 1"``)
        if None.
    **kwargs : dict
        Passed to matplotlib's ``contourf`` (e.g. ``alpha``).

    Returns
    -------
    displays : list of DecisionBoundaryDisplay
        One display per data set, with ``ax_`` and ``figure_``.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.model_selection import train_test_split
    >>> from skorchlite import TorchMLPClassifier, plot_decision_boundaries
    >>> X, y = make_moons(200, noise=0.1, random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = TorchMLPClassifier((16,), max_iter=500, learning_rate_init=0.01,
    ...                          random_state=0).fit(X_train, y_train)
    >>> train, test = plot_decision_boundaries(
    ...     clf, {"Train": (X_train, y_train), "Test": (X_test, y_test)})
    >>> test.ax_.get_title()  # doctest: +ELLIPSIS
    'Test (accuracy ...)'
    >>> train.figure_ is test.figure_
    True
    """
    import matplotlib.pyplot as plt

    check_is_fitted(estimator)
    if not datasets:
        raise ValueError("datasets must map at least one panel title to (X, y).")
    for title, (_, y) in datasets.items():
        if np.ndim(y) != 1:
            raise ValueError(
                f"plot_decision_boundaries needs class labels y of shape "
                f"(n_samples,); got shape {np.shape(y)} for {title!r}. Multilabel "
                "and multi-output targets are not supported."
            )
    if axes is None:
        _, axes = plt.subplots(
            1, len(datasets), figsize=(5 * len(datasets), 4.5), squeeze=False
        )
        axes = axes[0]
    axes = np.ravel(axes)
    if len(axes) != len(datasets):
        raise ValueError(
            f"Got {len(axes)} axes for {len(datasets)} data sets; pass one Axes "
            "per data set."
        )
    n_classes = len(estimator.classes_)
    class_colors = _class_colors(colors, n_classes)
    xlabel, ylabel = _feature_labels(estimator, xlabel, ylabel)
    surface_kwargs = {"alpha": 0.5, **kwargs}
    if n_classes == 2:
        surface_kwargs = {
            **_binary_surface_kwargs(response_method, class_colors),
            **surface_kwargs,
        }
    first = DecisionBoundaryDisplay.from_estimator(
        estimator,
        _stack([X for X, _ in datasets.values()]),
        grid_resolution=grid_resolution,
        eps=eps,
        response_method=response_method,
        multiclass_colors=None if class_colors is None else list(class_colors),
        xlabel=xlabel,
        ylabel=ylabel,
        ax=axes[0],
        **surface_kwargs,
    )
    if n_classes > 2:
        class_colors = first.multiclass_colors_
    displays = [first]
    for ax in axes[1:]:
        display = DecisionBoundaryDisplay(
            xx0=first.xx0,
            xx1=first.xx1,
            n_classes=first.n_classes,
            response=first.response,
            multiclass_colors=None if n_classes == 2 else list(class_colors),
            xlabel=xlabel,
            ylabel=ylabel,
        )
        displays.append(display.plot(ax=ax, **surface_kwargs))
    for display, (title, (X, y)) in zip(displays, datasets.items(), strict=True):
        _scatter_classes(display.ax_, X, y, estimator.classes_, class_colors)
        accuracy = estimator.score(X, y)
        display.ax_.set_title(f"{title} (accuracy {accuracy:.3f})")
    return displays


def _class_colors(colors, n_classes):
    """RGBA colors of the classes, or None to let scikit-learn choose them."""
    from matplotlib.colors import to_rgba_array

    if colors is None:
        return to_rgba_array(BINARY_COLORS) if n_classes == 2 else None
    if len(colors) != n_classes:
        raise ValueError(
            f"colors must have one color per class ({n_classes}), got {len(colors)}."
        )
    return to_rgba_array(colors)


def _binary_surface_kwargs(response_method, class_colors):
    """contourf arguments that colour binary regions like their class."""
    from matplotlib.colors import CenteredNorm, LinearSegmentedColormap, ListedColormap

    if response_method == "predict":
        return {"cmap": ListedColormap(class_colors), "levels": [-0.5, 0.5, 1.5]}
    diverging = LinearSegmentedColormap.from_list(
        "class_colors", [class_colors[0], "white", class_colors[1]]
    )
    if response_method == "predict_proba":
        return {"cmap": diverging, "levels": np.linspace(0, 1, 11)}
    return {"cmap": diverging, "norm": CenteredNorm(), "levels": 20}


def _feature_labels(estimator, xlabel, ylabel):
    names = getattr(estimator, "feature_names_in_", None)
    names = ["feature 0", "feature 1"] if names is None else list(names)
    return (names[0] if xlabel is None else xlabel), (
        names[1] if ylabel is None else ylabel
    )


def _stack(arrays):
    if all(hasattr(X, "iloc") for X in arrays):  # keep pandas feature names
        import pandas as pd

        return pd.concat(arrays, ignore_index=True)
    return np.vstack([np.asarray(X) for X in arrays])


def _scatter_classes(ax, X, y, classes, class_colors):
    X, y = np.asarray(X), np.asarray(y)
    for label, color in zip(classes, class_colors, strict=True):
        rows = y == label
        ax.scatter(
            X[rows, 0],
            X[rows, 1],
            color=color,
            edgecolor="black",
            linewidth=0.5,
            s=20,
            label=f"class {label}",
        )
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
