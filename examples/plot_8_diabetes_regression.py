"""
==========================================================
Regression: disease progression with TorchMLPRegressor
==========================================================

scikit-learn's diabetes data set: 442 patients, 10 standardized features
(age, sex, body mass index, blood pressure and six blood serum measurements),
and a target measuring disease progression one year later.

:class:`~skorchlite.TorchMLPRegressor` is a drop-in for scikit-learn's
``MLPRegressor``: the same parameters, here inside the usual tools, a
``Pipeline`` that scales the features and a ``TransformedTargetRegressor``
that scales the target (networks train badly on targets in the hundreds).
Early stopping holds out 10% of the training rows and keeps the weights of
the epoch with the best validation R².
"""

# %%
# The data, and the model in scikit-learn's tools
# -----------------------------------------------
import os
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import PredictionErrorDisplay
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import LossCurveDisplay, TorchMLPRegressor

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

params = dict(
    hidden_layer_sizes=(16,),
    alpha=1.0,
    learning_rate_init=0.01,
    early_stopping=True,
    n_iter_no_change=20,
    max_iter=500,
    random_state=0,
)


def scaled(regressor):
    """``regressor`` on standardized features, predicting a standardized target."""
    return TransformedTargetRegressor(
        make_pipeline(StandardScaler(), regressor), transformer=StandardScaler()
    )


model = scaled(TorchMLPRegressor(**params)).fit(X_train, y_train)
reg = model.regressor_[-1]
print(
    f"stopped after {reg.n_iter_} epochs, "
    f"best validation R² {reg.best_validation_score_:.3f}"
)

# %%
# Compared with scikit-learn's MLPRegressor and a linear baseline
# ---------------------------------------------------------------
# The same parameters give scikit-learn's own network; a ridge regression
# says how much of the signal is linear.
test_r2 = model.score(X_test, y_test)
print(f"test R²: {test_r2:.3f}")
baselines = {
    "MLPRegressor": scaled(MLPRegressor(**params)),
    "RidgeCV": make_pipeline(StandardScaler(), RidgeCV()),
}
baseline_r2 = {
    name: baseline.fit(X_train, y_train).score(X_test, y_test)
    for name, baseline in baselines.items()
}
for name, r2 in baseline_r2.items():
    print(f"test R² ({name}): {r2:.3f}")

# %%
# Predicted against true values
# -----------------------------
# scikit-learn's :class:`~sklearn.metrics.PredictionErrorDisplay`: points on
# the diagonal are exact predictions; the residuals should show no pattern.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
for ax, kind in zip(
    axes, ["actual_vs_predicted", "residual_vs_predicted"], strict=True
):
    PredictionErrorDisplay.from_estimator(
        model, X_test, y_test, kind=kind, ax=ax, random_state=0
    )
axes[0].set_title(f"TorchMLPRegressor, test R² = {test_r2:.3f}")
axes[1].set_title("Residuals")
fig.savefig(OUTPUT / "diabetes_prediction_error.png", dpi=100)

# %%
# Training loss and validation R²
# -------------------------------
# :class:`~skorchlite.LossCurveDisplay` draws the training loss (half the mean
# squared error of the standardized target, plus the L2 term) and, on a second
# axis, the validation R² that early stopping watched.
display = LossCurveDisplay.from_estimator(reg)
display.figure_.savefig(OUTPUT / "diabetes_loss_curve.png", dpi=100)
