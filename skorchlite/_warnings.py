"""Warnings attributed to the line that called fit, not to our own frames."""

import inspect
import os
import sys
import warnings

import sklearn.base
import sklearn.model_selection._search
import sklearn.model_selection._search_successive_halving

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# sklearn's _fit_context decorator wraps fit and partial_fit in a frame of its
# own; the batched searches run inside the sklearn search's _run_search.
_WRAPPER_FILES = {
    inspect.getfile(module)
    for module in (
        sklearn.base,
        sklearn.model_selection._search,
        sklearn.model_selection._search_successive_halving,
    )
}


def _is_ours(frame):
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE_DIR) or filename in _WRAPPER_FILES


def warn_at_caller(message, category=UserWarning):
    """``warnings.warn`` with the stack level of the first frame outside skorchlite.

    The same warning is raised from different call depths (fit, partial_fit,
    the batched search), so a fixed ``stacklevel`` would point at our code or
    at a decorator's frame.
    """
    frame, stacklevel = sys._getframe(1), 2
    while frame is not None and _is_ours(frame):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
