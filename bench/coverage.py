"""Coverage of 90 % intervals: plug-in vs parametric bootstrap vs Hessian draws of theta.

Data: ``y = 1 + 0.5 x + b_g + e`` with ``b_g ~ N(0, 1)``, ``e ~ N(0, 1)``,
``x ~ U(0, 4)``, ``ROWS`` rows per group and G = 5, 10, 30, 100 groups,
fitted by REML with ``y ~ x + (1 | g)``. Per replicate and scenario, ten
targets at new ``x``:

* ``known``: a new row of a training group;
* ``new``: one row of a group never seen;
* ``given``: a new group of which three rows are given; its fourth row.

For each, the ``confidence`` interval (target: the true conditional mean
``1 + 0.5 x + b_g``) and the ``prediction`` interval (target: a new ``y``)
from ``m.predict(..., level=0.9)`` with ``uncertainty="plugin"``, with the
bootstrap's draws (``m.bootstrap``; ``--boot`` refits, reflected through the
estimates as ``uncertainty="bootstrap"`` does) and with draws from the
Hessian of the profiled objective (``--hessian`` draws). The table gives the
share of targets covered (binomial standard error about
``sqrt(0.09 / (10 * reps))``; targets of one replicate share its estimates,
so the real error is larger).

    python bench/coverage.py              # 40 replicates per G, 100 refits: minutes on 2 cores
    python bench/coverage.py --full       # 400 replicates, 200 refits
"""

from __future__ import annotations

import argparse
import time
import warnings

import joblib
import numpy as np
import pandas as pd

import mixedfx as mfx
from mixedfx.inference.uncertainty import basic_draws, hessian_draws, predict_over_draws

ROWS = 5
TARGETS = 10
LEVEL = 0.9


def simulate(rng: np.random.Generator, groups: list[str], rows: int) -> pd.DataFrame:
    """Rows of the model for the given groups, with their true conditional means."""
    b = dict(zip(groups, rng.standard_normal(len(groups)), strict=True))
    g = np.repeat(groups, rows)
    x = rng.uniform(0, 4, len(g))
    mean = 1.0 + 0.5 * x + np.array([b[k] for k in g])
    return pd.DataFrame({"y": mean + rng.standard_normal(len(g)), "x": x, "g": g, "mean": mean})


def scenarios(rng: np.random.Generator, train: pd.DataFrame) -> dict[str, tuple]:
    """Per scenario: (rows to predict, given rows or None)."""
    b = train.groupby("g").apply(lambda d: (d["mean"] - 0.5 * d["x"] - 1.0).iloc[0])
    known = rng.choice(b.index.to_numpy(), TARGETS)
    x = rng.uniform(0, 4, TARGETS)
    mean = 1.0 + 0.5 * x + b[known].to_numpy()
    rows_known = pd.DataFrame(
        {"x": x, "g": known, "mean": mean, "y": mean + rng.standard_normal(TARGETS)}
    )
    rows_new = simulate(rng, [f"n{k}" for k in range(TARGETS)], 1)
    seen = simulate(rng, [f"s{k}" for k in range(TARGETS)], 4)
    first = seen.groupby("g").cumcount() < 3
    return {
        "known": (rows_known, None),
        "new": (rows_new, None),
        "given": (seen[~first], seen[first].drop(columns="mean")),
    }


def replicate(n_groups: int, seed: int, boot: int, n_hessian: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    train = simulate(rng, [f"g{k}" for k in range(n_groups)], ROWS)
    with warnings.catch_warnings():  # a benchmark script, not library code
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x + (1 | g)", train.drop(columns="mean"))
        b = m.bootstrap(boot, seed=seed, progress=False, n_jobs=1)
        draws = {
            "bootstrap": basic_draws(m, b),
            "hessian": hessian_draws(m, n_hessian, seed),
        }
        out = []
        for scenario, (rows, given) in scenarios(rng, train).items():
            for interval, target in (("confidence", "mean"), ("prediction", "y")):
                truth = rows[target].to_numpy()
                kw = dict(given=given, interval=interval, level=LEVEL)
                results = {"plugin": m.predict(rows, **kw)}
                for kind, d in draws.items():
                    results[kind] = predict_over_draws(
                        m, rows, "all", "population", given, interval, LEVEL, d
                    )
                for kind, r in results.items():
                    hit = (r["lower"].to_numpy() <= truth) & (truth <= r["upper"].to_numpy())
                    width = (r["upper"] - r["lower"]).to_numpy()
                    out.append(
                        dict(
                            G=n_groups,
                            scenario=scenario,
                            interval=interval,
                            method=kind,
                            covered=hit.mean(),
                            width=width.mean(),
                        )
                    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="400 replicates, 200 refits")
    parser.add_argument("--reps", type=int, help="replicates per number of groups")
    parser.add_argument("--boot", type=int, help="bootstrap refits per replicate")
    parser.add_argument("--hessian", type=int, default=100, help="Hessian draws per replicate")
    parser.add_argument("--groups", type=int, nargs="+", default=[5, 10, 30, 100])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    reps = args.reps or (400 if args.full else 40)
    boot = args.boot or (200 if args.full else 100)
    start = time.perf_counter()
    tasks = [(g, 1000 * g + r) for g in args.groups for r in range(reps)]
    chunks = joblib.Parallel(n_jobs=args.jobs)(
        joblib.delayed(replicate)(g, seed, boot, args.hessian) for g, seed in tasks
    )
    frame = pd.DataFrame([row for chunk in chunks for row in chunk])
    cov = frame.pivot_table(
        index=["scenario", "interval", "G"], columns="method", values="covered", aggfunc="mean"
    )[["plugin", "bootstrap", "hessian"]]
    width = frame.pivot_table(
        index=["scenario", "interval", "G"], columns="method", values="width", aggfunc="mean"
    )
    cov["width bootstrap / plugin"] = width["bootstrap"] / width["plugin"]
    print(
        f"coverage of {LEVEL:.0%} intervals, {reps} replicates x {TARGETS} targets per row, "
        f"{boot} bootstrap refits, {args.hessian} Hessian draws "
        f"({time.perf_counter() - start:.0f} s)\n"
    )
    print(markdown(cov))


def markdown(table: pd.DataFrame) -> str:
    """A pipe table of a frame with a MultiIndex, numbers to 3 decimals."""
    names = list(table.index.names) + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for key, row in table.iterrows():
        cells = [str(k) for k in key] + [f"{v:.3f}" for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
