"""Where pickles made before the engine package name its classes.

A pickle of an estimator whose ``module_`` the user changed holds torch
objects and our :class:`History` by reference, under this module's name
(commit 0e82c54 and earlier). Nothing else imports it.
"""

from ._engine.loop import History

__all__ = ["History"]
