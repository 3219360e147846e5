"""Which models the inference functions take: linear mixed models, and GLMMs for ``anova``.

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
