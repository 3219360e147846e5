"""The benchmark cases: a registry of small functions, one per case.

A case function takes a ``Context`` (the peers asked for, a scratch
directory) and returns one task per peer (see ``peers.py``).  Everything the
function does before returning - loading data, writing CSVs, fitting the
model a prediction case needs - is setup and is not timed; only the tasks
are.  To add a case, write a function and decorate it with ``@case``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import peers
from peers import GlmmCase, StatsmodelsModel, Task

import mixedfx as mfx


@dataclass(frozen=True)
class Context:
    peers: tuple[str, ...]
    workdir: Path  # scratch space, e.g. for the CSVs that R reads
    timeout: float = 60.0  # seconds allowed for the single run of a peer too slow to repeat


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    repeats: int  # timed runs per peer
    quick_repeats: int  # timed runs with --quick
    build: Callable[[Context], dict[str, Task]]


CASES: dict[str, Case] = {}


def case(
    name: str, title: str, repeats: int, quick_repeats: int
) -> Callable[[Callable[[Context], dict[str, Task]]], Callable[[Context], dict[str, Task]]]:
    """Register a case function under `name`."""

    def register(
        build: Callable[[Context], dict[str, Task]],
    ) -> Callable[[Context], dict[str, Task]]:
        CASES[name] = Case(name, title, repeats, quick_repeats, build)
        return build

    return register


def fit_tasks(
    ctx: Context,
    name: str,
    formula: str,
    data: pd.DataFrame,
    reml: bool,
    statsmodels: StatsmodelsModel | str,
    statsmodels_timeout: float | None = None,
) -> dict[str, Task]:
    """Tasks that fit `formula` to `data` with each peer in `ctx`.

    `statsmodels` is statsmodels' spelling of the model, or the reason it has
    none; with `statsmodels_timeout` statsmodels runs once, in a subprocess.
    """
    tasks: dict[str, Task] = {}
    for peer in ctx.peers:
        reason = peers.missing(peer)
        if reason is not None:
            tasks[peer] = peers.Skip(reason)
        elif peer == "mixedfx":
            tasks[peer] = peers.mixedfx_fit(formula, data, reml)
        elif peer == "mixedlm":
            tasks[peer] = peers.mixedlm_fit(formula, data, reml)
        elif peer == "statsmodels":
            if isinstance(statsmodels, str):
                tasks[peer] = peers.Skip(statsmodels)
            else:
                tasks[peer] = peers.statsmodels_fit(statsmodels, data, reml, statsmodels_timeout)
        elif peer == "lme4":
            tasks[peer] = peers.lme4_fit(formula, data, reml, ctx.workdir, name)
    return tasks


def random_slopes_data(
    n_groups: int = 125_000, per_group: int = 4, seed: int = 20240601
) -> pd.DataFrame:
    """y ~ x + (x | g): intercept sd 1, slope sd 0.5, correlation 0.3, residual sd 1."""
    rng = np.random.default_rng(seed)
    sd = np.array([1.0, 0.5])
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    effects = rng.multivariate_normal(np.zeros(2), np.outer(sd, sd) * corr, size=n_groups)
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.standard_normal(g.size)
    noise = rng.standard_normal(g.size)
    y = 1.0 + 2.0 * x + effects[g, 0] + effects[g, 1] * x + noise
    return pd.DataFrame({"y": y, "x": x, "g": g})


# --- fit cases: formula to fitted model, design construction included -----------


@case(
    "sleepstudy",
    title="sleepstudy, REML: Reaction ~ Days + (Days | Subject)",
    repeats=30,
    quick_repeats=5,
)
def sleepstudy(ctx: Context) -> dict[str, Task]:
    return fit_tasks(
        ctx,
        "sleepstudy",
        "Reaction ~ Days + (Days | Subject)",
        mfx.datasets.load("sleepstudy"),
        reml=True,
        statsmodels=StatsmodelsModel("Reaction ~ Days", groups="Subject", re_formula="~Days"),
    )


@case(
    "insteval",
    title="InstEval, ML: y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
    repeats=3,
    quick_repeats=1,
)
def insteval(ctx: Context) -> dict[str, Task]:
    return fit_tasks(
        ctx,
        "insteval",
        "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
        mfx.datasets.load("insteval"),
        reml=False,
        statsmodels="n/a (no crossed effects)",
    )


@case(
    "big",
    title="synthetic, REML: y ~ x + (x | g), 125,000 groups, 500,000 rows",
    repeats=3,
    quick_repeats=1,
)
def big(ctx: Context) -> dict[str, Task]:
    # statsmodels loops over the groups in Python: measured at well over 200 s per fit.
    return fit_tasks(
        ctx,
        "big",
        "y ~ x + (x | g)",
        random_slopes_data(),
        reml=True,
        statsmodels=StatsmodelsModel("y ~ x", groups="g", re_formula="~x"),
        statsmodels_timeout=ctx.timeout,
    )


@case(
    "big_strings",
    title="the same with string labels ('g0' ... 'g124999', pandas' default string dtype)",
    repeats=3,
    quick_repeats=1,
)
def big_strings(ctx: Context) -> dict[str, Task]:
    data = random_slopes_data()
    data["g"] = "g" + data["g"].astype(str)  # pandas 3: Arrow-backed "str"; before: object
    return fit_tasks(
        ctx,
        "big_strings",
        "y ~ x + (x | g)",
        data,
        reml=True,
        statsmodels=StatsmodelsModel("y ~ x", groups="g", re_formula="~x"),
        statsmodels_timeout=ctx.timeout,
    )


def singular_crossed_data(
    n: int = 30_000, users: int = 1_500, items: int = 200, seed: int = 20261202
) -> pd.DataFrame:
    """Users x items, no slope variance (a singular fit for ``(x | u)``), item sd 0.3."""
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.standard_normal(n)
    effects = rng.standard_normal(users)[u] + 0.3 * rng.standard_normal(items)[i]
    y = 1.0 + 0.5 * x + effects + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "u": u, "i": i})


@case(
    "singular",
    title="synthetic, REML, a boundary (singular) fit: y ~ x + (x | u) + (1 | i), 30,000 rows",
    repeats=5,
    quick_repeats=1,
)
def singular(ctx: Context) -> dict[str, Task]:
    return fit_tasks(
        ctx,
        "singular",
        "y ~ x + (x | u) + (1 | i)",
        singular_crossed_data(),
        reml=True,
        statsmodels="n/a (no crossed effects)",
    )


def three_slopes_data(groups: int = 400, seed: int = 20261202) -> pd.DataFrame:
    """``(x + z | g)``: 2 to 12 rows per group, every variance away from 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), rng.integers(2, 13, size=groups))
    x, z, e = rng.standard_normal((3, len(g)))
    b = rng.standard_normal((groups, 3)) * [1.0, 0.5, 0.3]
    y = 1.0 + x + 0.5 * z + b[g, 0] + b[g, 1] * x + b[g, 2] * z + e
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g})


