"""A dense, slow, obviously correct linear mixed model for differential tests.

V = Z G Z' + sigma^2 I, profile beta by GLS, minimise the profiled deviance
with a generic optimizer; everything with dense matrices and numpy.linalg.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

import mixedfx as mfx


def dense_z(m: mfx.LinearMixedModel, data: pd.DataFrame) -> np.ndarray:
    return m.design(data).Z.toarray()


def dense_lambda(m: mfx.LinearMixedModel, theta: np.ndarray) -> np.ndarray:
    """Block-diagonal Lambda(theta) in the column order of Z."""
    blocks = []
    for t, T in zip(m.spec.terms, m.spec.layout.Ts(theta), strict=True):
        blocks += [T] * t.nlevels
    size = sum(b.shape[0] for b in blocks)
    out = np.zeros((size, size))
    pos = 0
    for b in blocks:
        q = b.shape[0]
        out[pos : pos + q, pos : pos + q] = b
        pos += q
    return out


def profiled(
    theta: np.ndarray,
    m: mfx.LinearMixedModel,
    X: np.ndarray,
    Z: np.ndarray,
    y: np.ndarray,
    reml: bool,
) -> tuple[float, np.ndarray, float]:
    """Objective, beta and sigma at theta from V = Z Lambda Lambda' Z' + I (times sigma^2)."""
    n, p = X.shape
    Lam = dense_lambda(m, theta)
    V0 = Z @ Lam @ Lam.T @ Z.T + np.eye(n)
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    resid = y - X @ beta
    r2 = float(resid @ Vi @ resid)
    logdet = np.linalg.slogdet(V0)[1]
    if reml:
        dof = n - p
        obj = logdet + np.linalg.slogdet(XtViX)[1] + dof * (1 + np.log(2 * np.pi * r2 / dof))
        return obj, beta, np.sqrt(r2 / dof)
    return logdet + n * (1 + np.log(2 * np.pi * r2 / n)), beta, np.sqrt(r2 / n)


def refit(m: mfx.LinearMixedModel, data: pd.DataFrame) -> tuple[float, np.ndarray]:
    """Minimise the dense objective from the engine's optimum and from lme4's start."""
    X = m.design(data).X.to_numpy()
    Z = dense_z(m, data)
    y = m.spec.working_response(data)
    lower = m.spec.layout.lower()
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    best = None
    for start in (m.theta, m.spec.layout.start()):
        res = minimize(
            lambda th: profiled(th, m, X, Z, y, m.reml)[0], start, method="L-BFGS-B", bounds=bounds
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return float(best.fun), best.x


def mme_modes(m: mfx.LinearMixedModel, data: pd.DataFrame) -> np.ndarray:
    """b = Lambda (Lambda'Z'Z Lambda + I)^-1 Lambda'Z'(y - X beta), stacked like Z's columns."""
    return modes_at(m, data, m.theta, m.beta)


