"""Response distributions and link functions of generalized linear mixed models.

A family gives the conditional distribution of a response given its linear
predictor ``eta``: the mean is ``mu = linkinv(eta)``, the variance function
``V(mu)`` and the prior weights ``w`` give the working weights of penalized
IRLS, ``w_i mu_eta(eta_i)^2 / V(mu_i)``, and the log-likelihood and the
deviance residuals give the Laplace deviance (:mod:`mixedfx.engine.laplace`).

The functions follow lme4's C++ (``glmFamily.cpp``), including its clamps,
so that the numbers agree where a probability reaches 0 or 1: inverse links
stay within ``[eps, 1 - eps]`` (logit and probit: at most ``1 - eps``; the
log link at least ``eps``), ``mu_eta`` is at least ``eps`` (except probit's),
and the binomial variance ``mu (1 - mu)`` is at least ``eps``
(``eps = 2.2e-16``).

Binomial responses are proportions ``y`` in [0, 1] with ``m`` trials per row
(lme4's ``cbind(s, f)`` is ``y = s / (s + f)``, ``m = s + f``; a proportion
with ``weights = m`` is the same); a row's log-likelihood is
``(w / m) log dbinom(m y, m, mu)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)`` with its inverse and derivative.

    Every link here is increasing, so an interval for ``eta`` maps to one for
    ``mu`` through the inverse link.

    Attributes
    ----------
    name : str
        One of :data:`LINKS`.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in LINKS:
            raise ValueError(f"unknown link {self.name!r}; use one of {sorted(LINKS)}")

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """``eta = g(mu)``, elementwise."""
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "logit":
                return np.asarray(special.logit(mu))
            if self.name == "probit":
                return np.asarray(special.ndtri(mu))
            if self.name == "cloglog":
                return np.log(-np.log1p(-mu))
            return np.log(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """``mu = g^-1(eta)``, elementwise, clamped as lme4 does."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "logit":
            return np.minimum(special.expit(eta), 1.0 - EPS)
        if self.name == "probit":
            return np.minimum(special.ndtr(eta), 1.0 - EPS)
        if self.name == "cloglog":
            return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), EPS, 1.0 - EPS)
        return np.maximum(np.exp(np.minimum(eta, 700.0)), EPS)

    def mu_eta(self, eta: np.ndarray, mu: np.ndarray | None = None) -> np.ndarray:
        """``d mu / d eta``, elementwise (``mu = linkinv(eta)`` saves work when given)."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "logit":
            if mu is not None:
                return np.maximum(mu * (1.0 - mu), EPS)
            e = np.exp(-np.abs(eta))
            return np.maximum(e / (1.0 + e) ** 2, EPS)
        if self.name == "probit":
            return np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)
        if self.name == "cloglog":
            x = np.minimum(eta, 700.0)
            return np.maximum(np.exp(x - np.exp(x)), EPS)
        return mu.copy() if mu is not None else np.maximum(np.exp(np.minimum(eta, 700.0)), EPS)


LINKS = ("logit", "probit", "cloglog", "log")


@dataclass(frozen=True)
class Family:
    """A response distribution with a link.

    Attributes
    ----------
    name : {"binomial", "poisson"}
    link : Link
    """

    name: str
    link: Link

    def __post_init__(self) -> None:
        if self.name not in FAMILIES:
            raise ValueError(f"unknown family {self.name!r}; use one of {sorted(FAMILIES)}")
        if self.link.name not in FAMILIES[self.name]:
            raise ValueError(
                f"the {self.name} family takes the links {list(FAMILIES[self.name])}, "
                f"not {self.link.name!r}"
            )

    @property
    def binomial(self) -> bool:
        return self.name == "binomial"

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        return self.link.linkinv(eta)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """The variance function ``V(mu)``: ``mu (1 - mu)`` (at least eps) or ``mu``."""
        if self.binomial:
            return np.maximum(mu * (1.0 - mu), EPS)
        return np.asarray(mu, dtype=float)

    def kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The part of each row's log-likelihood that depends on ``mu``, shape (n,).

        Binomial ``w (y log mu + (1 - y) log(1 - mu))``, Poisson
        ``w (y log mu - mu)``: deviance residuals are
        ``2 (kernel(y, y, w) - kernel(y, mu, w))``.
        """
        if self.binomial:
            return w * (special.xlogy(y, mu) + special.xlogy(1.0 - y, 1.0 - mu))
        return w * (special.xlogy(y, mu) - mu)

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Deviance residuals (squared): ``2 w (l(y; y) - l(y; mu))`` per row, shape (n,)."""
        return 2.0 * (self.kernel(y, y, w) - self.kernel(y, mu, w))

    def loglik(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, m: np.ndarray) -> float:
        """The conditional log-likelihood ``sum_i log p(y_i | mu_i)`` (lme4's ``-aic / 2``).

        Parameters
        ----------
        y, mu, w : ndarray, shape (n,)
            Response, mean and prior weights.
        m : ndarray, shape (n,)
            Binomial trials (ignored for the Poisson family).
        """
        if self.binomial:
            trials = np.round(m)
            scale = np.divide(w, m, out=np.zeros_like(w), where=trials > 0)
            return float((scale * stats.binom.logpmf(np.round(m * y), trials, mu)).sum())
        return float((w * stats.poisson.logpmf(y, mu)).sum())

    def saturated(self, y: np.ndarray, w: np.ndarray, m: np.ndarray) -> float:
        """``-2`` times the log-likelihood of the saturated model (``mu = y``)."""
        return -2.0 * self.loglik(y, y, w, m)

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """R's starting means: ``(w y + 1/2) / (w + 1)`` (binomial) or ``y + 1/10`` (Poisson)."""
        if self.binomial:
            return (w * y + 0.5) / (w + 1.0)
        return y + 0.1

    def __str__(self) -> str:
        return f"{self.name}({self.link.name})"


FAMILIES = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}
CANONICAL = {"binomial": "logit", "poisson": "log"}


def make(name: str, link: str | None = None) -> Family:
    """The family ``name`` with ``link`` (its canonical link by default)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; use one of {sorted(FAMILIES)}")
    return Family(name, Link(CANONICAL[name] if link is None else link))
