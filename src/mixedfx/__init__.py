"""mixedfx: linear mixed models with lme4's numbers that predict with the random effects."""

from __future__ import annotations

from . import datasets, family
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    MissingDataWarning,
    MixedFXError,
    MixedFXWarning,
    ModelFileError,
    NewLevelWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .fit import lmm
from .glmm import glmm
from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel
from .modelfile import load

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """The estimators are imported on first use, so mixedfx does not import sklearn."""
    if name == "MixedLMRegressor":
        from .estimator import MixedLMRegressor

        return MixedLMRegressor
    if name in ("MixedGLMClassifier", "MixedPoissonRegressor"):
        from . import glm_estimator

        return getattr(glm_estimator, name)
    raise AttributeError(f"module 'mixedfx' has no attribute {name!r}")


__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "GeneralizedLinearMixedModel",
    "LinearMixedModel",
    "MixedGLMClassifier",
    "MixedLMRegressor",
    "MixedPoissonRegressor",
    "MissingDataWarning",
    "MixedFXError",
    "MixedFXWarning",
    "ModelFileError",
    "NewLevelWarning",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "datasets",
    "family",
    "glmm",
    "lmm",
    "load",
]