def modes_at(
    m: mfx.LinearMixedModel, data: pd.DataFrame, theta: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """The conditional modes b at (theta, beta) from ``data``'s rows, stacked like Z's columns."""
    X = m.design(data).X.to_numpy()
    Z = dense_z(m, data)
    y = m.spec.working_response(data)
    Lam = dense_lambda(m, theta)
    A = Lam.T @ Z.T @ Z @ Lam + np.eye(Lam.shape[0])
    u = np.linalg.solve(A, Lam.T @ Z.T @ (y - X @ beta))
    return Lam @ u


def predict_at(
    m: mfx.LinearMixedModel, train: pd.DataFrame, new: pd.DataFrame, theta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Dense objective at ``theta``, and the predictions of ``new`` with and without the
    random effects, all from the model's design (X, Z, response and offsets of the rows)."""
    X = m.design(train).X.to_numpy()
    obj, beta, _ = profiled(theta, m, X, dense_z(m, train), m.spec.working_response(train), m.reml)
    b = modes_at(m, train, theta, beta)
    d = m.design(new)
    fixed = d.X.to_numpy() @ beta + m.spec.offset(new)
    return obj, fixed + d.Z @ b, fixed


def henderson_se(m: mfx.LinearMixedModel, train: pd.DataFrame, new: pd.DataFrame) -> np.ndarray:
    """Confidence se of x'beta + z'b for rows of known levels, from a dense C^-1."""
    X = m.design(train).X.to_numpy()
    Z = dense_z(m, train)
    Lam = dense_lambda(m, m.theta)
    ZL = Z @ Lam
    C = np.block([[X.T @ X, X.T @ ZL], [ZL.T @ X, ZL.T @ ZL + np.eye(ZL.shape[1])]])
    Ci = np.linalg.inv(C)
    d = m.design(new)
    V = np.hstack([d.X.to_numpy(), d.Z.toarray() @ Lam])
    return m.sigma * np.sqrt(np.einsum("ni,ij,nj->n", V, Ci, V))


def term_covariances(m: mfx.LinearMixedModel) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per grouping factor: its columns and sigma^2 T T' (one term per factor here)."""
    out = {}
    for t, T in zip(m.spec.terms, m.Ts(), strict=True):
        out[t.group] = (list(t.columns), m.sigma**2 * T @ T.T)
    return out


def dense_predict(
    m: mfx.LinearMixedModel,
    train: pd.DataFrame,
    new: pd.DataFrame,
    included: set[tuple[str, str]],
    new_levels: str = "population",
    interval: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and their standard errors from dense matrices, by the definitions.

    ``included`` holds the (grouping factor, column) pairs of ``re``. The fit
    is ``x'beta + z_inc'b`` with b the dense mixed-model solution over ``train``
    (levels not in ``train`` contribute 0). The confidence variance is
    ``sigma^2 v'C^-1 v``, ``v = [x; Lambda'z_inc]``, plus ``m_inc' Sigma m_inc``
    for a new level; the prediction variance adds ``sigma^2``, the omitted
    columns' ``m_om' Sigma m_om`` for a known level and ``m'Sigma m - m_inc'Sigma m_inc``
    for a new one. Assumes single-factor terms and simple columns.
    """
    b = mme_modes(m, train)
    d = m.design(new)
    X, Z = d.X.to_numpy(), d.Z.toarray()
    keep = np.array([(name.split("[")[0], name.split("]:")[1]) in included for name in d.z_names])
    Zi = Z * keep
    fit = X @ m.beta + Zi @ b
    covs = term_covariances(m)
    unseen = {}
    for t in m.spec.terms:
        g = t.group
        known = {str(v) for v in train[g]}
        unseen[g] = np.array([str(v) not in known for v in new[g]])
    if new_levels == "nan":
        for g, cols in ((t.group, t.columns) for t in m.spec.terms):
            if any((g, c) in included for c in cols):
                fit = np.where(unseen[g], np.nan, fit)
    if interval is None:
        return fit, None
    Xt = m.design(train).X.to_numpy()
    Lam = dense_lambda(m, m.theta)
    ZL = dense_z(m, train) @ Lam
    C = np.block([[Xt.T @ Xt, Xt.T @ ZL], [ZL.T @ Xt, ZL.T @ ZL + np.eye(ZL.shape[1])]])
    V = np.hstack([X, Zi @ Lam])
    var = m.sigma**2 * np.einsum("ni,ij,nj->n", V, np.linalg.inv(C), V)
    for g, (cols, S) in covs.items():
        M = np.column_stack([np.ones(len(new)) if c == "(Intercept)" else new[c] for c in cols])
        inc = M * np.array([(g, c) in included for c in cols])
        full, part = (np.einsum("nq,qr,nr->n", A, S, A) for A in (M, inc))
        var = var + np.where(unseen[g], part, 0.0)
        if interval == "prediction":
            om = M - inc
            var = var + np.where(unseen[g], full - part, np.einsum("nq,qr,nr->n", om, S, om))
    if interval == "prediction":
        var = var + m.sigma**2
    se = np.sqrt(var)
    if new_levels == "nan":
        se = np.where(np.isnan(fit), np.nan, se)
    return fit, se
