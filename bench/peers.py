"""How each peer fits a model, as tasks the harness in ``run.py`` can time.

A case (see ``cases.py``) asks this module for one task per peer.  A task is
one of three things:

``InProcess``
    A callable that does the timed work once and returns a number to
    cross-check between peers (for a fit: the REML criterion or the deviance,
    as lme4 reports it).  The harness warms it up once and times it, its
    calls interleaved with the other peers' calls.  With ``timeout`` set it
    is too slow to repeat: the harness runs it once, in a subprocess that is
    killed after ``timeout`` seconds.
``SelfTimed``
    A peer that times itself in another process (lme4 in R): called with the
    number of warm-up and timed runs, it returns the run times and the check
    value.
``Skip``
    The peer cannot run this case; ``reason`` says why.

The adapters import their peer when the task is built, so imports are never
timed and a missing peer only skips its own rows.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PEERS = ("mixedfx", "statsmodels", "mixedlm", "lme4")

R_SCRIPT = Path(__file__).with_name("lme4_fit.R")
R_PREDICT = Path(__file__).with_name("lme4_predict.R")
R_GLMER = Path(__file__).with_name("lme4_glmer.R")
R_TIMEOUT_S = 3600.0  # a safety net only: a hung R must not hang the benchmark


@dataclass(frozen=True)
class InProcess:
    run: Callable[[], float]
    timeout: float | None = None


@dataclass(frozen=True)
class SelfTimed:
    run: Callable[[int, int], SelfTiming]  # (warm-up runs, timed runs) -> timing


@dataclass(frozen=True)
class Skip:
    reason: str


Task = InProcess | SelfTimed | Skip


@dataclass(frozen=True)
class SelfTiming:
    seconds: list[float]
    check: float


@dataclass(frozen=True)
class StatsmodelsModel:
    """statsmodels' spelling of a model with one grouping factor."""

    fixed: str  # e.g. "Reaction ~ Days"
    groups: str  # the grouping column
    re_formula: str  # e.g. "~Days"


# --- availability -------------------------------------------------------------


def missing(peer: str) -> str | None:
    """Why `peer` cannot run on this machine, or None when it can."""
    if peer == "lme4":
        return None if r_has_lme4() else "n/a (Rscript with lme4 not found)"
    module = {"mixedfx": "mixedfx", "statsmodels": "statsmodels", "mixedlm": "mixedlm"}[peer]
    if importlib.util.find_spec(module) is None:
        return f"n/a ({module} not installed)"
    return None


@functools.cache
def r_has_lme4() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(lme4)"], capture_output=True, timeout=120, check=False
    )
    return probe.returncode == 0


