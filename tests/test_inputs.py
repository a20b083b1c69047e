"""Input types TorchMLPClassifier accepts, and the errors bad input gets."""

import re
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils._param_validation import InvalidParameterError

from skorchlite import TorchMLPClassifier, TorchMLPRegressor

# ------------------------------------------------------------ input types


@pytest.mark.parametrize(
    ("X_dtype", "module_dtype"),
    [
        (np.float64, torch.float64),
        (np.float32, torch.float32),
        (np.int64, torch.float64),
        (np.int32, torch.float64),
    ],
)
def test_numpy_dtypes(make_clf, fit_quietly, moons, X_dtype, module_dtype):
    X, y = moons
    X = (X * 10).astype(X_dtype)
    clf = fit_quietly(make_clf(), X, y)
    assert next(clf.module_.parameters()).dtype == module_dtype
    numpy_dtype = torch.empty(0, dtype=module_dtype).numpy().dtype
    assert all(c.dtype == numpy_dtype for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict(X).shape == (len(X),)
    # Any dtype predicts, whatever the training dtype was.
    assert_array_equal(clf.predict(X.astype(np.float64)), clf.predict(X))


@pytest.mark.parametrize(
    ("dtype", "X_dtype", "module_dtype"),
    [
        ("float32", np.float64, torch.float32),
        ("float64", np.float32, torch.float64),
    ],
)
def test_dtype_parameter_overrides_the_input_dtype(
    make_clf, fit_quietly, moons, dtype, X_dtype, module_dtype
):
    X, y = moons
    clf = fit_quietly(make_clf(dtype=dtype), X.astype(X_dtype), y)
    assert next(clf.module_.parameters()).dtype == module_dtype
    assert clf.predict_proba(X).dtype == np.float64


def test_python_lists(make_clf, fit_quietly, moons):
    X, y = moons
    from_lists = fit_quietly(make_clf(), X.tolist(), y.tolist())
    from_arrays = fit_quietly(make_clf(), X, y)
    assert_array_equal(
        from_lists.predict_proba(X.tolist()), from_arrays.predict_proba(X)
    )


def test_read_only_and_non_contiguous_arrays(make_clf, fit_quietly, moons):
    X, y = moons
    wide = np.asfortranarray(np.repeat(X, 2, axis=1))[:, ::2]  # strided view
    read_only = X.copy()
    read_only.setflags(write=False)
    reference = fit_quietly(make_clf(), X, y).predict_proba(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. torch's non-writable
        clf = fit_quietly(make_clf(), read_only, y)
        assert_array_equal(clf.predict_proba(read_only), reference)
        assert_array_equal(
            fit_quietly(make_clf(), wide, y).predict_proba(wide), reference
        )


def test_pandas_inputs(make_clf, fit_quietly, moons):
    pd = pytest.importorskip("pandas", reason="pandas is a test extra")
    X, y = moons
    df = pd.DataFrame({"a": X[:, 0], "b": (X[:, 1] * 10).astype(int)})
    labels = pd.Series(np.where(y == 1, "up", "down"), dtype="category")
    clf = fit_quietly(make_clf(), df, labels)
    assert_array_equal(clf.classes_, ["down", "up"])
    assert_array_equal(clf.feature_names_in_, ["a", "b"])
    assert set(clf.predict(df)) <= {"down", "up"}
    reference = fit_quietly(make_clf(), df.to_numpy(dtype=float), labels.to_numpy())
    assert_array_equal(clf.predict_proba(df), reference.predict_proba(df.to_numpy()))


def test_column_vector_y_warns_and_fits(make_clf, fit_quietly, moons):
    X, y = moons
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        clf = fit_quietly(make_clf(), X, y.reshape(-1, 1))
    assert clf.n_outputs_ == 1
    assert clf.predict(X).shape == (len(X),)


def test_multilabel_lists(make_clf, fit_quietly, multilabel):
    X, Y = multilabel
    clf = fit_quietly(make_clf(), X.tolist(), Y.tolist())
    assert clf.predict(X).shape == Y.shape


# --------------------------------------------------------------- bad X


def _fails(clf, X, y, error, match):
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    # A failed first fit leaves no fitted state behind.
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((1, 2)))


def test_nan_in_X(make_clf, moons, fitted_binary):
    X, y = moons
    X = X.copy()
    X[3, 1] = np.nan
    _fails(make_clf(), X, y, ValueError, "Input X contains NaN")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted_binary.predict(X)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf_in_X(make_clf, moons, fitted_binary, value):
    X, y = moons
    X = X.copy()
    X[0, 0] = value
    _fails(make_clf(), X, y, ValueError, "Input X contains infinity")
    with pytest.raises(ValueError, match="Input X contains infinity"):
        fitted_binary.predict_proba(X)


def test_wrong_number_of_features_at_predict(fitted_binary, moons):
    X, _ = moons
    message = "X has 3 features, but TorchMLPClassifier is expecting 2 features"
    for method in (
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    ):
        with pytest.raises(ValueError, match=message):
            getattr(fitted_binary, method)(np.c_[X, X[:, 0]])


def test_wrong_number_of_features_in_partial_fit(make_clf, moons):
    X, y = moons
    clf = make_clf()
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="X has 1 features"):
        clf.partial_fit(X[:, :1], y)
    assert clf.n_features_in_ == 2


