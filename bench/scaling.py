"""Dask scaling: fit ``y ~ x + (1 | user) + (1 | item)`` at 1M, 4M, 16M rows.

Synthetic data (20,000 users, 2,000 items) are written once as Parquet
partitions of 1M rows to a temporary directory; each size reads the first
k partitions. Every fit runs through a LocalCluster of 2 single-threaded
worker processes. While it runs, a sampler on the client asks every worker
for its resident memory (psutil, via ``client.run``) a few times a second.

Reported per size: wall time of the fit (both passes plus the optimizer on
the client), time per row, the time of the optimizer alone, the time to
score every row with the BLUPs (``m.predict(ddf)``, summed on the workers),
the peak RSS per worker during the fit (and, in the JSON, during scoring),
split into pass 1 (learning the design) and pass 2 (the blocks; the workers
idle while the optimizer runs), and the client's peak RSS. Written to
bench/results/scaling.json.

Usage: python bench/scaling.py --millions 1 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

USERS, ITEMS = 20_000, 2_000
ROWS_PER_PART = 1_000_000
FORMULA = "y ~ x + (1 | user) + (1 | item)"
RESULTS = Path(__file__).parent / "results" / "scaling.json"


def write_partitions(directory: Path, nparts: int, seed: int = 2025) -> list[Path]:
    """Write ``nparts`` Parquet files of ROWS_PER_PART rows each; returns their paths."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, 0.8, USERS)
    v = rng.normal(0.0, 0.5, ITEMS)
    paths = []
    for k in range(nparts):
        r = np.random.default_rng([seed, k])
        user = r.integers(0, USERS, ROWS_PER_PART)
        item = r.integers(0, ITEMS, ROWS_PER_PART)
        x = r.normal(size=ROWS_PER_PART)
        y = 1.0 + 0.5 * x + u[user] + v[item] + r.normal(0.0, 1.0, ROWS_PER_PART)
        frame = pd.DataFrame({"y": y, "x": x, "user": user, "item": item})
        path = directory / f"part-{k:03d}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class MemorySampler:
    """Peak RSS per worker, sampled from a client thread while a block runs.

    Every sample is kept (``timeline``: time, worker, RSS) so that peaks can
    be split by phase (:meth:`peak_between`).
    """

    def __init__(self, client: object, interval: float = 0.1) -> None:
        self.client = client
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.first: dict[str, int] = {}
        self.timeline: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for worker, rss in self.client.run(_rss).items():  # type: ignore[attr-defined]
            self.peak[worker] = max(self.peak.get(worker, 0), rss)
            self.timeline.append((time.perf_counter(), worker, rss))

    def peak_between(self, start: float, stop: float) -> float:
        """The largest worker RSS (MB) sampled between two ``perf_counter`` times."""
        rss = [r for t, _, r in self.timeline if start <= t <= stop]
        return max(rss) / 2**20 if rss else float("nan")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - a sample lost while workers are busy
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._sample()
        self.first = dict(self.peak)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def fit_once(client: object, paths: list[Path]) -> dict[str, float]:
    """Fit on the given partitions; times, memory and the estimates."""
    import dask.dataframe as dd

    import mixedfx as mfx
    import mixedfx.distributed.fit as dfit

    phases: dict[str, tuple[float, float]] = {}  # name -> (start, stop), perf_counter
    real: dict[str, Callable[..., Any]] = {
        "learn": dfit.learn,
        "fold": dfit.fold,
        "fit_model": dfit.fit_model,
    }

    def timed(name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = real[name](*args, **kwargs)
            phases[name] = (start, time.perf_counter())
            return out

        return run

    for name in real:
        setattr(dfit, name, timed(name))
    try:
        ddf = dd.read_parquet([str(p) for p in paths])
        with MemorySampler(client) as mem:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = mfx.lmm(FORMULA, ddf)
            total = time.perf_counter() - start
        # score every row with the BLUPs: a lazy series, reduced on the workers
        with MemorySampler(client) as scoring_mem:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                checksum = float(model.predict(ddf).sum().compute())
            predict_s = time.perf_counter() - start
    finally:
        for name, func in real.items():
            setattr(dfit, name, func)
    rows = len(paths) * ROWS_PER_PART
    optimize_s = phases["fit_model"][1] - phases["fit_model"][0] if "fit_model" in phases else 0.0
    pass1 = phases.get("learn", (0.0, -1.0))
    pass2 = phases.get("fold", (0.0, -1.0))
    return {
        "rows": rows,
        "partitions": len(paths),
        "fit_s": total,
        "us_per_row": 1e6 * total / rows,
        "optimize_s": optimize_s if "fit_model" in phases else float("nan"),
        "passes_us_per_row": 1e6 * (total - optimize_s) / rows,
        "peak_worker_rss_mb": {w: m / 2**20 for w, m in sorted(mem.peak.items())},
        "max_worker_rss_mb": max(mem.peak.values()) / 2**20,
        "pass1_max_worker_rss_mb": mem.peak_between(*pass1),
        "pass2_max_worker_rss_mb": mem.peak_between(*pass2),
        "idle_worker_rss_mb": max(mem.first.values()) / 2**20,
        "client_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "predict_s": predict_s,
        "predict_us_per_row": 1e6 * predict_s / rows,
        "predict_sum": checksum,
        "predict_max_worker_rss_mb": max(scoring_mem.peak.values()) / 2**20,
        "feval": model.optsummary.feval,
        "theta": model.theta.tolist(),
        "beta": model.beta.tolist(),
        "sigma": model.sigma,
        "a21_nnz": int(getattr(model.blocks.A21, "nnz", model.blocks.A21.size)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--millions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="directory for the Parquet files")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from dask.distributed import Client, LocalCluster

    nparts = max(args.millions)
    workdir = Path(tempfile.mkdtemp(prefix="mixedfx-scaling-", dir=args.tmp))
    results = []
    try:
        start = time.perf_counter()
        paths = write_partitions(workdir, nparts)
        print(
            f"wrote {nparts} x {ROWS_PER_PART:,} rows to {workdir} in "
            f"{time.perf_counter() - start:.1f} s"
        )
        for millions in sorted(args.millions):
            # a fresh cluster per size: worker RSS never shrinks, so a reused worker
            # would report the previous size's peak
            cluster = LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            with cluster, Client(cluster) as client:
                res = fit_once(client, paths[:millions])
                results.append(res)
                print(
                    f"{res['rows']:>11,} rows  fit {res['fit_s']:7.1f} s  "
                    f"{res['us_per_row']:6.2f} us/row  (optimizer {res['optimize_s']:5.1f} s)  "
                    f"predict {res['predict_s']:6.1f} s  "
                    f"peak worker RSS {res['max_worker_rss_mb']:7.0f} MB "
                    f"(pass 1 {res['pass1_max_worker_rss_mb']:4.0f}, "
                    f"pass 2 {res['pass2_max_worker_rss_mb']:4.0f}, "
                    f"idle {res['idle_worker_rss_mb']:4.0f})  "
                    f"client {res['client_peak_rss_mb']:6.0f} MB",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _report(results, args)


def _report(results: list[dict], args: argparse.Namespace) -> None:
    print()
    print(
        f"{'rows':>12} {'fit s':>8} {'us/row':>8} {'passes us/row':>14} {'optimizer s':>12} "
        f"{'predict s':>10} {'peak MB/worker':>15} {'client MB':>10}"
    )
    for r in results:
        print(
            f"{r['rows']:>12,} {r['fit_s']:>8.1f} {r['us_per_row']:>8.2f} "
            f"{r['passes_us_per_row']:>14.2f} {r['optimize_s']:>12.1f} {r['predict_s']:>10.1f} "
            f"{r['max_worker_rss_mb']:>15.0f} {r['client_peak_rss_mb']:>10.0f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "formula": FORMULA,
        "users": USERS,
        "items": ITEMS,
        "rows_per_partition": ROWS_PER_PART,
        "workers": args.workers,
        "threads_per_worker": 1,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
