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
    """``MixedLMRegressor`` is imported on first use, so mixedfx does not import sklearn."""
    if name == "MixedLMRegressor":
        from .estimator import MixedLMRegressor

        return MixedLMRegressor
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
    "datasets",
    "lmm",
    "load",
]
