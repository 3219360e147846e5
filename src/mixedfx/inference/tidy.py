"""Tidy outputs in broom.mixed's spirit: a row per parameter (``tidy``) or per model (``glance``).

``tidy`` columns: ``effect`` ("fixed" or "ran_pars"), ``group`` (the grouping
factor, "Residual" for sigma, None for fixed effects), ``term`` (broom.mixed's
``sd__(Intercept)``, ``cor__(Intercept).Days``, ``sd__Observation``, or the
fixed effect's name), ``estimate``, ``std_error``, ``statistic``, ``df``,
``p_value`` (fixed effects: lmerTest's Satterthwaite table) and, with
``conf_int=True``, ``conf_low`` and ``conf_high`` (``conf_method``, Wald by
default as broom.mixed: NaN for the variance parameters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..engine.sdcor import to_sdcor
from .scope import require_lmm

if TYPE_CHECKING:
    from ..model import LinearMixedModel


def ran_pars(model: LinearMixedModel) -> pd.DataFrame:
    """The sd/cor rows, in confint's order (:mod:`mixedfx.inference.confint`)."""
    psi = to_sdcor(model.spec.layout, model.theta, model.sigma)
    rows = []
    for t, (r, c) in zip(model.spec.terms, model.spec.layout.index, strict=True):
        for i, j in zip(r, c, strict=True):
            term = f"sd__{t.columns[i]}" if i == j else f"cor__{t.columns[j]}.{t.columns[i]}"
            rows.append(dict(effect="ran_pars", group=t.group, term=term))
    rows.append(dict(effect="ran_pars", group="Residual", term="sd__Observation"))
    frame = pd.DataFrame(rows)
    frame["estimate"] = psi
    return frame


def tidy(
    model: LinearMixedModel,
    conf_int: bool = False,
    level: float = 0.95,
    conf_method: str = "wald",
) -> pd.DataFrame:
    """See the module docstring."""
    require_lmm(model, "tidy")
    table = model.coef_table() if not model.conditioned else model.coef_table("none")
    fixed = pd.DataFrame(
        {
            "effect": "fixed",
            "group": None,
            "term": list(table.index),
            "estimate": table["estimate"].to_numpy(),
            "std_error": table["se"].to_numpy(),
            "statistic": table["t"].to_numpy(),
            "df": table["df"].to_numpy(),
            "p_value": table["p"].to_numpy(),
        }
    )
    out = pd.concat([fixed, ran_pars(model)], ignore_index=True)
    if conf_int:
        ci = model.confint(conf_method, level)
        nvar = len(ci) - len(model.beta)
        order = np.r_[np.arange(nvar, len(ci)), np.arange(nvar)]  # fixed first, as tidy
        out["conf_low"] = ci["lower"].to_numpy()[order]
        out["conf_high"] = ci["upper"].to_numpy()[order]
    return out


def glance(model: LinearMixedModel) -> pd.DataFrame:
    """One row: nobs, sigma, loglik, aic, bic, the criterion, df_residual, reml, singular."""
    require_lmm(model, "glance")
    return pd.DataFrame(
        [
            dict(
                nobs=model.nobs,
                sigma=model.sigma,
                loglik=model.loglik,
                aic=model.aic,
                bic=model.bic,
                objective=model.objective,
                df_residual=model.nobs - model.npar,
                reml=model.reml,
                singular=model.singular,
                converged=model.converged,
            )
        ]
    )
