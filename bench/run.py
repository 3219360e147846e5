"""Benchmark mixedfx against its peers: statsmodels, mixedlm and lme4 (R).

    python bench/run.py                      # all cases, all peers
    python bench/run.py --quick              # fewer timed runs
    python bench/run.py --cases sleepstudy --peers mixedfx,lme4 --repeats 10
    python bench/run.py --threads 1          # every BLAS (and Rust) pool limited to 1 thread
    python bench/run.py --threads 2 --load   # 2 threads, next to a CPU-bound process

For each case (``cases.py``) every in-process peer is warmed up once and then
timed ``repeats`` times, the peers' runs interleaved so that machine noise
hits all of them alike.  A peer too slow to repeat runs once in a subprocess
with a time limit; lme4 times its own lmer calls in R.  The Markdown table
goes to stdout, progress to stderr, and the results to
``bench/results/latest.json``.  Each row also shows the peer's objective
(REML criterion or deviance), the cross-check that all peers fit the same
model.  Nothing here asserts anything about the times.

``--threads N`` re-runs the harness with ``OPENBLAS_NUM_THREADS`` (and the
OpenMP, MKL, BLIS and rayon equivalents) set to N for every peer; mixedfx
then applies its own thread policy within that.  ``--load`` keeps one
CPU-bound process busy while the cases run, as a user's other work would.
The machine's load averages before and after each case go to the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import peers
from cases import CASES, Case, Context
from peers import PEERS, InProcess, SelfTimed, Skip, Task

RESULTS = Path(__file__).with_name("results") / "latest.json"
ROOT = Path(__file__).resolve().parent.parent
AGREEMENT = 1e-6  # relative difference in objective that counts as the same fit
BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


@dataclass
class Row:
    case: str
    peer: str
    status: str  # "ok", "skipped", "timeout" or "error"
    times_ms: list[float] = field(default_factory=list)
    objective: float | None = None
    note: str = ""
    limit_ms: float | None = None  # for "timeout": the time limit the run exceeded

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def min_ms(self) -> float | None:
        return min(self.times_ms) if self.times_ms else None


# --- timing -------------------------------------------------------------------


def timed(run: Callable[[], float]) -> tuple[float, float]:
    """Seconds taken by one call of `run`, and the value it returned."""
    start = time.perf_counter()
    check = run()
    return time.perf_counter() - start, check


def warm_up(run: Callable[[], float]) -> tuple[float, str]:
    """Call `run` once; return its value and the distinct warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check = run()
    messages = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
    return check, "; ".join(messages)


def quiet_timed(run: Callable[[], float]) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return timed(run)


def measure_case(case: Case, tasks: dict[str, Task], repeats: int) -> list[Row]:
    rows: dict[str, Row] = {}
    repeated: dict[str, Callable[[], float]] = {}
    for peer, task in tasks.items():
        if isinstance(task, Skip):
            rows[peer] = Row(case.name, peer, "skipped", note=task.reason)
        elif isinstance(task, InProcess) and task.timeout is None:
            repeated[peer] = task.run

    for peer, run in list(repeated.items()):
        progress(f"[{case.name}] {peer}: warm-up")
        try:
            check, note = warm_up(run)
        except Exception as exc:  # a failing peer is reported, not fatal
            rows[peer] = Row(case.name, peer, "error", note=f"{type(exc).__name__}: {exc}")
            del repeated[peer]
        else:
            rows[peer] = Row(case.name, peer, "ok", objective=check, note=note)

    order = list(repeated)
    for i in range(repeats if order else 0):
        progress(f"[{case.name}] timed run {i + 1}/{repeats}: {', '.join(order)}")
        for peer in order[i % len(order) :] + order[: i % len(order)]:
            seconds, _ = quiet_timed(repeated[peer])
            rows[peer].times_ms.append(1e3 * seconds)

    for peer, task in tasks.items():
        if isinstance(task, InProcess) and task.timeout is not None:
            progress(f"[{case.name}] {peer}: one run in a subprocess, limit {task.timeout:g} s")
            rows[peer] = run_isolated(case.name, peer, task.timeout)
        elif isinstance(task, SelfTimed):
            progress(f"[{case.name}] {peer}: 1 warm-up + {repeats} timed runs, self-timed")
            try:
                timing = task.run(1, repeats)
            except Exception as exc:
                rows[peer] = Row(case.name, peer, "error", note=f"{type(exc).__name__}: {exc}")
            else:
                times = [1e3 * s for s in timing.seconds]
                rows[peer] = Row(case.name, peer, "ok", times, timing.check)
    return [rows[peer] for peer in tasks]


