"""
=====================================
Why non-linearity matters: circles
=====================================

Two concentric circles cannot be separated by a straight line. A network
whose hidden layers use ``activation="identity"`` is a linear model however
deep it is, so it stays near chance; the same network with ReLU
activations separates the circles almost perfectly.
"""

# %%
# The data
# --------
import os
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split

from skorchlite import TorchMLPClassifier, plot_decision_boundaries

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = make_circles(1000, noise=0.03, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

# %%
# The same network, without and with a non-linearity
# --------------------------------------------------
models = {
    activation: TorchMLPClassifier(
        hidden_layer_sizes=(10, 10),
        activation=activation,
        learning_rate_init=0.01,
        max_iter=300,
        random_state=42,
    ).fit(X_train, y_train)
    for activation in ("identity", "relu")
}
test_accuracies = {}
for activation, model in models.items():
    test_accuracies[activation] = model.score(X_test, y_test)
    print(f"test accuracy ({activation}): {test_accuracies[activation]:.3f}")

# %%
# Both decision boundaries in one figure
# --------------------------------------
# One row per model, train set on the left and test set on the right.
fig, axes = plt.subplots(2, 2, figsize=(10, 9), constrained_layout=True)
for row, (activation, model) in zip(axes, models.items(), strict=True):
    plot_decision_boundaries(
        model,
        {
            f'activation="{activation}", train': (X_train, y_train),
            f'activation="{activation}", test': (X_test, y_test),
        },
        axes=row,
    )
fig.suptitle("Circles: a linear network (top) and a ReLU network (bottom)")
fig.savefig(OUTPUT / "circles_decision_boundaries.png", dpi=100)
