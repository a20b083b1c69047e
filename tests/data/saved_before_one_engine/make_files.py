"""Files saved by skorchlite before the one-engine refactor (commit 0e82c54).

Made with ``PYTHONPATH=<a checkout of 0e82c54> python make_files.py <this folder>``;
``tests/test_saved_files.py`` loads them with the current code.
"""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import skorchlite
from skorchlite import TorchMLPClassifier, TorchMLPRegressor


def main(out):
    warnings.simplefilter("ignore")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    expected = {"X": X}
    for solver in ["adam", "adamw", "sgd", "lbfgs"]:
        schedule = "invscaling" if solver == "sgd" else "constant"
        clf = TorchMLPClassifier(
            (4,),
            solver=solver,
            max_iter=3,
            batch_size=16,
            random_state=0,
            learning_rate=schedule,
        )
        clf.fit(X, y)
        if solver != "lbfgs":
            clf.partial_fit(X, y)
        expected[f"{solver}_proba"] = clf.predict_proba(X)
        if solver != "lbfgs":
            after = pickle.loads(pickle.dumps(clf)).partial_fit(X, y)
            expected[f"{solver}_proba_after_partial_fit"] = after.predict_proba(X)
        (out / f"{solver}.pkl").write_bytes(pickle.dumps(clf))
        skorchlite.save(clf, out / f"{solver}.skops")
    reg = TorchMLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    reg.fit(X, X @ [1.0, -1.0, 0.5])
    expected["regressor_predict"] = reg.predict(X)
    skorchlite.save(reg, out / "regressor.skops")
    # A module_ the user changed pickles as torch objects, with the torch
    # optimizer's state_dict.
    custom = TorchMLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    custom.module_[1] = torch.nn.LeakyReLU(0.3)
    expected["custom_proba"] = custom.predict_proba(X)
    after = pickle.loads(pickle.dumps(custom)).partial_fit(X, y)
    expected["custom_proba_after_partial_fit"] = after.predict_proba(X)
    (out / "custom_module.pkl").write_bytes(pickle.dumps(custom))
    np.savez(out / "expected.npz", **expected)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
