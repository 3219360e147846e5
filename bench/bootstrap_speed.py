"""Parametric bootstrap throughput: refits per second, wall clock and per CPU second.

    python bench/bootstrap_speed.py            # sleepstudy and a 10k-row model, 200 refits each

Cases: sleepstudy ``Reaction ~ Days + (Days | Subject)`` (180 rows, 18
subjects) and a simulated ``y ~ x + (x | g)`` with 10,000 rows in 500
groups. Each is run with ``n_jobs=1`` (one process: refits per CPU second,
robust to other load on the machine) and ``n_jobs=-1`` (joblib over all cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import mixedfx as mfx


def ten_thousand_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 500, 10_000)
    x = rng.normal(size=len(g))
    b0, b1 = rng.normal(0, 1.0, 500), rng.normal(0, 0.5, 500)
    y = 2.0 + 0.3 * x + b0[g] + b1[g] * x + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="refits per case")
    args = parser.parse_args()
    cases = {
        "sleepstudy (Days | Subject), 180 rows": mfx.lmm(
            "Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy")
        ),
        "(x | g), 10k rows, 500 groups": mfx.lmm("y ~ x + (x | g)", ten_thousand_rows()),
    }
    print("| case | jobs | refits/s (wall) | refits per CPU s (this process) | failed |")
    print("|---|---:|---:|---:|---:|")
    for name, m in cases.items():
        m.bootstrap(5, progress=False, n_jobs=1)  # warm up imports and caches
        for jobs in (1, -1):
            wall, cpu = time.perf_counter(), time.process_time()
            b = m.bootstrap(args.n, seed=1, progress=False, n_jobs=jobs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            per_cpu = f"{args.n / cpu:.0f}" if jobs == 1 else "n/a"
            print(f"| {name} | {jobs} | {args.n / wall:.0f} | {per_cpu} | {b.n_failed} |")


if __name__ == "__main__":
    main()