def run_isolated(case: str, peer: str, limit: float) -> Row:
    """Run `peer` on `case` once in a worker subprocess; kill it after `limit` seconds.

    The clock starts once the worker reports that its setup (imports, data) is done.
    """
    command = [sys.executable, __file__, "--worker", case, peer]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        if not wait_for_ready(proc.stdout):
            _, err = proc.communicate()
            return Row(case, peer, "error", note=f"worker setup failed: {err.strip()[-300:]}")
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            note = f"one run, killed after {limit:g} s"
            return Row(case, peer, "timeout", note=note, limit_ms=1e3 * limit)
    if proc.returncode != 0:
        return Row(case, peer, "error", note=f"worker failed: {err.strip()[-300:]}")
    result = json.loads(out.strip().splitlines()[-1])
    note = "one run in a subprocess, no warm-up"
    return Row(case, peer, "ok", [1e3 * result["seconds"]], result["check"], note)


def wait_for_ready(stream: IO[str]) -> bool:
    """Read the worker's output up to its "ready" line; False if it ended first."""
    return any(line.strip() == "ready" for line in iter(stream.readline, ""))


def worker(case_name: str, peer: str) -> None:
    """The subprocess side of `run_isolated`: set up, say "ready", run once, print JSON."""
    with tempfile.TemporaryDirectory(prefix="mixedfx-bench-") as tmp:
        ctx = Context(peers=(peer,), workdir=Path(tmp))
        task = CASES[case_name].build(ctx)[peer]
        assert isinstance(task, InProcess)
        print("ready", flush=True)
        seconds, check = quiet_timed(task.run)
        print(json.dumps({"seconds": seconds, "check": check}), flush=True)


# --- reporting ----------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str | None:
    """The model name line of ``lscpu`` (None where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    models = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
    return models[0] if models else None


def environment() -> dict[str, object]:
    env: dict[str, object] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "git": git_describe(),
        "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    env.update({name: os.environ.get(name) for name in BLAS_VARIABLES})
    env["blas"] = blas_info()
    env["versions"] = {"numpy": np.__version__} | {p: peers.version(p) for p in PEERS}
    return env


def blas_info() -> list[dict[str, object]] | str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (
            f"{blas.get('name')} {blas.get('version')} (numpy build; threadpoolctl not installed)"
        )
    keys = ("internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info()]


def git_describe() -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head} (src has uncommitted changes)" if dirty else head


def describe_blas(blas: object) -> str:
    if not isinstance(blas, list):
        return str(blas)
    return "; ".join(
        f"{lib['internal_api']} {lib['version']} {lib['architecture']}, "
        f"{lib['num_threads']} threads ({Path(str(lib['filepath'])).name})"
        for lib in blas
    )


def ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"


def ratio_to(row: Row, reference: Row | None) -> float | None:
    base = reference.median_ms if reference is not None else None
    if base is None:
        return None
    if row.status == "timeout" and row.limit_ms is not None:
        return row.limit_ms / base
    return row.median_ms / base if row.median_ms is not None else None


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| case | peer | median ms | min ms | ratio | objective |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = ratio_to(row, reference_row(rows, row.case))
        if row.status == "ok":
            median, minimum = ms(row.median_ms or 0.0), ms(row.min_ms or 0.0)
            shown_ratio = f"{ratio:.2f}" if ratio is not None else ""
        elif row.status == "timeout":
            median, minimum = f"> {ms(row.limit_ms or 0.0)}", ""
            shown_ratio = f"> {ratio:.0f}" if ratio is not None else ""
        else:
            median, minimum, shown_ratio = row.note if row.status == "skipped" else "error", "", ""
        objective = f"{row.objective:.6f}" if row.objective is not None else ""
        lines.append(
            f"| {row.case} | {row.peer} | {median} | {minimum} | {shown_ratio} | {objective} |"
        )
    return "\n".join(lines)


def reference_row(rows: list[Row], case: str) -> Row | None:
    return next((r for r in rows if r.case == case and r.peer == "mixedfx"), None)


def remarks(rows: list[Row]) -> list[str]:
    """Objectives that disagree with mixedfx's, errors, warnings and other notes."""
    out = []
    for row in rows:
        ref = reference_row(rows, row.case)
        if row is not ref and row.objective is not None and ref and ref.objective is not None:
            rel = (row.objective - ref.objective) / abs(ref.objective)
            if abs(rel) > AGREEMENT:
                out.append(
                    f"{row.case}/{row.peer}: objective differs from mixedfx's by {rel:+.2e} "
                    f"relative ({row.objective - ref.objective:+.6g})"
                )
        if row.note and row.status != "skipped":
            out.append(f"{row.case}/{row.peer}: {row.note}")
    return out


