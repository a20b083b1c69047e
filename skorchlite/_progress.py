"""Reporting the progress of the epoch loop.

The training loop talks to one :class:`Progress` object, which passes each
event on to its listeners:

* a display for ``verbose``: a live tqdm bar when stdout is a terminal or a
  notebook (:class:`EpochBar`), plain per-epoch lines otherwise, e.g. in logs and
  CI (:class:`EpochLog`);
* scikit-learn's callbacks (``set_callbacks``, scikit-learn >= 1.9), one
  sub-task per epoch (:class:`CallbackEpochs`).

Nothing here imports scikit-learn (the callback context is handed in) or
needs tqdm (the bar is used only where tqdm is installed).
"""

import copy
import sys

from ._engine.loop import EpochListener


def format_epoch(epoch, loss, validation, seconds):
    """The plain summary of an epoch: MLPClassifier's lines, then our extras.

    ``epoch`` counts the epochs of this fit call, as MLPClassifier's
    ``Iteration`` does; ``validation`` is ``(loss, score)`` or None.

    Examples
    --------
    >>> print(format_epoch(10, 0.31, (0.29, 0.96), 0.0042))
    Iteration 10, loss = 0.31000000, time = 0.004s
    Validation score: 0.960000, validation loss = 0.29000000
    """
    line = f"Iteration {epoch}, loss = {loss:.8f}, time = {seconds:.3f}s"
    if validation is not None:
        line += (
            f"\nValidation score: {validation[1]:f}, "
            f"validation loss = {validation[0]:.8f}"
        )
    return line


class Progress(EpochListener):
    """Passes the loop's events on to several listeners.

    Examples
    --------
    >>> progress = Progress([EpochLog(every=1)])
    >>> progress.start(max_epochs=3)
    >>> progress.epoch_end(1, 0.5, None, 0.01)
    Iteration 1, loss = 0.50000000, time = 0.010s
    False
    """

    def __init__(self, listeners=()):
        self.listeners = [listener for listener in listeners if listener is not None]

    def start(self, max_epochs):
        for listener in self.listeners:
            listener.start(max_epochs)

    def epoch_begin(self):
        for listener in self.listeners:
            listener.epoch_begin()

    def epoch_end(self, epoch, loss, validation, seconds):
        # Every listener hears of every epoch, even after one asked to stop.
        stops = [
            listener.epoch_end(epoch, loss, validation, seconds)
            for listener in self.listeners
        ]
        return any(stops)

    def message(self, text):
        for listener in self.listeners:
            listener.message(text)

    def close(self):
        for listener in self.listeners:
            listener.close()


class EpochLog(EpochListener):
    """Plain per-epoch lines on stdout, on the first and every ``every`` epochs."""

    def __init__(self, every=1):
        self.every = every

    def epoch_end(self, epoch, loss, validation, seconds):
        if epoch == 1 or epoch % self.every == 0:
            print(format_epoch(epoch, loss, validation, seconds), flush=True)
        return False

    def message(self, text):
        print(text, flush=True)


class EpochBar(EpochListener):
    """A live progress bar over the epochs of one fit, drawn by tqdm.

    It shows the epochs done out of ``max_epochs``, the elapsed and remaining
    time (an upper bound when a stopping rule may end training sooner), and the
    last loss, validation loss and validation accuracy.
    """

    def __init__(self, tqdm_class, description):
        self.tqdm_class = tqdm_class
        self.description = description
        self.bar = None

    def start(self, max_epochs):
        self.bar = self.tqdm_class(
            total=max_epochs,
            desc=self.description,
            unit="epoch",
            file=sys.stdout,
            dynamic_ncols=True,
            leave=True,
        )

    def epoch_end(self, epoch, loss, validation, seconds):
        postfix = {"loss": f"{loss:.4f}"}
        if validation is not None:
            postfix["val_loss"] = f"{validation[0]:.4f}"
            postfix["val_acc"] = f"{validation[1]:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update()
        return False

    def message(self, text):
        # Printed above the bar, which is redrawn below it.
        self.bar.write(text, file=sys.stdout)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def epoch_display(verbose, max_epochs, description):
    """The display that ``verbose`` asks for, where the output goes.

    A live bar needs tqdm, an interactive stdout (a terminal or a notebook)
    and more than one epoch to show; otherwise ``verbose`` gets plain lines.

    Returns
    -------
    EpochListener or None
        None when ``verbose`` is off.
    """
    if not verbose:
        return None
    if max_epochs > 1 and _interactive_stdout():
        tqdm_class = _tqdm_class()
        if tqdm_class is not None:
            return EpochBar(tqdm_class, description)
    return EpochLog(every=int(verbose))


def _interactive_stdout():
    try:
        if sys.stdout.isatty():
            return True
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return False
    # Jupyter's stdout is no terminal, but it renders live bars.
    return "ipykernel.zmqshell" in sys.modules


def _tqdm_class():
    try:
        # tqdm.auto draws a widget in notebooks and text in terminals.
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class CallbackEpochs(EpochListener):
    """Reports each epoch to scikit-learn's callbacks as a sub-task of the fit.

    Parameters
    ----------
    estimator : estimator
        The estimator being fitted.
    context : sklearn.callback.CallbackContext
        The context of the estimator's fit task.
    X, y : array-like
        The training data, passed on to the hooks.
    metadata : dict or None
        Training metadata (``sample_weight``), passed on to the hooks.
    module : torch.nn.Module
        The module being trained, for the hooks that ask for a fitted estimator
        as it is at the end of an epoch.
    """

    def __init__(self, estimator, context, X, y, metadata, module):
        self.estimator = estimator
        self.context = context
        self.X = X
        self.y = y
        self.metadata = metadata
        self.module = module
        self.epoch_context = None

    def epoch_begin(self):
        self.epoch_context = self.context.subcontext(task_name="epoch")
        self.epoch_context.call_on_fit_task_begin(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata
        )

    def epoch_end(self, epoch, loss, validation, seconds):
        def fitted_attributes():
            # Only built if a hook asks for a fitted estimator: the module is
            # training (dropout on), so the hook gets an inference-mode copy.
            return {
                "module_": copy.deepcopy(self.module).eval(),
                "n_iter_": epoch,
                "loss_": loss,
            }

        context, self.epoch_context = self.epoch_context, None
        return bool(
            context.call_on_fit_task_end(
                estimator=self.estimator,
                X=self.X,
                y=self.y,
                metadata=self.metadata,
                reconstruction_attributes=fitted_attributes,
            )
        )
