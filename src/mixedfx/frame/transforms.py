"""Stateful transforms: what ``scale()``, ``poly()`` and categorical variables learn from data.

Each is learned from a *partial* computed on some rows (:class:`Moments` of
a numeric expression, :class:`Distinct` values of a categorical one), and
partials of adjacent rows combine exactly, so a Dask frame learns the same
state partition by partition as memory does from the whole frame:

* ``scale(x, center = TRUE, scale = TRUE)`` (R's): ``(x - c) / s`` with
  ``c`` the training mean and ``s = sqrt(sum((x - c)^2) / (n - 1))``;
  ``center``/``scale`` may be FALSE or a number.
* ``poly(x, d)``: R's orthogonal polynomials, with the coefficients of
  its three-term recurrence (``alpha``, ``norm2``, as ``attr(, "coefs")``)
  learned from the central moments of ``x`` up to order ``2d``;
  ``P_0 = 1``, ``P_1 = x - alpha_1``,
  ``P_{k+1} = (x - alpha_{k+1}) P_k - (norm2_{k+2} / norm2_{k+1}) P_{k-1}``,
  and column ``k`` is ``P_k / sqrt(norm2_{k+2})``.
* a categorical variable: its levels, in lme4's order (see
  :func:`mixedfx.frame.levels.encode`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd

from ..errors import DataError
from . import levels as lv
from .syntax import r_number

MAX_POLY_DEGREE = 8


@dataclass(frozen=True)
class Levels:
    """The levels of a categorical variable, by the label policy of :mod:`~.levels`.

    Attributes
    ----------
    labels : tuple
        The distinct training labels as found, in lme4's order: exact within
        the training frame (``"01"``, ``"1"`` and ``1`` are three levels),
        matched by value across frames (:class:`mixedfx.frame.levels.Levels`).
    ordered : bool
        An ordered factor (polynomial contrasts, as R's ``contr.poly``).
    """

    labels: tuple[object, ...]
    ordered: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The levels as R prints them: ``"b"``, ``"2"``, ``"2.5"``, ``"TRUE"``.

        Distinct levels that R would print alike (``1`` and ``"1"`` of one
        object column) are told apart by Python's ``repr``: ``1`` and ``'1'``.
        """
        names = [r_label(v) for v in self.labels]
        seen = pd.Series(names).duplicated(keep=False).to_numpy()
        return tuple(
            repr(v) if twice else n for v, n, twice in zip(self.labels, names, seen, strict=True)
        )

    @functools.cached_property
    def index(self) -> lv.Levels:
        return lv.Levels(lv.as_array(self.labels))

    def codes(self, values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Level index of each value, shape (n,), and the distinct values training never saw.

        Codes are :data:`~mixedfx.frame.levels.UNSEEN` (-1) for a label training
        never saw and :data:`~mixedfx.frame.levels.MISSING` (-2) where missing.
        """
        return lv.lookup(values, self.index, name)


@dataclass(frozen=True)
class Scale:
    """``(x - center) / scale``; None means not centred / not scaled."""

    center: float | None
    scale: float | None

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = x if self.center is None else x - self.center
        return out if self.scale is None else out / self.scale


@dataclass(frozen=True)
class Poly:
    """R's orthogonal polynomial of degree ``len(alpha)``: its recurrence coefficients."""

    alpha: tuple[float, ...]
    norm2: tuple[float, ...]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Columns 1..d of the polynomial at ``x``, shape (n, d) (R's ``predict`` of poly)."""
        d = len(self.alpha)
        Z = np.empty((len(x), d + 1))
        Z[:, 0] = 1.0
        Z[:, 1] = x - self.alpha[0]
        for i in range(1, d):
            ratio = self.norm2[i + 1] / self.norm2[i]
            Z[:, i + 1] = (x - self.alpha[i]) * Z[:, i] - ratio * Z[:, i - 1]
        return Z[:, 1:] / np.sqrt(np.asarray(self.norm2[2:]))


State = Levels | Scale | Poly


def r_label(value: object) -> str:
    """A level as R's ``as.character`` prints it."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return r_number(float(value))
    return str(value)


# -- partials ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moments:
    """Count, mean and central power sums ``S_p = sum (x - mean)^p``, p = 0..order."""

    n: int
    mean: float
    sums: np.ndarray  # shape (order + 1,)

    @classmethod
    def of(cls, x: np.ndarray, order: int) -> Moments:
        x = x[np.isfinite(x)]
        if not len(x):
            return cls(0, 0.0, np.zeros(order + 1))
        mean = float(np.mean(x))
        d = x - mean
        return cls(len(x), mean, np.array([np.sum(d**p) for p in range(order + 1)]))

    def about(self, c: float) -> np.ndarray:
        """Power sums about ``c``: ``sum (x - c)^p``, from the central ones."""
        shift = self.mean - c
        order = len(self.sums) - 1
        return np.array(
            [
                sum(comb(p, j) * self.sums[j] * shift ** (p - j) for j in range(p + 1))
                for p in range(order + 1)
            ]
        )

    def then(self, other: Moments) -> Moments:
        """The moments of these rows and ``other``'s together (Pebay's pairwise update)."""
        if other.n == 0 or self.n == 0:
            return self if other.n == 0 else other
        n = self.n + other.n
        mean = self.mean + (other.mean - self.mean) * (other.n / n)
        return Moments(n, mean, self.about(mean) + other.about(mean))


@dataclass(frozen=True)
class Distinct:
    """The distinct non-missing values of a categorical variable, in order of appearance."""

    values: pd.Series

    @classmethod
    def of(cls, values: pd.Series) -> Distinct:
        return cls(values.dropna().drop_duplicates().reset_index(drop=True))

    def then(self, other: Distinct) -> Distinct:
        both = pd.concat([self.values, other.values], ignore_index=True)
        if (
            isinstance(self.values.dtype, pd.CategoricalDtype)
            and self.values.dtype == other.values.dtype
        ):
            both = both.astype(self.values.dtype)
        return Distinct(both.drop_duplicates().reset_index(drop=True))


# -- states from partials -----------------------------------------------------------------------
def learn_levels(key: str, part: Distinct) -> Levels:
    """The levels of a categorical variable from its distinct values."""
    values = part.values
    if (
        values.dtype == object
        and len(values)
        and all(isinstance(v, bool | np.bool_) for v in values)
    ):
        values = values.astype(bool)
    elif isinstance(values.dtype, pd.BooleanDtype):
        values = values.astype(bool)
    if not len(values):
        raise DataError(f"categorical variable {key!r} has no values")
    _, labels = lv.encode(values, key)
    ordered = isinstance(values.dtype, pd.CategoricalDtype) and bool(values.dtype.ordered)
    return Levels(tuple(_python(v) for v in labels), ordered)


def _python(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def learn_scale(key: str, m: Moments, center: bool | float, scale: bool | float) -> Scale:
    """R's ``scale()`` constants from the moments of its argument."""
    if m.n < 2 and scale is True:
        raise DataError(f"{key}: scale() needs two or more rows")
    c: float | None
    if center is True:
        c = m.mean
    elif center is False:
        c = None
    else:
        c = float(center)
    s: float | None
    if scale is True:
        s = float(np.sqrt(m.about(0.0 if c is None else c)[2] / (m.n - 1)))
        if not (np.isfinite(s) and s > 0):
            raise DataError(
                f"{key}: the values are constant (scale 0); scale() cannot divide by it"
            )
    elif scale is False:
        s = None
    else:
        s = float(scale)
    return Scale(c, s)


def learn_poly(key: str, m: Moments, degree: int) -> Poly:
    """R's ``poly(x, degree)`` coefficients from the central moments of ``x`` up to ``2 degree``.

    The monic orthogonal polynomials are built in ``u = (x - mean) / sd``
    (Stieltjes' procedure on the moments, well conditioned for moderate
    degrees) and their coefficients mapped back to ``x``.
    """
    if m.n <= degree or m.sums[2] <= 0:
        raise DataError(
            f"{key}: the degree must be less than the number of distinct values of the variable"
        )
    s = float(np.sqrt(m.sums[2] / m.n))
    mu = np.zeros(2 * degree + 2)  # moments of u; the last is never used (zero coefficient)
    mu[: 2 * degree + 1] = m.sums[: 2 * degree + 1] / s ** np.arange(2 * degree + 1)
    hankel = np.add.outer(np.arange(degree + 1), np.arange(degree + 1))
    prev, cur = np.zeros(degree + 1), np.eye(degree + 1)[0]
    norms: list[float] = []
    alphas: list[float] = []
    for k in range(degree + 1):
        norms.append(float(cur @ mu[hankel] @ cur))
        if norms[-1] <= 1e-10 * m.n:
            raise DataError(
                f"{key}: the degree must be less than the number of distinct values of the variable"
            )
        if k == degree:
            break
        alphas.append(float(cur @ mu[hankel + 1] @ cur) / norms[-1])
        nxt = np.roll(cur, 1) - alphas[-1] * cur
        if k:
            nxt = nxt - (norms[-1] / norms[-2]) * prev
        prev, cur = cur, nxt
    alpha = tuple(m.mean + s * a for a in alphas)
    norm2 = (1.0, *(s ** (2 * k) * v for k, v in enumerate(norms)))
    return Poly(alpha, norm2)
