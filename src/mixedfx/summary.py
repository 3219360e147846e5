"""An lme4-style printable summary of a fitted model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

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


def _pvalue(p: float) -> str:
    """As R's ``format.pval``: 3 significant digits, ``<2e-16`` below machine precision."""
    return "<2e-16" if p < 2.2e-16 else f"{p:.3g}"


def fixed_effects(m: LinearMixedModel) -> list[str]:
    """The fixed-effects table, with lmerTest's Satterthwaite df and p-values.

    A conditioned model has no fit of its own to differentiate: its table has
    no df or p-values.
    """
    se = np.sqrt(np.diag(m.vcov_beta))
    if m.conditioned:
        rows = [["", "Estimate", "Std. Error", "t value"]]
        for name, est, s in zip(m.spec.fixed_names, m.beta, se, strict=True):
            rows.append([name, f"{est:.4f}", f"{s:.4f}", f"{est / s:.3f}" if s > 0 else "NA"])
        return ["Fixed effects:", _table([[r[0], "", *r[1:]] for r in rows])]
    table = m.coef_table("satterthwaite")
    rows = [["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]]
    for label, r in table.iterrows():
        rows.append(
            [
                str(label),
                f"{r['estimate']:.4f}",
                f"{r['se']:.4f}",
                f"{r['df']:.2f}",
                f"{r['t']:.3f}",
                _pvalue(float(r["p"])),
            ]
        )
    return [
        "Fixed effects (t-tests use Satterthwaite's method for the df, as lmerTest):",
        _table([[r[0], "", *r[1:]] for r in rows]),
    ]


def wald_z(m: MixedModel) -> list[str]:
    """The fixed-effects table of a GLMM: Wald z tests, as lme4's ``summary(glmer)``."""
    from scipy.stats import norm  # lazily: importing mixedfx does not import scipy.stats

    se = np.sqrt(np.diag(m.vcov_beta))
    rows = [["", "Estimate", "Std. Error", "z value", "Pr(>|z|)"]]
    for name, est, s in zip(m.spec.fixed_names, m.beta, se, strict=True):
        if s > 0:
            z = est / s
            rows.append(
                [name, f"{est:.4f}", f"{s:.4f}", f"{z:.3f}", _pvalue(2.0 * norm.sf(abs(z)))]
            )
        else:
            rows.append([name, f"{est:.4f}", f"{s:.4f}", "NA", "NA"])
    return ["Fixed effects:", _table([[r[0], "", *r[1:]] for r in rows])]


def render(m: LinearMixedModel) -> str:
    """The summary text: criterion, variance components, fixed effects, flags."""
    kind = "REML" if m.reml else "maximum likelihood"
    lines = [f"Linear mixed model fit by {kind}", f"Formula: {m.spec.formula}", ""]
    crit = "REML criterion" if m.reml else "deviance"
    lines.append(
        f"{crit}: {m.objective:.4f}   logLik: {m.loglik:.4f}   AIC: {m.aic:.4f}   BIC: {m.bic:.4f}"
    )
    return "\n".join(lines + _body(m, fixed_effects(m)))


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
    columns = {"weights": m.outcome.weights, "offset": m.spec.offset_column}
    lines += [f"{k}: {v}" for k, v in columns.items() if v is not None]
    lines += [
        "",
        f"-2 log L: {m.objective:.4f}   logLik: {m.loglik:.4f}   AIC: {m.aic:.4f}   "
        f"BIC: {m.bic:.4f}",
    ]
    return "\n".join(lines + _body(m, wald_z(m)))


def _body(m: MixedModel, fixed: list[str]) -> list[str]:
    """Variance components, the fixed-effects table ``fixed`` and the flags."""
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
    lines.extend(fixed)
    if m.spec.dropped:
        lines.append(f"fixed-effect columns dropped as rank deficient: {list(m.spec.dropped)}")
    if m.singular:
        lines.append("boundary (singular) fit: a variance is zero or a correlation is +/-1")
    if not m.converged:
        lines.append(f"optimizer did not converge: {m.optsummary.status}")
    return lines
