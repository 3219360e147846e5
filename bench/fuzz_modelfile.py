"""A longer fuzz campaign on model files than the test suite's (see tests/modelfuzz.py).

    python bench/fuzz_modelfile.py --n 5000 --seed 1

Prints the outcomes by kind of mutant and every failure (a crash, a hang,
another exception, or a prediction that differs); exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import modelfuzz  # noqa: E402
from test_modelfile_fuzz import cases, failures  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="mutants per model (default 2000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        jobs, labels, originals = cases(Path(d), args.n, args.seed)
        results = modelfuzz.run(jobs, Path(d))
        elapsed = time.perf_counter() - start
    outcomes = collections.Counter()
    for k, (label, r) in enumerate(zip(labels, results, strict=True)):
        kind = label.split(": ")[-1].split()[0]
        same = r == results[max(o for o in originals if o <= k)]
        outcomes[kind, "same" if same else r["status"]] += 1
    for (kind, status), count in sorted(outcomes.items()):
        print(f"{kind:>12} {status:>10} {count}")
    wrong = failures(labels, results, originals)
    print(f"{len(jobs)} files in {elapsed:.0f} s; {len(wrong)} failures")
    print("\n".join(wrong))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
