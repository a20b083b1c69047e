"""Default TorchMLPClassifier next to default MLPClassifier on the tutorial moons.

``make_moons(1000, noise=0.07, random_state=42)``, 80/20 split, both with
``random_state=42``; fit seconds are the median of 5 fits in a warm process.
Run ``python benchmarks/moons_defaults.py``.
"""

import statistics
import time
import warnings

from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from skorchlite import TorchMLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = make_moons(1000, noise=0.07, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)
# The first torch fit in a process pays torch's lazy imports; keep it out.
TorchMLPClassifier(max_iter=2).fit(X_train, y_train)

for name, make in [
    ("TorchMLPClassifier()", lambda: TorchMLPClassifier(random_state=42)),
    ("MLPClassifier()", lambda: MLPClassifier(random_state=42)),
]:
    seconds = []
    for _ in range(5):
        estimator = make()
        start = time.perf_counter()
        estimator.fit(X_train, y_train)
        seconds.append(time.perf_counter() - start)
    print(
        f"{name}: fit {statistics.median(seconds):.3f} s (median of 5), "
        f"{estimator.n_iter_} epochs, test accuracy "
        f"{estimator.score(X_test, y_test):.3f}"
    )
