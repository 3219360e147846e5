"""The README's speed table from the three runs of ``make bench``.

    python bench/table.py              # print the table
    python bench/table.py --readme     # and replace the one in README.md

Reads ``bench/results/latest-1t.json`` (every pool limited to 1 thread),
``latest-2t.json`` (2 threads) and ``latest-2t-load.json`` (2 threads, one
CPU-bound process running alongside). Times are medians of interleaved runs;
``x`` is mixedfx's time over the peer's (below 1: mixedfx is faster), the last
column mixedfx's time under load over its 1-thread time.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TITLES = {
    "sleepstudy": "sleepstudy `(Days \\| Subject)` REML fit",
    "insteval": "InstEval, 3 crossed terms, 73k rows, ML fit",
    "big": "`(x \\| g)`, 125k groups, 500k rows, REML fit",
    "big_strings": "the same, string labels",
    "singular": "singular `(x \\| u) + (1 \\| i)`, 30k rows, REML fit",
    "midsize": "mid-size `(x + z \\| g)`, 400 groups, REML fit",
    "predict_1m": "predict 1M rows with the BLUPs",
    "confidence_100k": "confidence intervals for 100k rows",
    "condition_10k": "condition on 10k new groups of 5 rows",
    "cbpp": "GLMM: cbpp, binomial Laplace fit",
    "bernoulli_big": "GLMM: Bernoulli `(x \\| g)`, 5k groups, 100k rows",
}
PEERS = ("mixedlm", "lme4", "statsmodels")


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def medians(run: dict) -> dict[tuple[str, str], dict]:
    return {(r["case"], r["peer"]): r for r in run["results"]}


def seconds(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 100 else f"{ms / 1e3:.2f} s"


def ratio(rows: dict, case: str, peer: str) -> str:
    ours, theirs = rows.get((case, "mixedfx")), rows.get((case, peer))
    if not ours or not theirs or ours["median_ms"] is None:
        return "n/a"
    if theirs["status"] == "timeout":
        return f"< {ours['median_ms'] / theirs['limit_ms']:.3f}x"
    if theirs["status"] != "ok" or theirs["median_ms"] is None:
        return "n/a"
    return f"{ours['median_ms'] / theirs['median_ms']:.2f}x"


def table() -> str:
    one, two, busy = load("latest-1t.json"), load("latest-2t.json"), load("latest-2t-load.json")
    r1, r2, rb = medians(one), medians(two), medians(busy)
    env = one["environment"]
    loads = [
        v
        for run in (one, two, busy)
        for pair in run["settings"]["load_average_1min"].values()
        for v in pair
    ]
    lines = [
        f"Speed (`make bench`, {env['date'][:10]}, {env.get('cpu_model') or 'unknown CPU'}, "
        f"{env['cpus']} cores; 1-minute load average {min(loads):.1f} to {max(loads):.1f} "
        "during the runs). Medians of interleaved runs, design construction included; "
        "x = mixedfx time / peer time (below 1: mixedfx is faster); the last column is "
        "mixedfx with 2 BLAS threads next to a CPU-bound process, over its 1-thread time.",
        "",
        "| case | mixedfx, 1 thread | " + " | ".join(PEERS) + " | mixedfx, 2 threads | mixedlm "
        "| 2 threads + busy process |",
        "|---|---:|" + "---:|" * len(PEERS) + "---:|---:|---:|",
    ]
    for case, title in TITLES.items():
        ours = r1.get((case, "mixedfx"))
        if not ours or ours["median_ms"] is None:
            continue
        two_ms = r2[(case, "mixedfx")]["median_ms"]
        busy_ms = rb[(case, "mixedfx")]["median_ms"]
        cells = [seconds(ours["median_ms"]), *(ratio(r1, case, p) for p in PEERS)]
        cells += [seconds(two_ms), ratio(r2, case, "mixedlm")]
        cells += [f"{seconds(busy_ms)} ({busy_ms / ours['median_ms']:.2f}x)"]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.readme:
        readme = README.read_text()
        block = f"{START}\n{text}\n{END}"
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        README.write_text(pattern.sub(lambda _: block, readme))


if __name__ == "__main__":
    main()