@case(
    "midsize",
    title="synthetic, REML, a mid-size model: y ~ x + z + (x + z | g), 400 groups",
    repeats=20,
    quick_repeats=3,
)
def midsize(ctx: Context) -> dict[str, Task]:
    return fit_tasks(
        ctx,
        "midsize",
        "y ~ x + z + (x + z | g)",
        three_slopes_data(),
        reml=True,
        statsmodels=StatsmodelsModel("y ~ x + z", groups="g", re_formula="~x + z"),
    )


# --- GLMM fit cases: Laplace, lme4's two stages ------------------------------------


def glmm_tasks(ctx: Context, name: str, model: GlmmCase, data: pd.DataFrame) -> dict[str, Task]:
    """Tasks that fit the GLMM `model` to `data` with each peer (statsmodels has none)."""
    tasks: dict[str, Task] = {}
    for peer in ctx.peers:
        reason = peers.missing(peer)
        if reason is not None:
            tasks[peer] = peers.Skip(reason)
        elif peer == "mixedfx":
            tasks[peer] = peers.mixedfx_glmm(model, data)
        elif peer == "mixedlm":
            tasks[peer] = peers.mixedlm_glmer(model, data)
        elif peer == "statsmodels":
            tasks[peer] = peers.Skip("n/a (no Laplace GLMM; BinomialBayesMixedGLM is Bayes)")
        elif peer == "lme4":
            tasks[peer] = peers.lme4_glmer(model, data, ctx.workdir, name)
    return tasks


