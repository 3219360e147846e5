"""An lme4-style printable summary of a fitted model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm

if TYPE_CHECKING:
    from .base import MixedModel
    from .glmm_model import GeneralizedLinearMixedModel
    from .model import LinearMixedModel


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def render(m: LinearMixedModel) -> str:
    """The summary text: criterion, variance components, fixed effects, flags."""
    kind = "REML" if m.reml else "maximum likelihood"
    lines = [f"Linear mixed model fit by {kind}", f"Formula: {m.spec.formula}", ""]
    crit = "REML criterion" if m.reml else "deviance"
    lines.append(
        f"{crit}: {m.objective:.4f}   logLik: {m.loglik:.4f}   AIC: {m.aic:.4f}   BIC: {m.bic:.4f}"
    )
    return "\n".join(lines + _body(m, "t value"))


def render_glmm(m: GeneralizedLinearMixedModel) -> str:
    """The summary of a GLMM: family, -2 log L, variance components, Wald z tests, flags."""
    if m.nagq == 0:
        how = "maximum likelihood (nAGQ = 0: fixed effects in penalized IRLS)"
    elif m.nagq == 1:
        how = "maximum likelihood (Laplace approximation)"
    else:
        how = f"maximum likelihood (adaptive Gauss-Hermite quadrature, nAGQ = {m.nagq})"
    lines = [
        f"Generalized linear mixed model fit by {how}",
        f"Family: {m.family.name} ( {m.family.link.name} )",
        f"Formula: {m.spec.formula}",
    ]
    columns = {"weights": m.outcome.weights, "offset": m.outcome.offset}
    lines += [f"{k}: {v}" for k, v in columns.items() if v is not None]
    lines += [
        "",
        f"-2 log L: {m.objective:.4f}   logLik: {m.loglik:.4f}   AIC: {m.aic:.4f}   "
        f"BIC: {m.bic:.4f}",
    ]
    return "\n".join(lines + _body(m, "z value"))


def _body(m: MixedModel, stat: str) -> list[str]:
    """Variance components, fixed effects (with Wald p-values for z) and the flags."""
    lines = ["", "Random effects:"]
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    vc = m.varcorr
    for _, r in vc[vc["term2"].isna()].iterrows():
        corr = vc[
            (vc["group"] == r["group"]) & (vc["term1"] != r["term1"]) & (vc["term2"] == r["term1"])
        ]["correlation"]
        rows.append(
            [
                str(r["group"]),
                "" if pd.isna(r["term1"]) else str(r["term1"]),
                f"{r['variance']:.4g}",
                f"{r['sd']:.4g}",
                " ".join(f"{c:.2f}" for c in corr),
            ]
        )
    lines.append(_table(rows))
    groups = ", ".join(f"{t.group}, {t.nlevels}" for t in m.spec.terms)
    lines.append(f"Number of obs: {m.nobs}, groups: {groups}")
    if m.conditioned:
        lines.append(
            f"Random effects conditioned on {m.nobs_given} given rows "
            "(parameters and criterion are the fit's)"
        )
    lines.append("")
    lines.append("Fixed effects:")
    se = np.sqrt(np.diag(m.vcov_beta))
    head = ["", "Estimate", "Std. Error", stat] + (["Pr(>|z|)"] if stat == "z value" else [])
    rows = [head]
    for name, est, s in zip(m.spec.fixed_names, m.beta, se, strict=True):
        z = est / s if s > 0 else np.nan
        row = [name, f"{est:.4f}", f"{s:.4f}", f"{z:.3f}" if s > 0 else "NA"]
        if stat == "z value":
            row.append(f"{2.0 * norm.sf(abs(z)):.3g}" if s > 0 else "NA")
        rows.append(row)
    lines.append(_table([[r[0], "", *r[1:]] for r in rows]).replace("  ", " ", 0))
    if m.spec.dropped:
        lines.append(f"fixed-effect columns dropped as rank deficient: {list(m.spec.dropped)}")
    if m.singular:
        lines.append("boundary (singular) fit: a variance is zero or a correlation is +/-1")
    if not m.converged:
        lines.append(f"optimizer did not converge: {m.optsummary.status}")
    return lines
