"""
======================================
Model selection with a grid search
======================================

:class:`~skorchlite.TorchMLPClassifier` is a scikit-learn estimator, so the
usual model-selection tools work unchanged: a
:class:`~sklearn.pipeline.Pipeline` that scales the features, a 5-fold
:class:`~sklearn.model_selection.GridSearchCV` over the architecture and the
learning rate, :func:`~sklearn.model_selection.cross_val_score`, and a final
report on held-out data.
"""

# %%
# Noisy moons, with a held-out test set
# -------------------------------------
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import classification_report
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import TorchMLPClassifier

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = make_moons(1000, noise=0.25, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

# %%
# Cross-validate one pipeline
# ---------------------------
pipe = make_pipeline(
    StandardScaler(),
    TorchMLPClassifier(max_iter=100, batch_size=100, random_state=42),
)
# 100 epochs is deliberately short for the smaller learning rates below;
# silence the ConvergenceWarning that each such fit would print.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
scores = cross_val_score(pipe, X_train, y_train, cv=5)
print(f"cross_val_score with the defaults: {scores.mean():.3f} +/- {scores.std():.3f}")

# %%
# Search the architecture and the learning rate
# ---------------------------------------------
# Parameters of a pipeline step are addressed as ``<step>__<parameter>``.
param_grid = {
    "torchmlpclassifier__hidden_layer_sizes": [(2,), (16,), (16, 16)],
    "torchmlpclassifier__learning_rate_init": [0.001, 0.01],
}
search = GridSearchCV(pipe, param_grid, cv=5).fit(X_train, y_train)
print(f"best parameters: {search.best_params_}")
print(f"best cross-validation accuracy: {search.best_score_:.3f}")

# %%
# The grid's mean scores as a heatmap
# -----------------------------------
sizes = param_grid["torchmlpclassifier__hidden_layer_sizes"]
rates = param_grid["torchmlpclassifier__learning_rate_init"]
mean_scores = np.empty((len(sizes), len(rates)))
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
):
    row = sizes.index(params["torchmlpclassifier__hidden_layer_sizes"])
    column = rates.index(params["torchmlpclassifier__learning_rate_init"])
    mean_scores[row, column] = score

fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
image = ax.imshow(mean_scores, cmap="viridis")
middle = (mean_scores.min() + mean_scores.max()) / 2
for (row, column), score in np.ndenumerate(mean_scores):
    color = "black" if score > middle else "white"  # readable on viridis
    ax.text(column, row, f"{score:.3f}", ha="center", va="center", color=color)
ax.set_xticks(range(len(rates)), labels=[str(rate) for rate in rates])
ax.set_yticks(range(len(sizes)), labels=[str(size) for size in sizes])
ax.set_xlabel("learning_rate_init")
ax.set_ylabel("hidden_layer_sizes")
ax.set_title("GridSearchCV: mean 5-fold accuracy")
fig.colorbar(image, ax=ax, label="mean accuracy")
fig.savefig(OUTPUT / "model_selection_grid.png", dpi=100)

# %%
# The best model on held-out data
# -------------------------------
# ``GridSearchCV`` refits the best pipeline on the whole training set.
print(classification_report(y_test, search.predict(X_test), digits=3))
test_accuracy = search.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")