def version(peer: str) -> str | None:
    """The installed version of `peer`, or None when it is not available."""
    if missing(peer) is not None:
        return None
    if peer == "lme4":
        out = subprocess.run(
            [
                "Rscript",
                "-e",
                'cat(format(packageVersion("lme4")), " (", R.version.string, ")", sep = "")',
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return out.stdout.strip() or None
    return importlib.metadata.version(peer)


# --- fit adapters -------------------------------------------------------------


def mixedfx_fit(formula: str, data: pd.DataFrame, reml: bool) -> Task:
    import mixedfx as mfx

    def fit() -> float:
        return float(mfx.lmm(formula, data, reml=reml).objective)

    return InProcess(fit)


def mixedlm_fit(formula: str, data: pd.DataFrame, reml: bool) -> Task:
    import mixedlm

    def fit() -> float:
        # LmerResult.deviance is the minimised objective: REML criterion or ML deviance.
        return float(mixedlm.lmer(formula, data, REML=reml).deviance)

    return InProcess(fit)


def statsmodels_fit(
    model: StatsmodelsModel, data: pd.DataFrame, reml: bool, timeout: float | None = None
) -> Task:
    import statsmodels.formula.api as smf

    def fit() -> float:
        result = smf.mixedlm(
            model.fixed, data, groups=model.groups, re_formula=model.re_formula
        ).fit(reml=reml)
        # statsmodels reports the (restricted) log-likelihood; -2 llf is lme4's objective.
        return -2.0 * float(result.llf)

    return InProcess(fit, timeout=timeout)


def lme4_fit(formula: str, data: pd.DataFrame, reml: bool, workdir: Path, name: str) -> Task:
    """lmer in R, on the same data written to a CSV; R times the lmer calls only."""
    csv = workdir / f"{name}.csv"
    data.to_csv(csv, index=False)
    factors = [col for col in data.columns if not pd.api.types.is_numeric_dtype(data[col])]

    def run(warmup: int, repeats: int) -> SelfTiming:
        args = [str(csv), formula, "TRUE" if reml else "FALSE", ",".join(factors)]
        return run_r(R_SCRIPT, [*args, str(warmup), str(repeats)], check="objective")

    return SelfTimed(run)


def run_r(script: Path, args: list[str], check: str) -> SelfTiming:
    """Run an R timing script; it prints ``times_s <t1> <t2> ...`` and ``<check> <value>``."""
    out = subprocess.run(
        ["Rscript", str(script), *args],
        capture_output=True,
        text=True,
        timeout=R_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"Rscript failed: {out.stderr.strip()[-500:]}")
    fields = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    return SelfTiming(
        seconds=[float(s) for s in fields["times_s"].split()], check=float(fields[check])
    )


# --- GLMM fit adapters: the check value is -2 log L (Laplace), as lme4's logLik --------


@dataclass(frozen=True)
class GlmmCase:
    """A GLMM to fit: formula in plain columns, family, optional prior-weights column."""

    formula: str
    family: str  # "binomial" or "poisson"
    weights: str | None = None


def mixedfx_glmm(model: GlmmCase, data: pd.DataFrame) -> Task:
    import mixedfx as mfx

    def fit() -> float:
        m = mfx.glmm(model.formula, data, family=model.family, weights=model.weights)
        return float(m.objective)

    return InProcess(fit)


def mixedlm_glmer(model: GlmmCase, data: pd.DataFrame) -> Task:
    import mixedlm

    family = {"binomial": mixedlm.families.Binomial, "poisson": mixedlm.families.Poisson}
    fam = family[model.family]()

    def fit() -> float:
        result = mixedlm.glmer(model.formula, data, family=fam, weights=model.weights)
        return -2.0 * float(result.logLik().value)

    return InProcess(fit)


def lme4_glmer(model: GlmmCase, data: pd.DataFrame, workdir: Path, name: str) -> Task:
    """glmer in R on the same data written to a CSV; R times the glmer calls only."""
    csv = workdir / f"{name}.csv"
    data.to_csv(csv, index=False)
    factors = [col for col in data.columns if not pd.api.types.is_numeric_dtype(data[col])]

    def run(warmup: int, repeats: int) -> SelfTiming:
        args = [str(csv), model.formula, model.family, model.weights or "", ",".join(factors)]
        return run_r(R_GLMER, [*args, str(warmup), str(repeats)], check="objective")

    return SelfTimed(run)


# --- prediction adapters: the model is fitted when the task is built (not timed) ---


def mixedfx_predict(
    formula: str, data: pd.DataFrame, newdata: pd.DataFrame, interval: str | None
) -> Task:
    import mixedfx as mfx

    model = mfx.lmm(formula, data)

    def predict() -> float:
        if interval is None:
            return float(model.predict(newdata).sum())
        return float(model.predict(newdata, interval=interval)["se"].sum())

    return InProcess(predict)


def mixedlm_predict(
    formula: str,
    data: pd.DataFrame,
    newdata: pd.DataFrame,
    interval: str | None,
    timeout: float | None = None,
) -> Task:
    import mixedlm

    result = mixedlm.lmer(formula, data, REML=True)

    def predict() -> float:
        if interval is None:
            return float(result.predict(newdata).sum())
        out = result.predict(newdata, interval=interval, se_fit=True)
        return float(np.sum(out.se_fit))

    return InProcess(predict, timeout=timeout)


def mixedfx_condition(formula: str, data: pd.DataFrame, given: pd.DataFrame) -> Task:
    import mixedfx as mfx

    model = mfx.lmm(formula, data)

    def condition() -> float:
        return float(np.abs(model.condition(given).b[0]).sum())

    return InProcess(condition)


def lme4_predict(
    formula: str, data: pd.DataFrame, newdata: pd.DataFrame, workdir: Path, name: str
) -> Task:
    """predict.merMod in R: lmer is fitted untimed, only the predict calls are timed."""
    train, new = workdir / f"{name}_train.csv", workdir / f"{name}_new.csv"
    data.to_csv(train, index=False)
    newdata.to_csv(new, index=False)

    def run(warmup: int, repeats: int) -> SelfTiming:
        args = [str(train), str(new), formula, str(warmup), str(repeats)]
        return run_r(R_PREDICT, args, check="check")

    return SelfTimed(run)
