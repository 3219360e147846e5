"""Exceptions and warnings raised by mixedfx."""

from __future__ import annotations

import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside mixedfx.

    For a warning raised deep in code that many entry points share (a label
    check reached from ``lmm``, ``glmm``, the estimators and Dask): call it in
    the function that calls :func:`warnings.warn`.
    """
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class MixedFXError(ValueError):
    """Base class for errors about a user's input."""


class FormulaError(MixedFXError):
    """A model formula that mixedfx cannot read."""


class DataError(MixedFXError):
    """Data that cannot be used as given (missing column, NaN, bad labels)."""


class ModelFileError(MixedFXError):
    """A saved model file that is unreadable, tampered or of an unknown version."""


class MixedFXWarning(UserWarning):
    """Base class for mixedfx warnings."""


class SingularFitWarning(MixedFXWarning):
    """The fit is on the boundary: a variance is zero or a correlation is +/-1."""


class ConvergenceWarning(MixedFXWarning):
    """The optimizer stopped without reaching its tolerance."""


class RankDeficiencyWarning(MixedFXWarning):
    """Columns of the fixed-effects design were dropped as redundant."""


class NewLevelWarning(MixedFXWarning):
    """New data holds grouping levels that training never saw."""


class GivenWarning(MixedFXWarning):
    """``given`` rows that probably do not do what was meant.

    Groups that no row of the new data belongs to (often labels written
    differently), or exact copies of training rows (which would count twice).
    """


class MissingDataWarning(MixedFXWarning):
    """Training rows with NaN, inf or missing labels were dropped (``missing="drop"``)."""
