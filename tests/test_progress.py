"""Progress of a fit: plain lines, a live tqdm bar, scikit-learn's callbacks."""

import contextlib
import io
import re
import sys
import types
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning

from skorchlite import TorchMLPClassifier
from skorchlite._progress import EpochBar, EpochLog, epoch_display

X, y = make_moons(200, noise=0.2, random_state=0)
# MLPClassifier's lines, and our extras after them.
LINE = re.compile(r"Iteration (\d+), loss = \d+\.\d{8}, time = \d+\.\d{3}s")
VALIDATION_LINE = re.compile(
    r"Validation score: \d\.\d{6}, validation loss = \d+\.\d{8}"
)


def _clf(**params):
    defaults = {"hidden_layer_sizes": (8,), "learning_rate_init": 0.05}
    return TorchMLPClassifier(random_state=0, **{**defaults, **params})


def _fit_quietly(clf, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(*args, **kwargs)


class _Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self):
        return True


def _on_terminal():
    # Inside the test body: pytest swaps sys.stdout between fixture setup and
    # the test call.
    return contextlib.redirect_stdout(_Terminal())


# ------------------------------------------------------------- plain lines


def test_plain_lines_when_stdout_is_not_a_terminal(capsys):
    _fit_quietly(_clf(max_iter=3, early_stopping=True, verbose=True), X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    pairs = zip(lines[::2], lines[1::2], strict=True)
    for epoch, (line, validation) in enumerate(pairs, start=1):
        match = LINE.fullmatch(line)
        assert match, line
        assert int(match[1]) == epoch
        assert VALIDATION_LINE.fullmatch(validation), validation


def test_verbose_k_prints_first_and_every_kth_epoch(capsys):
    _fit_quietly(_clf(max_iter=7, verbose=3), X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [int(LINE.fullmatch(line)[1]) for line in lines] == [1, 3, 6]


def test_stopping_rule_is_reported(capsys):
    _clf(max_iter=100, tol=10.0, n_iter_no_change=2, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert (
        "Training loss did not improve more than tol=10.000000 for 2 consecutive "
        "epochs. Stopping." in out
    )


def test_silent_by_default_even_on_a_terminal():
    with _on_terminal() as terminal:
        _fit_quietly(_clf(max_iter=3), X, y)
    assert terminal.getvalue() == ""


# ---------------------------------------------------------------- live bar


def test_live_bar_on_a_terminal():
    pytest.importorskip("tqdm", reason="the live bar needs the progress extra")
    with _on_terminal() as terminal:
        _fit_quietly(_clf(max_iter=4, early_stopping=True, verbose=True), X, y)
    out = terminal.getvalue()
    assert "\r" in out  # redrawn in place
    final = out.split("\r")[-1]
    assert final.startswith("TorchMLPClassifier: 100%")
    assert "4/4" in final
    assert re.search(r"loss=\d\.\d{4}, val_loss=\d\.\d{4}, val_acc=\d\.\d{4}", final)
    assert not LINE.search(out)


def test_stopping_rule_is_written_above_the_bar():
    pytest.importorskip("tqdm", reason="the live bar needs the progress extra")
    clf = _clf(max_iter=100, tol=10.0, n_iter_no_change=2, verbose=True)
    with _on_terminal() as terminal:
        clf.fit(X, y)
    out = terminal.getvalue()
    assert "Training loss did not improve more than tol=10.000000" in out
    # Stopped early, out of at most 100 epochs: the bar says so.
    assert clf.n_iter_ < 10
    assert f"{clf.n_iter_}/100" in out.split("\r")[-1]


def test_plain_lines_on_a_terminal_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    with _on_terminal() as terminal:
        _fit_quietly(_clf(max_iter=2, verbose=True), X, y)
    lines = terminal.getvalue().splitlines()
    assert [int(LINE.fullmatch(line)[1]) for line in lines] == [1, 2]


def test_partial_fit_prints_a_line_not_a_one_epoch_bar():
    clf = _clf(verbose=True)
    with _on_terminal() as terminal:
        clf.partial_fit(X, y, classes=[0, 1])
        clf.partial_fit(X, y)
    lines = terminal.getvalue().splitlines()
    # Each call runs its first (and only) iteration, as MLPClassifier says.
    assert [int(LINE.fullmatch(line)[1]) for line in lines] == [1, 1]


def test_notebook_gets_a_bar(capsys, monkeypatch):
    pytest.importorskip("tqdm", reason="the live bar needs the progress extra")
    assert isinstance(epoch_display(True, 10, "clf"), EpochLog)  # captured stdout
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmq"))
    assert isinstance(epoch_display(True, 10, "clf"), EpochBar)
    assert epoch_display(False, 10, "clf") is None


# --------------------------------------------------- scikit-learn callbacks


@pytest.fixture
def sklearn_callback():
    return pytest.importorskip(
        "sklearn.callback", reason="scikit-learn < 1.9 has no callback API"
    )


class Recorder:
    """A scikit-learn fit callback that records the hooks it sees."""

    def __init__(self, stop_after=None):
        self.events = []
        self.stop_after = stop_after

    def setup(self, estimator, context):
        self.events.append("setup")

    def on_fit_task_begin(self, estimator, context):
        self.events.append(f"begin {context.task_name}")

    def on_fit_task_end(self, estimator, context):
        self.events.append(f"end {context.task_name}")
        return self.events.count("end epoch") == self.stop_after

    def teardown(self, estimator, context):
        self.events.append("teardown")


def test_callbacks_see_one_subtask_per_epoch(sklearn_callback):
    recorder = Recorder()
    _fit_quietly(_clf(max_iter=3).set_callbacks(recorder), X, y)
    assert recorder.events == [
        "setup",
        "begin fit",
        *["begin epoch", "end epoch"] * 3,
        "end fit",
        "teardown",
    ]


def test_callback_asking_to_stop_ends_the_fit(sklearn_callback):
    clf = _clf(max_iter=50).set_callbacks(Recorder(stop_after=2))
    with warnings.catch_warnings():
        # Stopped on request: not a failure to converge.
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert len(clf.loss_curve_) == 2


def test_callbacks_are_torn_down_when_fit_fails(sklearn_callback):
    recorder = Recorder()
    clf = _clf().set_callbacks(recorder)
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.full_like(X, np.nan), y)
    assert recorder.events == ["setup", "teardown"]
    assert not hasattr(clf, "_callback_fit_ctx")


def test_lbfgs_reports_the_fit_as_one_task(sklearn_callback):
    recorder = Recorder()
    _fit_quietly(_clf(solver="lbfgs", max_iter=5).set_callbacks(recorder), X, y)
    assert recorder.events == ["setup", "begin fit", "end fit", "teardown"]


def test_partial_fit_is_one_epoch_task_per_call(sklearn_callback):
    recorder = Recorder()
    clf = _clf().set_callbacks(recorder)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y)
    call = ["setup", "begin fit", "begin epoch", "end epoch", "end fit", "teardown"]
    assert recorder.events == call * 2


def test_scoring_monitor_scores_the_model_as_of_each_epoch(sklearn_callback):
    # Dropout is on while training: the scored copy must be in inference mode
    # to reproduce a model fitted for that many epochs.
    monitor = sklearn_callback.ScoringMonitor(scoring="accuracy")
    clf = _clf(max_iter=4, dropout=0.2).set_callbacks(monitor)
    _fit_quietly(clf, X, y)

    rows = monitor.get_logs().data
    epochs = [row["accuracy"] for row in rows if row["task_name"] == "epoch"]
    (fit,) = [row["accuracy"] for row in rows if row["task_name"] == "fit"]
    assert len(epochs) == 4
    assert fit == epochs[-1] == clf.score(X, y)
    for n_epochs in (1, 2):
        shorter = _fit_quietly(_clf(max_iter=n_epochs, dropout=0.2), X, y)
        assert epochs[n_epochs - 1] == shorter.score(X, y)


def test_sklearn_progress_bar(sklearn_callback, capsys):
    pytest.importorskip("rich", reason="sklearn's ProgressBar needs rich")
    clf = _clf(max_iter=3).set_callbacks(sklearn_callback.ProgressBar())
    _fit_quietly(clf, X, y)
    out = capsys.readouterr().out
    assert re.search(r"TorchMLPClassifier - fit.*100%", out)


def test_sklearn_progress_bar_through_grid_search(sklearn_callback, capsys):
    pytest.importorskip("rich", reason="sklearn's ProgressBar needs rich")
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(_clf(max_iter=2), {"alpha": [1e-4, 1e-2]}, cv=2)
    search.set_callbacks(sklearn_callback.ProgressBar(max_propagation_depth=None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    out = capsys.readouterr().out
    assert "GridSearchCV - fit" in out
    assert "TorchMLPClassifier - fit #3" in out  # 2 candidates x 2 folds