def test_one_dimensional_X(make_clf, moons, fitted_binary):
    X, y = moons
    _fails(make_clf(), X[:, 0], y, ValueError, "Expected 2D array, got 1D array")
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        fitted_binary.predict(X[:, 0])


def test_three_dimensional_X(make_clf, moons, fitted_binary):
    X, y = moons
    _fails(make_clf(), X[:, :, None], y, ValueError, "Found array with dim 3")
    with pytest.raises(ValueError, match="Found array with dim 3"):
        fitted_binary.predict(X[:, :, None])


def test_empty_X(make_clf, fitted_binary):
    _fails(make_clf(), np.empty((0, 2)), [], ValueError, r"0 sample\(s\)")
    _fails(make_clf(), np.empty((5, 0)), [0, 1, 0, 1, 0], ValueError, r"0 feature\(s\)")
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        fitted_binary.predict(np.empty((0, 2)))


def test_X_and_y_lengths_differ(make_clf, moons):
    X, y = moons
    _fails(make_clf(), X, y[:-1], ValueError, "inconsistent numbers of samples")


@pytest.mark.parametrize(
    ("X", "match"),
    [
        ([["a", "b"], ["c", "d"]], "could not convert string to float"),
        (np.array([[1.0, "x"], [2.0, "y"]], dtype=object), "could not convert"),
        (np.array([[1 + 1j, 0], [0, 1]]), "Complex data not supported"),
    ],
    ids=["strings", "object", "complex"],
)
def test_non_numeric_X(make_clf, X, match):
    _fails(make_clf(), X, [0, 1], ValueError, match)


def test_sample_weight_of_wrong_length(make_clf, moons):
    X, y = moons
    with pytest.raises(ValueError, match="sample_weight"):
        make_clf().fit(X, y, sample_weight=np.ones(len(X) - 1))


# --------------------------------------------------------------- bad y


def test_continuous_y(make_clf, moons):
    X, _ = moons
    _fails(make_clf(), X, X[:, 0], ValueError, "Unknown label type: continuous")


