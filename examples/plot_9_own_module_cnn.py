"""
==========================================
Your own module: a small CNN on the digits
==========================================

:class:`~skorchlite.TorchClassifier` trains a :class:`torch.nn.Module` of
your own with everything :class:`~skorchlite.TorchMLPClassifier` does around
the network: the same training parameters, the loss chosen by the labels,
``random_state``, ``predict_proba``, and scikit-learn's model selection. Here
the module is a small convolutional network for the 8x8 images of
scikit-learn's digits, compared with an MLP on the same split, and its number
of channels is tuned with :class:`~skorchlite.BatchedGridSearchCV` like any
other parameter (``module__channels``). See the user guide's "Your own
module" page for the rules a module follows.
"""

# %%
# The digits, as 64 pixels per row
# --------------------------------
# The estimators take a 2-D array, one row per sample: the images stay
# flattened, and the module reshapes them. Half of the 1797 images train, half
# test.
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from torch import nn

from skorchlite import BatchedGridSearchCV, TorchClassifier, TorchMLPClassifier

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixel intensities 0..16, scaled to [0, 1]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)

# %%
# The module
# ----------
# A class (or a function) whose arguments are the module's settings. The
# estimator calls it at every fit: with ``n_outputs``, because its signature
# names it (10 logits for the ten digits; ``n_features_in`` would get the 64
# columns), and with the ``module__*`` parameters. It returns logits, and the
# estimator picks the loss (``CrossEntropyLoss`` for ten classes).


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with max pooling, then a linear layer."""

    def __init__(self, n_outputs, channels=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.out = nn.Linear(2 * channels * 2 * 2, n_outputs)

    def forward(self, X):
        images = X.reshape(-1, 1, 8, 8)  # a batch of rows, as images
        return self.out(self.features(images).flatten(1))


# %%
# Train it, and an MLP on the same split
# --------------------------------------
# Both train for a fixed, short number of epochs (the point is the
# comparison, not convergence; the ConvergenceWarning each fit would print is
# silenced), in float32.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
common = dict(learning_rate_init=0.01, max_iter=40, dtype="float32", random_state=0)

cnn = TorchClassifier(SmallCNN, module__channels=8, **common).fit(X_train, y_train)
cnn_accuracy = cnn.score(X_test, y_test)
mlp = TorchMLPClassifier(hidden_layer_sizes=(64,), **common).fit(X_train, y_train)
mlp_accuracy = mlp.score(X_test, y_test)


def n_weights(module):
    return sum(p.numel() for p in module.parameters())


print(f"SmallCNN: {n_weights(cnn.module_)} weights")
print(f"test accuracy (TorchClassifier): {cnn_accuracy:.3f}")
print(f"MLP (64,): {n_weights(mlp.module_)} weights")
print(f"test accuracy (TorchMLPClassifier): {mlp_accuracy:.3f}")

# %%
# With fewer than half the MLP's weights, the CNN does better on the held-out
# images: its convolutions look for the same strokes everywhere in the image.
# The fitted estimator holds the trained module, in eval mode, and predicts
# like any classifier:
print(cnn.module_)
print("probabilities of the first test image:", cnn.predict_proba(X_test[:1]).round(2))

# %%
# Tune the channels and the learning rate
# ---------------------------------------
# ``module__channels`` is a parameter like ``learning_rate_init``: in
# ``get_params``, in ``set_params`` and in a search's grid. The batched search
# gives :class:`~sklearn.model_selection.GridSearchCV`'s results; fits it can
# train together run together, the others as ordinary fits (``verbose=1``
# says which).
param_grid = {
    "module__channels": [4, 8, 16],
    "learning_rate_init": [0.003, 0.01],
}
search = BatchedGridSearchCV(
    TorchClassifier(SmallCNN, max_iter=30, dtype="float32", random_state=0),
    param_grid,
    cv=3,
).fit(X_train, y_train)
print(f"best parameters: {search.best_params_}")
print(f"best cross-validation accuracy: {search.best_score_:.3f}")
n_fits = len(search.cv_results_["params"]) * search.n_splits_
print(f"{search.n_batched_fits_} of {n_fits} fits trained batched")
test_accuracy = search.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# The loss curves and the grid
# ----------------------------
channels = param_grid["module__channels"]
rates = param_grid["learning_rate_init"]
mean_scores = np.empty((len(channels), len(rates)))
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
):
    row = channels.index(params["module__channels"])
    mean_scores[row, rates.index(params["learning_rate_init"])] = score

fig, (ax_loss, ax_grid) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
ax_loss.plot(cnn.loss_curve_, label=f"SmallCNN (test accuracy {cnn_accuracy:.3f})")
ax_loss.plot(mlp.loss_curve_, label=f"MLP (64,) (test accuracy {mlp_accuracy:.3f})")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training loss")
ax_loss.set_yscale("log")
ax_loss.set_title("Training loss on the digits")
ax_loss.legend()

width = 0.8 / len(rates)
for i, rate in enumerate(rates):
    positions = np.arange(len(channels)) + (i - (len(rates) - 1) / 2) * width
    bars = ax_grid.bar(positions, mean_scores[:, i], width, label=f"{rate}")
    ax_grid.bar_label(bars, fmt="%.3f", fontsize=8)
ax_grid.set_xticks(range(len(channels)), labels=[str(c) for c in channels])
ax_grid.set_xlabel("module__channels")
ax_grid.set_ylabel("mean 3-fold accuracy")
ax_grid.set_ylim(mean_scores.min() - 0.05, 1.0)
ax_grid.set_title("BatchedGridSearchCV")
ax_grid.legend(title="learning_rate_init", loc="upper left")
fig.savefig(OUTPUT / "own_module_cnn.png", dpi=100)

# %%
# Reproducible, like the MLPs
# ---------------------------
# ``random_state`` seeds the module's initial weights too (they are drawn
# while the estimator builds it, from the fit's own generator, never from
# torch's global one): the same parameters give the same model.
again = TorchClassifier(SmallCNN, module__channels=8, **common).fit(X_train, y_train)
same_weights = torch.equal(again.module_.out.weight, cnn.module_.out.weight)
same_proba = np.array_equal(again.predict_proba(X_test), cnn.predict_proba(X_test))
same = same_weights and same_proba
print(f"refitting gives the same model: {same}")
