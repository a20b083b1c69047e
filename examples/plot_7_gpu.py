"""
=================
Running on a GPU
=================

The same code as on the CPU, with ``device="cuda"``. The training data is
moved to the GPU once per ``fit``, the network trains there in float32 (the
default ``dtype=None`` picks float32 on GPUs), and ``predict`` /
``predict_proba`` still take and return numpy arrays. A fitted model pickles
with its tensors on the CPU, so a model trained on a GPU loads on a machine
without one.

This script uses the GPU when ``torch.cuda.is_available()`` and otherwise
says so and falls back to the CPU. ``device="auto"`` (the default) makes
that choice by itself (CUDA, then Apple's MPS, then the CPU).
"""

# %%
# Pick the device
# ---------------
import os
import pickle
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from skorchlite import LossCurveDisplay, TorchMLPClassifier, plot_decision_boundaries

# Figures go to examples/output/, or to $SKORCHLITE_EXAMPLE_OUTPUT when set.
OUTPUT = Path(
    os.environ.get("SKORCHLITE_EXAMPLE_OUTPUT") or Path(__file__).parent / "output"
)
OUTPUT.mkdir(parents=True, exist_ok=True)

if torch.cuda.is_available():
    device = "cuda"
    print(f"Training on the GPU: {torch.cuda.get_device_name()}")
else:
    device = "cpu"
    print(
        "No CUDA GPU is available (torch.cuda.is_available() is False): "
        "falling back to the CPU."
    )

# %%
# Train exactly as on the CPU
# ---------------------------
X, y = make_moons(1000, noise=0.07, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)
clf = TorchMLPClassifier(
    hidden_layer_sizes=(10, 10),
    learning_rate_init=0.01,
    max_iter=300,
    device=device,
    random_state=42,
)
start = time.perf_counter()
clf.fit(X_train, y_train)
seconds = time.perf_counter() - start
weights = clf.module_[0].weight
print(
    f"module on {weights.device}, {weights.dtype}; {clf.n_iter_} epochs "
    f"in {seconds:.2f} s"
)
test_accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {test_accuracy:.3f}")

# %%
# Predictions are numpy arrays, pickles hold CPU tensors
# ------------------------------------------------------
# The pickle holds CPU tensors: it loads on a machine without a GPU (and goes
# back to the GPU when ``device`` is available there).
proba = clf.predict_proba(X_test[:3])
print(f"predict_proba returns a {type(proba).__name__} of {proba.dtype}")
restored = pickle.loads(pickle.dumps(clf))
same = np.allclose(restored.predict_proba(X_test), clf.predict_proba(X_test))
print(f"same probabilities after unpickling: {same}")

# %%
# The same pictures as anywhere else
# ----------------------------------
fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), constrained_layout=True)
LossCurveDisplay.from_estimator(clf, ax=axes[0], name=f"device={device!r}")
plot_decision_boundaries(
    clf,
    {"Train": (X_train, y_train), "Test": (X_test, y_test)},
    response_method="predict_proba",
    axes=axes[1:],
)
fig.suptitle(f"TorchMLPClassifier on moons, trained with device={device!r}")
fig.savefig(OUTPUT / "gpu_moons.png", dpi=100)
