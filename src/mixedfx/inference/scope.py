"""Which models the inference functions take: linear mixed models, and GLMMs for ``anova``.

Prior weights (``lmm(weights=)``) change the model's residual variance row
by row. Wald intervals, Satterthwaite's df and the summary read the
weighted fit's own covariances and deviance derivatives (the constant
``-sum log w`` of the criterion does not move them); the functions that
simulate responses, refit or profile the likelihood have not been checked
against lme4 with weights, so they refuse a weighted model by name
(:func:`require_unweighted`).

Satterthwaite and Kenward-Roger degrees of freedom, profile intervals over
``(theta, sigma)``, simulation of Gaussian responses, the parametric
bootstrap's refits and the uncertainty draws of theta are all built on the
LMM's profiled objective. None of them has a GLMM counterpart yet, so each
refuses a GLMM by name (:class:`NotImplementedError`) rather than return a
number computed under the wrong model. ``anova`` compares GLMMs as lme4 does
(see :mod:`mixedfx.inference.anova`).
"""

from __future__ import annotations

from typing import Any

GLMM_SAYS = (
    "for a GLMM, summary() gives lme4's Wald z tests, vcov the fixed effects' covariance "
    "and predict(..., interval=) plug-in intervals; mixedfx.anova compares nested GLMMs"
)


def not_for_glmm(function: str) -> NotImplementedError:
    """The error of an inference function called on a generalized linear mixed model."""
    return NotImplementedError(
        f"{function} is not implemented for generalized linear mixed models (it is built on "
        f"the linear mixed model's profiled likelihood); {GLMM_SAYS}"
    )


def require_lmm(model: Any, function: str) -> None:
    """Raise :func:`not_for_glmm` unless ``model`` is a linear mixed model."""
    from ..model import LinearMixedModel

    if not isinstance(model, LinearMixedModel):
        raise not_for_glmm(function)


def require_unweighted(model: Any, function: str) -> None:
    """:func:`require_lmm`, and no prior weights (NotImplementedError naming ``function``)."""
    require_lmm(model, function)
    if getattr(model, "weights", None) is not None:
        raise NotImplementedError(
            f"{function} is not implemented for a linear mixed model with prior weights "
            f"(lmm(weights={model.weights!r})) yet: it simulates, refits or profiles the "
            "unweighted likelihood; Wald intervals (confint('wald')) and Satterthwaite's "
            "coef_table work with weights"
        )
