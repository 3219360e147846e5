"""mixedfx: linear mixed models with lme4's numbers that predict with the random effects."""

from __future__ import annotations

from . import datasets
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    GivenWarning,
    MissingDataWarning,
    MixedFXError,
    MixedFXWarning,
    ModelFileError,
    NewLevelWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .fit import lmm
from .model import LinearMixedModel
from .modelfile import load

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``MixedLMRegressor``, ``anova`` and ``cross_validate`` are imported on first use.

    So ``import mixedfx`` imports neither sklearn nor scipy.stats.
    """
    if name == "MixedLMRegressor":
        from .estimator import MixedLMRegressor

        return MixedLMRegressor
    if name == "anova":  # lazily: it imports scipy.stats
        from .inference.anova import anova

        return anova
    if name == "cross_validate":
        from .inference.crossval import cross_validate

        return cross_validate
    raise AttributeError(f"module 'mixedfx' has no attribute {name!r}")


__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "GivenWarning",
    "LinearMixedModel",
    "MixedLMRegressor",
    "MissingDataWarning",
    "MixedFXError",
    "MixedFXWarning",
    "ModelFileError",
    "NewLevelWarning",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "anova",
    "cross_validate",
    "datasets",
    "lmm",
    "load",
]