def bernoulli_slopes_data(n_groups: int = 5_000, n: int = 100_000, seed: int = 1) -> pd.DataFrame:
    """y ~ x + (x | g), Bernoulli, logit: intercept sd 0.8, slope sd 0.4."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n)
    x = rng.standard_normal(n)
    b = rng.standard_normal((n_groups, 2)) * [0.8, 0.4]
    eta = -0.3 + 0.6 * x + b[g, 0] + b[g, 1] * x
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": g})


@case(
    "cbpp",
    title="cbpp, binomial Laplace: incidence/size ~ period + (1 | herd), weights size",
    repeats=10,
    quick_repeats=3,
)
def cbpp(ctx: Context) -> dict[str, Task]:
    data = mfx.datasets.load("cbpp").assign(prop=lambda d: d.incidence / d["size"])
    model = GlmmCase("prop ~ period + (1 | herd)", "binomial", "size")
    return glmm_tasks(ctx, "cbpp", model, data)


@case(
    "bernoulli_big",
    title="synthetic Bernoulli, Laplace: y ~ x + (x | g), 5,000 groups, 100,000 rows",
    repeats=3,
    quick_repeats=1,
)
def bernoulli_big(ctx: Context) -> dict[str, Task]:
    model = GlmmCase("y ~ x + (x | g)", "binomial")
    return glmm_tasks(ctx, "bernoulli_big", model, bernoulli_slopes_data())


# --- prediction cases: a fitted model (setup, not timed) applied to new rows -----


def known_group_rows(data: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` new rows of groups seen in `data` (group drawn at random, x fresh)."""
    rng = np.random.default_rng(seed)
    groups = data["g"].to_numpy()
    return pd.DataFrame({"x": rng.standard_normal(n), "g": rng.choice(groups, size=n)})


def prediction_tasks(
    ctx: Context,
    name: str,
    newdata: pd.DataFrame,
    interval: str | None,
    data: pd.DataFrame,
) -> dict[str, Task]:
    """Predict `newdata` with the BLUPs of the `big` model fitted to `data` (once per peer)."""
    formula = "y ~ x + (x | g)"
    tasks: dict[str, Task] = {}
    for peer in ctx.peers:
        reason = peers.missing(peer)
        if reason is not None:
            tasks[peer] = peers.Skip(reason)
        elif peer == "mixedfx":
            tasks[peer] = peers.mixedfx_predict(formula, data, newdata, interval)
        elif peer == "mixedlm":
            # mixedlm's intervals took over 300 s per call here: one run, with a time limit
            timeout = ctx.timeout if interval is not None else None
            tasks[peer] = peers.mixedlm_predict(formula, data, newdata, interval, timeout)
        elif peer == "statsmodels":
            tasks[peer] = peers.Skip("n/a (predict ignores the random effects)")
        elif peer == "lme4":
            if interval is None:
                tasks[peer] = peers.lme4_predict(formula, data, newdata, ctx.workdir, name)
            else:
                tasks[peer] = peers.Skip("n/a (predict.merMod has no intervals)")
    return tasks


@case(
    "predict_1m",
    title="predict 1,000,000 rows of known groups with the BLUPs (model: big)",
    repeats=5,
    quick_repeats=2,
)
def predict_1m(ctx: Context) -> dict[str, Task]:
    data = random_slopes_data()
    return prediction_tasks(ctx, "predict_1m", known_group_rows(data, 1_000_000, 1), None, data)


@case(
    "confidence_100k",
    title="confidence intervals for 100,000 rows of known groups (model: big)",
    repeats=5,
    quick_repeats=2,
)
def confidence_100k(ctx: Context) -> dict[str, Task]:
    data = random_slopes_data()
    new = known_group_rows(data, 100_000, 2)
    return prediction_tasks(ctx, "confidence_100k", new, "confidence", data)


@case(
    "condition_10k",
    title="condition on 10,000 new groups of 5 rows each, no refit (model: big)",
    repeats=5,
    quick_repeats=2,
)
def condition_10k(ctx: Context) -> dict[str, Task]:
    rng = np.random.default_rng(3)
    n_new, per = 10_000, 5
    g = np.repeat(np.arange(n_new), per) + 10_000_000  # labels unseen in training
    x = rng.standard_normal(g.size)
    effects = rng.standard_normal((n_new, 2)) * [1.0, 0.5]
    y = 1.0 + 2.0 * x + effects[g - 10_000_000, 0] + effects[g - 10_000_000, 1] * x
    given = pd.DataFrame({"y": y + rng.standard_normal(g.size), "x": x, "g": g})
    tasks: dict[str, Task] = {}
    for peer in ctx.peers:
        reason = peers.missing(peer)
        if reason is not None:
            tasks[peer] = peers.Skip(reason)
        elif peer == "mixedfx":
            tasks[peer] = peers.mixedfx_condition("y ~ x + (x | g)", random_slopes_data(), given)
        else:
            tasks[peer] = peers.Skip("n/a (no BLUPs from new rows without a refit)")
    return tasks
