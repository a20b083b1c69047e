"""
==========================================================
Real tabular data: class weights and early stopping
==========================================================

scikit-learn's breast cancer data set: 569 tumours, 30 numeric features,
212 malignant (label 0) and 357 benign (label 1). Two things matter on data
like this:

* ``class_weight="balanced"`` weighs each class inversely to its frequency,
  so the minority (malignant) class counts as much as the majority in the
  loss;
* ``early_stopping=True`` holds out a stratified 10% of the training data,
  stops when its accuracy stops improving and restores the best weights.

The loss curve and the validation curve show when training stopped and why.
"""

# %%
# The data, scaled inside a pipeline
# ----------------------------------
import os
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import classification_report, recall_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorchlite import LossCurveDisplay, TorchMLPClassifier

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

data = load_breast_cancer()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.2, random_state=42, stratify=data.target
)


def make_model(class_weight):
    return make_pipeline(
        StandardScaler(),
        TorchMLPClassifier(
            hidden_layer_sizes=(32, 16),
            learning_rate_init=0.001,
            max_iter=300,
            early_stopping=True,
            n_iter_no_change=20,
            class_weight=class_weight,
            random_state=42,
        ),
    )


# %%
# Train with and without class weights
# ------------------------------------
# ``model[-1]`` is the fitted :class:`~skorchlite.TorchMLPClassifier`. On this
# split the balanced weights catch more of the malignant tumours (recall of
# class 0) for a slightly lower overall accuracy: the trade-off class weights
# are for. The imbalance here is mild, so the effect is small.
models = {
    weight: make_model(weight).fit(X_train, y_train) for weight in (None, "balanced")
}
for weight, model in models.items():
    clf = model[-1]
    malignant_recall = recall_score(y_test, model.predict(X_test), pos_label=0)
    print(
        f"class_weight={weight!r}: stopped after {clf.n_iter_} epochs, best "
        f"validation accuracy {clf.best_validation_score_:.3f}, test accuracy "
        f"{model.score(X_test, y_test):.3f}, malignant recall {malignant_recall:.3f}"
    )

model = models["balanced"]
print(
    classification_report(
        y_test, model.predict(X_test), target_names=data.target_names, digits=3
    )
)
test_accuracy = model.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# Loss and validation curves
# --------------------------
# :class:`~skorchlite.LossCurveDisplay` draws the training loss and, because
# early stopping ran, the validation accuracy on a second axis, with the
# epoch whose weights were restored.
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
for ax, (weight, model) in zip(axes, models.items(), strict=True):
    LossCurveDisplay.from_estimator(model[-1], ax=ax, name=f"class_weight={weight!r}")
fig.suptitle("Breast cancer: training loss and validation accuracy")
fig.savefig(OUTPUT / "breast_cancer_curves.png", dpi=100)
