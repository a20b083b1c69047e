"""
===========
Quickstart
===========

Train a :class:`~skorchlite.TorchMLPClassifier` on two moons: fit it on
``make_moons(1000, noise=0.07)`` with an 80/20 split, print the classification
report and save the decision boundary to
``examples/output/quickstart_decision_boundary.png`` (or into
``$SKORCHLITE_EXAMPLE_OUTPUT`` when that is set).
"""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.datasets import make_moons
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split

from skorchlite import TorchMLPClassifier

OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)

X, y = make_moons(1000, noise=0.07, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

clf = TorchMLPClassifier(
    hidden_layer_sizes=(10, 10),
    learning_rate_init=0.01,
    max_iter=300,
    random_state=42,
)
clf.fit(X_train, y_train)
print(classification_report(y_test, clf.predict(X_test), digits=3))
test_accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

fig, ax = plt.subplots(figsize=(6, 5))
DecisionBoundaryDisplay.from_estimator(
    clf,
    X,
    response_method="predict_proba",
    cmap="RdBu",
    alpha=0.6,
    ax=ax,
    xlabel="feature 0",
    ylabel="feature 1",
)
ax.scatter(*X_test.T, c=y_test, cmap="RdBu", edgecolor="k", s=20, label="test points")
ax.set_title(f"TorchMLPClassifier on moons: test accuracy {test_accuracy:.3f}")
ax.legend(loc="lower left")
OUTPUT.mkdir(parents=True, exist_ok=True)
path = OUTPUT / "quickstart_decision_boundary.png"
fig.savefig(path, dpi=100, bbox_inches="tight")
print(f"Saved {path}")
