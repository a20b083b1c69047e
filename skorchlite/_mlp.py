"""Where pickles made before the engine package name the dropout layer.

A pickle of an estimator whose ``module_`` the user changed holds its layers
by reference, our :class:`Dropout` under this module's name (commit 0e82c54
and earlier). Nothing else imports it.
"""

from ._engine.network import Dropout

__all__ = ["Dropout"]
