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
from peers import StatsmodelsModel, Task

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