@pytest.mark.parametrize("label", [1, "spam"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_single_class_is_always_predicted(
    make_clf, fit_quietly, moons, label, early_stopping
):
    # Like MLPClassifier (and sklearn's check_classifiers_one_label): it fits,
    # and predicts that class with probability one.
    X, _ = moons
    y = np.full(len(X), label, dtype=object if isinstance(label, str) else int)
    clf = fit_quietly(make_clf(early_stopping=early_stopping), X, y)
    assert_array_equal(clf.classes_, [label])
    assert_array_equal(clf.predict(X[:5]), [label] * 5)
    assert_array_equal(clf.predict_proba(X[:5]), np.ones((5, 1)))
    assert_array_equal(clf.predict_log_proba(X[:5]), np.zeros((5, 1)))
    assert clf.score(X, y) == 1.0
    assert len(clf.loss_curve_) == clf.n_iter_
    if early_stopping:
        assert set(clf.validation_scores_) == {1.0}


def test_nan_in_y(make_clf, moons):
    X, y = moons
    y = y.astype(float)
    y[0] = np.nan
    _fails(make_clf(), X, y, ValueError, "Input y contains NaN")


def test_multiclass_multioutput_y(make_clf, moons):
    X, y = moons
    Y = np.c_[y, y * 2]
    _fails(make_clf(), X, Y, ValueError, "multiclass-multioutput")


def test_warm_start_with_new_classes(make_clf, fit_quietly, blobs):
    X, y = blobs
    clf = fit_quietly(make_clf(warm_start=True), X, y)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "warm_start can only be used where `y` has the same classes as in the "
            "previous call to fit. Previously got [0 1 2], `y` has [0 1 3]"
        ),
    ):
        clf.fit(X, np.where(y == 2, 3, y))


# ---------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    "params",
    [
        {"activation": "softmax"},
        {"solver": "newton"},
        {"alpha": -1.0},
        {"batch_size": 0},
        {"batch_size": "big"},
        {"learning_rate": "cyclic"},
        {"learning_rate_init": 0.0},
        {"max_iter": 0},
        {"momentum": 1.5},
        {"validation_fraction": 1.0},
        {"beta_1": 1.0},
        {"epsilon": 0.0},
        {"n_iter_no_change": 0},
        {"max_fun": 0},
        {"device": 3},
        {"dtype": "float16"},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"class_weight": "auto"},
        {"max_grad_norm": 0.0},
        {"predict_batch_size": 0},
        {"shuffle": "yes"},
    ],
    ids=lambda params: "-".join(f"{k}={v}" for k, v in params.items()),
)
def test_invalid_parameters(moons, params):
    X, y = moons
    clf = TorchMLPClassifier(**params)
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        clf.fit(X, y)


@pytest.mark.parametrize("sizes", [(0,), (4, -1)])
def test_hidden_layer_sizes_must_be_positive(make_clf, moons, sizes):
    X, y = moons
    _fails(make_clf(hidden_layer_sizes=sizes), X, y, ValueError, "must be > 0")


def test_early_stopping_with_too_few_samples(make_clf):
    _fails(
        make_clf(early_stopping=True),
        [[0.0, 1.0], [1.0, 0.0]],
        [0, 1],
        ValueError,
        "validation set is too small",
    )


# --------------------------------------------------------- unfitted, device


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "decision_function"]
)
def test_predict_before_fit(moons, method):
    X, _ = moons
    with pytest.raises(NotFittedError):
        getattr(TorchMLPClassifier(), method)(X)


def test_score_before_fit(moons):
    X, y = moons
    with pytest.raises(NotFittedError):
        TorchMLPClassifier().score(X, y)


def test_partial_fit_without_classes(make_clf, moons):
    X, y = moons
    clf = make_clf()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_partial_fit_with_other_classes_later(make_clf, moons):
    X, y = moons
    clf = make_clf()
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("classes", [[0, 1], ["a", "b", "c", "d"], [0, 1, 2, 2]])
def test_partial_fit_multilabel_classes_must_be_the_columns(
    make_clf, multilabel, classes
):
    X, Y = multilabel  # 4 labels
    clf = make_clf()
    with pytest.raises(ValueError, match=re.escape("column indices [0, 1, 2, 3]")):
        clf.partial_fit(X, Y, classes=classes)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.partial_fit(X, Y, classes=[0, 1, 2, 3])
    clf.partial_fit(X, Y, classes=[0, 1, 2, 3])
    assert len(clf.loss_curve_) == 2


