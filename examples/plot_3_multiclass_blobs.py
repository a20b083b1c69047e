"""
================================
Multiclass classification: blobs
================================

Four Gaussian blobs in two dimensions. With more than two classes the network
has one logit per class and trains with ``CrossEntropyLoss``;
``predict_proba`` is the softmax of the logits. The evaluation is plain
scikit-learn: a classification report, a confusion matrix and the decision
regions.
"""

# %%
# The data
# --------
import os
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import make_blobs
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.model_selection import train_test_split

from skorchlite import TorchMLPClassifier, plot_decision_boundaries

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

X, y = make_blobs(1000, n_features=2, centers=4, cluster_std=1.5, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)

# %%
# Train and evaluate
# ------------------
clf = TorchMLPClassifier(
    hidden_layer_sizes=(8, 8),
    learning_rate_init=0.01,
    max_iter=300,
    random_state=42,
).fit(X_train, y_train)
print(f"{clf.n_outputs_} logits, output activation {clf.out_activation_!r}")
print(classification_report(y_test, clf.predict(X_test), digits=3))
test_accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# Confusion matrix
# ----------------
fig, ax = plt.subplots(figsize=(5, 4.5), constrained_layout=True)
ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test, ax=ax, colorbar=False)
ax.set_title("Blobs: confusion matrix on the test set")
fig.savefig(OUTPUT / "blobs_confusion_matrix.png", dpi=100)

# %%
# Decision regions
# ----------------
# With ``response_method="predict_proba"`` each region is shaded by the
# probability of its class, fading to white where classes compete.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
plot_decision_boundaries(
    clf,
    {"Train": (X_train, y_train), "Test": (X_test, y_test)},
    response_method="predict_proba",
    axes=axes,
)
fig.suptitle("TorchMLPClassifier (8, 8) on four blobs")
fig.savefig(OUTPUT / "blobs_decision_boundaries.png", dpi=100)
