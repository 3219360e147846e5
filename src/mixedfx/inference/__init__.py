"""Inference for fitted linear mixed models: intervals, tests, simulation and resampling.

One module per method:

* :mod:`~mixedfx.inference.varpar`: the fit's objective, ML refits and cached
  derivatives of the deviance over the variance parameters;
* :mod:`~mixedfx.inference.satterthwaite` and
  :mod:`~mixedfx.inference.kenward_roger`: denominator degrees of freedom
  (lmerTest's and pbkrtest's);
* :mod:`~mixedfx.inference.coeftable`: the fixed-effects table with df and p;
* :mod:`~mixedfx.inference.wald` and :mod:`~mixedfx.inference.profile`:
  confidence intervals (lme4's ``confint``);
* :mod:`~mixedfx.inference.anova`: likelihood-ratio tests of nested models;
* :mod:`~mixedfx.inference.simulate`: new responses from the fitted model;
* :mod:`~mixedfx.inference.bootstrap`: the parametric bootstrap (lme4's ``bootMer``);
* :mod:`~mixedfx.inference.uncertainty`: prediction intervals that include the
  uncertainty of theta (bootstrap draws or the Hessian);
* :mod:`~mixedfx.inference.crossval`: cross-validation by prediction mode;
* :mod:`~mixedfx.inference.tidy`: broom.mixed-style ``tidy`` and ``glance``.

Everything here is specific to linear mixed models (Gaussian response,
profiled sigma); a GLMM counterpart would live beside it.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``anova`` and ``cross_validate``, imported on first use (they import scipy.stats)."""
    if name == "anova":
        from .anova import anova

        return anova
    if name == "cross_validate":
        from .crossval import cross_validate

        return cross_validate
    raise AttributeError(f"module 'mixedfx.inference' has no attribute {name!r}")


__all__ = ["anova", "cross_validate"]