@pytest.mark.parametrize("device", ["nonsense", "cuda:99", "mps:7x"])
def test_nonexistent_device(make_clf, moons, device):
    X, y = moons
    _fails(make_clf(device=device), X, y, ValueError, "device")


# ------------------------------------------------------------ divergence


DIVERGING = {"solver": "sgd", "learning_rate_init": 1e3, "max_iter": 50}


@pytest.mark.parametrize("dtype", [None, "float32"])
def test_diverging_fit_is_a_clear_error(make_clf, moons, dtype):
    X, y = moons
    clf = make_clf(**DIVERGING, dtype=dtype)
    with pytest.raises(ValueError, match="learning_rate_init"):
        clf.fit(X * 1e3, y)  # unscaled data, huge learning rate
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_diverging_refit_keeps_the_previous_model(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(), X, y)
    before = clf.predict_proba(X)
    loss_curve = list(clf.loss_curve_)
    clf.set_params(**DIVERGING)
    X_new = np.c_[X, X[:, 0]] * 1e3  # another shape and other labels, too
    with pytest.raises(ValueError, match="learning_rate_init"):
        clf.fit(X_new, np.where(y == 1, "b", "a"))
    assert clf.n_features_in_ == 2
    assert_array_equal(clf.classes_, [0, 1])
    assert clf.loss_curve_ == loss_curve
    assert_array_equal(clf.predict_proba(X), before)


def test_diverging_warm_start_keeps_the_previous_weights(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(warm_start=True), X, y)
    before = clf.predict_proba(X)
    n_iter, t = clf.n_iter_, clf.t_
    clf.set_params(**DIVERGING)
    with pytest.raises(ValueError, match="learning_rate_init"):
        clf.fit(X * 1e3, y)
    assert (clf.n_iter_, clf.t_) == (n_iter, t)
    assert_array_equal(clf.predict_proba(X), before)
    # and it can still train normally afterwards
    clf.set_params(solver="adam", learning_rate_init=1e-3, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert clf.t_ == t + 2 * len(X)


def test_failed_validation_keeps_the_previous_model(make_clf, fit_quietly, moons):
    X, y = moons
    clf = fit_quietly(make_clf(), X, y)
    before = clf.predict_proba(X)
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(np.c_[X, X], np.linspace(0, 1, len(X)))
    assert clf.n_features_in_ == 2
    assert_allclose(clf.predict_proba(X), before)


@pytest.mark.parametrize("X_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("ours", "theirs", "y"),
    [
        (TorchMLPClassifier, MLPClassifier, [0, 1, 0, 1, 2, 2]),
        (TorchMLPClassifier, MLPClassifier, [0, 1, 0, 1, 0, 1]),
        (TorchMLPClassifier, MLPClassifier, [0, 0, 0, 0, 0, 0]),
        (TorchMLPRegressor, MLPRegressor, [0.5, 1, 2, 0, 1, 3]),
    ],
)
def test_predictions_have_the_dtype_of_sklearns(ours, theirs, y, dtype, X_dtype):
    # MLPClassifier's and MLPRegressor's outputs are float32 when both the input
    # and the weights are, else float64.
    X = np.arange(12.0).reshape(6, 2) / 12
    model = ours(
        hidden_layer_sizes=(3,), dtype=dtype, solver="sgd", max_iter=2, device="cpu"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X.astype(dtype), y)
        reference = theirs(hidden_layer_sizes=(3,), solver="sgd", max_iter=2).fit(
            X.astype(dtype), y
        )
    method = "predict_proba" if hasattr(reference, "predict_proba") else "predict"
    expected = getattr(reference, method)(X.astype(X_dtype)).dtype
    assert getattr(model, method)(X.astype(X_dtype)).dtype == expected
    assert expected == np.result_type(X_dtype, dtype)
