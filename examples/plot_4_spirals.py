"""
=====================
Three-class spirals
=====================

The spiral data set of Stanford's CS231n course: three arms of 100 points
each, which no linear model separates. A two-layer ReLU network learns the
arms; the decision regions show how.
"""

# %%
# The CS231n spiral data
# ----------------------
# ``N`` points per class, ``K`` classes, ``D`` dimensions, generated with
# numpy seed 42 (a local ``RandomState``, so numpy's global state is untouched).
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split

from skorchlite import TorchMLPClassifier, plot_decision_boundaries

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

N, K, D = 100, 3, 2
rng = np.random.RandomState(42)
X = np.zeros((N * K, D))
y = np.zeros(N * K, dtype=int)
for j in range(K):
    rows = range(N * j, N * (j + 1))
    r = np.linspace(0.0, 1, N)  # radius
    t = np.linspace(j * 4, (j + 1) * 4, N) + rng.randn(N) * 0.2  # theta
    X[rows] = np.c_[r * np.sin(t), r * np.cos(t)]
    y[rows] = j

X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

# %%
# Train and evaluate
# ------------------
clf = TorchMLPClassifier(
    hidden_layer_sizes=(64, 64),
    learning_rate_init=0.01,
    max_iter=500,
    random_state=42,
).fit(X_train, y_train)
print(classification_report(y_test, clf.predict(X_test), digits=3))
test_accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# Decision regions on the train and test sets
# -------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
plot_decision_boundaries(
    clf,
    {"Train": (X_train, y_train), "Test": (X_test, y_test)},
    axes=axes,
    eps=0.2,
)
fig.suptitle("TorchMLPClassifier (64, 64) on the CS231n spirals")
fig.savefig(OUTPUT / "spirals_decision_boundaries.png", dpi=100)
