"""The demo: the situation in which people first need a mixed model for prediction.

100 stores with 5 weekly sales each, two predictors (price and promotion), a
store effect (random intercept), simulated with a fixed seed. We fit on the
first 3 weeks of every store, then

1. compare held-out error on weeks 4-5 of the known stores: fixed effects
   only against predictions with each store's BLUP;
2. open a new store, observe its first 3 weeks, and predict weeks 4-5 from
   them (``given``), with a prediction interval, without refitting;
3. draw ``demo.png``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import NewLevelWarning
from .fit import lmm

FORMULA = "sales ~ price + promo + (1 | store)"


def simulate(n_stores: int = 100, n_weeks: int = 5, seed: int = 20261125) -> pd.DataFrame:
    """Weekly sales of stores: ``sales = 50 - 4 price + 6 promo + store + noise``.

    Store effects have sd 8, the noise sd 3: stores differ a lot, so knowing a
    store's own level matters.
    """
    rng = np.random.default_rng(seed)
    store = np.repeat(np.arange(n_stores), n_weeks)
    week = np.tile(np.arange(1, n_weeks + 1), n_stores)
    price = rng.uniform(2.0, 6.0, size=store.size)
    promo = rng.binomial(1, 0.3, size=store.size).astype(float)
    effect = rng.normal(0.0, 8.0, size=n_stores)
    sales = 50.0 - 4.0 * price + 6.0 * promo + effect[store] + rng.normal(0.0, 3.0, store.size)
    return pd.DataFrame(
        {
            "store": [f"S{s:03d}" for s in store],
            "week": week,
            "price": price,
            "promo": promo,
            "sales": sales,
        }
    )


@dataclass(frozen=True)
class DemoResult:
    """The numbers the demo prints."""

    rmse_fixed: float
    rmse_blup: float
    new_store: pd.DataFrame  # weeks 4-5 of the new store: observed and predicted with interval
    rmse_new_fixed: float
    rmse_new_given: float


def run(out: str | None = "demo.png", verbose: bool = True) -> DemoResult:
    """Run the demo; print its story and write the figure to ``out`` (None: no figure)."""
    data = simulate()
    train, test = data[data.week <= 3], data[data.week > 3]
    m = lmm(FORMULA, train)
    say = print if verbose else (lambda *a, **k: None)
    say(m.summary())
    fixed = m.predict(test, re="none")
    blup = m.predict(test)
    rmse_fixed = float(np.sqrt(np.mean((test.sales.to_numpy() - fixed) ** 2)))
    rmse_blup = float(np.sqrt(np.mean((test.sales.to_numpy() - blup) ** 2)))
    say("\nHeld-out weeks 4-5 of the 100 known stores (RMSE):")
    say(f"  fixed effects only : {rmse_fixed:6.2f}")
    say(f"  with store BLUPs   : {rmse_blup:6.2f}   ({rmse_blup / rmse_fixed:.0%} of fixed-only)")

    newstore = simulate(n_stores=1, seed=7).assign(store="NEW")
    first3, later = newstore[newstore.week <= 3], newstore[newstore.week > 3]
    pi = m.predict(later, given=first3, interval="prediction", level=0.9)
    with warnings.catch_warnings():  # a new store is the point here, not a label mismatch
        warnings.simplefilter("ignore", NewLevelWarning)
        pop = m.predict(later, interval="prediction", level=0.9)
    table = pd.DataFrame(
        {
            "week": later.week.to_numpy(),
            "observed": later.sales.to_numpy(),
            "fixed_only": pop["fit"].to_numpy(),
            "given_3": pi["fit"].to_numpy(),
            "lower90": pi["lower"].to_numpy(),
            "upper90": pi["upper"].to_numpy(),
        }
    )
    obs = later.sales.to_numpy()
    rmse_new_fixed = float(np.sqrt(np.mean((obs - pop["fit"].to_numpy()) ** 2)))
    rmse_new_given = float(np.sqrt(np.mean((obs - pi["fit"].to_numpy()) ** 2)))
    say("\nA new store, predicted from its first 3 weeks (given=, no refit), 90% interval:")
    say(table.round(2).to_string(index=False))
    say(
        f"  population interval width {float((pop['upper'] - pop['lower']).mean()):.1f}, "
        f"after 3 weeks {float((pi['upper'] - pi['lower']).mean()):.1f}"
    )
    if out is not None:
        _figure(m, test, fixed, blup, newstore, pi, pop, out)
        say(f"\nwrote {out}")
    return DemoResult(rmse_fixed, rmse_blup, table, rmse_new_fixed, rmse_new_given)


def _figure(
    m: object,
    test: pd.DataFrame,
    fixed: np.ndarray,
    blup: np.ndarray,
    newstore: pd.DataFrame,
    pi: pd.DataFrame,
    pop: pd.DataFrame,
    out: str,
) -> None:
    try:
        # a bare Figure renders to a file without pyplot, so the demo leaves the
        # caller's backend and open figures alone (e.g. in a notebook)
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is in the dev and plot extras
        print("matplotlib is not installed: pip install 'mixedfx[plot]' for demo.png")
        return
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    lo, hi = float(test.sales.min()), float(test.sales.max())
    ax1.scatter(test.sales, fixed, s=10, alpha=0.5, label="fixed effects only")
    ax1.scatter(test.sales, blup, s=10, alpha=0.7, label="with store BLUP")
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax1.set(
        xlabel="observed sales (held-out weeks 4-5)",
        ylabel="predicted",
        title="Known stores: the BLUP carries each store's level",
    )
    ax1.legend()
    weeks = newstore.week.to_numpy()
    later = weeks > 3
    ax2.scatter(weeks[~later], newstore.sales[~later], color="k", label="observed (given)")
    ax2.scatter(
        weeks[later],
        newstore.sales[later],
        color="k",
        marker="x",
        s=60,
        label="observed (to predict)",
    )
    w = weeks[later]
    ax2.errorbar(
        w - 0.05,
        pop["fit"],
        yerr=[pop["fit"] - pop["lower"], pop["upper"] - pop["fit"]],
        fmt="o",
        color="tab:blue",
        capsize=4,
        label="new store, no data (90%)",
    )
    ax2.errorbar(
        w + 0.05,
        pi["fit"],
        yerr=[pi["fit"] - pi["lower"], pi["upper"] - pi["fit"]],
        fmt="o",
        color="tab:orange",
        capsize=4,
        label="given first 3 weeks (90%)",
    )
    ax2.set(xlabel="week", ylabel="sales", title="A new store predicted from 3 weeks")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
