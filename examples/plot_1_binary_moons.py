"""
=============================
Binary classification: moons
=============================

The first model of most PyTorch classification tutorials: two interleaving
half circles, a small ReLU network, the training progress every 10 epochs,
the decision boundary on the train and test sets, and the loss curve.

With :class:`~skorchlite.TorchMLPClassifier` the training loop is
``partial_fit``, one epoch per call, and the metrics are scikit-learn's.
"""

# %%
# The data: 1000 points, 80/20 split
# ----------------------------------
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

from skorchlite import LossCurveDisplay, TorchMLPClassifier, plot_decision_boundaries

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = make_moons(1000, noise=0.07, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

# %%
# Train, printing the progress every 10 epochs
# --------------------------------------------
# Each ``partial_fit`` call is one epoch of Adam over shuffled minibatches.
# The losses printed here are the log-loss of the predicted probabilities
# (``loss_curve_`` also holds the L2 penalty, averaged over the epoch).
clf = TorchMLPClassifier(
    hidden_layer_sizes=(10, 10),
    activation="relu",
    learning_rate_init=0.01,
    random_state=42,
)
classes = np.unique(y_train)
epochs, test_losses = [], []
for epoch in range(1, 101):
    clf.partial_fit(X_train, y_train, classes=classes)
    test_losses.append(log_loss(y_test, clf.predict_proba(X_test)))
    if epoch % 10 == 0:
        train_loss = log_loss(y_train, clf.predict_proba(X_train))
        train_acc = accuracy_score(y_train, clf.predict(X_train))
        test_acc = accuracy_score(y_test, clf.predict(X_test))
        print(
            f"Epoch {epoch:3d} | train loss {train_loss:.4f}, acc {train_acc:.3f} "
            f"| test loss {test_losses[-1]:.4f}, acc {test_acc:.3f}"
        )

test_accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# Decision boundaries on the train and test sets
# ----------------------------------------------
# :func:`~skorchlite.plot_decision_boundaries` draws scikit-learn's
# :class:`~sklearn.inspection.DecisionBoundaryDisplay` once per data set on a
# shared grid; the shading is the predicted probability of class 1.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
plot_decision_boundaries(
    clf,
    {"Train": (X_train, y_train), "Test": (X_test, y_test)},
    response_method="predict_proba",
    axes=axes,
)
fig.suptitle("TorchMLPClassifier (10, 10) ReLU on moons")
fig.savefig(OUTPUT / "moons_decision_boundaries.png", dpi=100)

# %%
# The loss curve
# --------------
# :class:`~skorchlite.LossCurveDisplay` plots ``loss_curve_``; the test
# log-loss recorded above goes on the same axes.
fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
display = LossCurveDisplay.from_estimator(clf, ax=ax, name="moons model")
ax.plot(np.arange(1, len(test_losses) + 1), test_losses, label="test log-loss")
ax.set_ylabel("loss")
ax.legend()
fig.savefig(OUTPUT / "moons_loss_curve.png", dpi=100)