def print_report(
    env: dict[str, object], cases: list[Case], repeats: dict[str, int], rows: list[Row]
) -> None:
    print("## mixedfx benchmark\n")
    for key in ("date", "python", "platform", "cpus", "git"):
        print(f"- {key}: {env[key]}")
    for name in BLAS_VARIABLES:
        print(f"- {name}: {env[name] if env[name] is not None else '(unset)'}")
    print(f"- BLAS: {describe_blas(env['blas'])}")
    versions = env["versions"]
    assert isinstance(versions, dict)
    print("- versions: " + ", ".join(f"{k} {v or 'n/a'}" for k, v in versions.items()))
    print("\nCases (time from formula to fitted model, design construction included):\n")
    for case in cases:
        print(f"- {case.name} (1 warm-up + {repeats[case.name]} timed runs): {case.title}")
    print()
    print(markdown_table(rows))
    print(
        f"\nratio = peer median / mixedfx median. Objectives agree with mixedfx's "
        f"within {AGREEMENT:g} relative unless listed below."
    )
    for line in remarks(rows):
        print(f"- {line}")


def write_json(
    path: Path,
    env: dict[str, object],
    settings: dict[str, object],
    cases: list[Case],
    rows: list[Row],
) -> None:
    results = []
    for row in rows:
        record = asdict(row)
        record.update(
            median_ms=row.median_ms,
            min_ms=row.min_ms,
            ratio=ratio_to(row, reference_row(rows, row.case)),
        )
        results.append(record)
    payload = {
        "environment": env,
        "settings": settings,
        "cases": {case.name: case.title for case in cases},
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


# --- command line -------------------------------------------------------------


def names(text: str, known: list[str] | tuple[str, ...], what: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs per case")
    parser.add_argument(
        "--cases",
        type=lambda s: names(s, list(CASES), "case"),
        default=list(CASES),
        help=f"comma-separated, from {','.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--peers",
        type=lambda s: names(s, PEERS, "peer"),
        default=list(PEERS),
        help=f"comma-separated, from {','.join(PEERS)} (default: all)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per peer, for every case"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds allowed for the single run of a peer too slow to repeat (default 60)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="limit every BLAS and rayon pool to N threads"
    )
    parser.add_argument(
        "--load", action="store_true", help="keep one CPU-bound process busy while timing"
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "PEER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.output is None:
        suffix = "" if args.threads is None else f"-{args.threads}t"
        args.output = RESULTS.with_name(f"latest{suffix}{'-load' if args.load else ''}.json")
    return args


def limit_threads(threads: int) -> None:
    """Re-run this process with every thread pool limited to ``threads`` (read at load time)."""
    if os.environ.get("OPENBLAS_NUM_THREADS") == str(threads):
        return
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


class BusyProcess:
    """A CPU-bound process for the duration of a ``with`` block (``--load``)."""

    def __enter__(self) -> BusyProcess:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    if args.threads is not None:
        limit_threads(args.threads)

    env = environment()
    cases = [CASES[name] for name in args.cases]
    rows: list[Row] = []
    repeats_used: dict[str, int] = {}
    loads: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mixedfx-bench-") as tmp:
        ctx = Context(peers=tuple(args.peers), workdir=Path(tmp), timeout=args.timeout)
        for case in cases:
            repeats = args.repeats or (case.quick_repeats if args.quick else case.repeats)
            repeats_used[case.name] = repeats
            progress(f"[{case.name}] setup")
            tasks = case.build(ctx)
            before = os.getloadavg()[0]
            with BusyProcess() if args.load else contextlib.nullcontext():
                rows += measure_case(case, tasks, repeats)
            loads[case.name] = [before, os.getloadavg()[0]]

    settings = {
        "quick": args.quick,
        "repeats": repeats_used,
        "warm_up_runs": 1,
        "timeout_s": args.timeout,
        "peers": args.peers,
        "threads": args.threads,
        "load": args.load,
        "load_average_1min": loads,
    }
    print_report(env, cases, repeats_used, rows)
    write_json(args.output, env, settings, cases, rows)
    progress(f"results written to {args.output}")


if __name__ == "__main__":
    main()
