"""mixedfx: linear mixed models with lme4's numbers that predict with the random effects."""

from __future__ import annotations

from . import datasets, family
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
from .glmm import glmm
from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel
from .modelfile import load

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """The estimators, ``anova`` and ``cross_validate`` are imported on first use.

    So ``import mixedfx`` imports neither sklearn nor scipy.stats.
    """
    if name == "MixedLMRegressor":
        from .estimator import MixedLMRegressor

        return MixedLMRegressor
    if name in ("MixedGLMClassifier", "MixedPoissonRegressor"):
        from . import glm_estimator

        return getattr(glm_estimator, name)
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
    "GeneralizedLinearMixedModel",
    "GivenWarning",
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
    "anova",
    "cross_validate",
    "datasets",
    "family",
    "glmm",
    "lmm",
    "load",
]
