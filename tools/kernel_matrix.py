"""Run the whole test suite under each OpenBLAS kernel in turn and report pass/fail per kernel.

    python tools/kernel_matrix.py                        # SkylakeX Haswell SandyBridge Prescott
    python tools/kernel_matrix.py --kernels Haswell Prescott
    python tools/kernel_matrix.py -- tests/test_gradient.py -x    # after --: pytest arguments

numpy's and scipy's wheels ship OpenBLAS built for many CPUs and pick a kernel at load time;
``OPENBLAS_CORETYPE`` forces one.  Kernels differ in blocking and in FMA use, so a result
computed through BLAS can differ in its last bits between machines.  The suite must pass under
every kernel (docs/testing.md).  The runs are sequential (one suite at a time) and use the
``kernel-matrix`` hypothesis profile (tests/conftest.py: derandomized, no example database) so
every kernel sees the same examples.

A kernel that this CPU cannot execute (SkylakeX without AVX-512 dies of SIGILL) is reported as
``not run`` and does not fail the matrix unless ``--strict``.  OpenBLAS names its Prescott
kernel "Katmai" in its config string.  Logs and JUnit XML go to ``build/kernel-matrix/``.
Exit status: 1 if any kernel failed, else 0 (2 with ``--strict`` when a kernel could not run).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ["SkylakeX", "Haswell", "SandyBridge", "Prescott"]

# Exercise both numpy's and scipy's OpenBLAS (gemm, potrf, trsm) under the forced kernel.
PROBE = """
import numpy as np, scipy.linalg
from threadpoolctl import threadpool_info
a = np.random.default_rng(0).standard_normal((200, 200))
s = a @ a.T + 200 * np.eye(200)
c = scipy.linalg.cho_factor(s)
scipy.linalg.cho_solve(c, a)
np.linalg.cholesky(s)
print(",".join(sorted({i.get("architecture") or "?" for i in threadpool_info()})))
"""

DETAIL_MARKERS = ("Max absolute difference", "Max relative difference", "Mismatched elements")


def probe(kernel: str, env: dict[str, str]) -> tuple[bool, str]:
    """Whether this CPU can run the kernel, and the kernel name OpenBLAS reports."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    if run.returncode == -signal.SIGILL:
        return False, "illegal instruction: this CPU lacks the kernel's instructions"
    if run.returncode != 0:
        return False, f"probe failed ({run.returncode}): {run.stderr.strip()[-300:]}"
    return True, run.stdout.strip()


def failures(junit: Path) -> list[tuple[str, list[str]]]:
    """(test id, detail lines) for each failed or errored test in a JUnit XML file."""
    if not junit.exists():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is None:
                continue
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            text = f"{node.get('message', '')}\n{node.text or ''}"
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            detail = [ln for ln in lines if ln.startswith(DETAIL_MARKERS)]
            first = node.get("message", "").splitlines()[:1]
            out.append((name, detail or first))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", default=KERNELS)
    parser.add_argument("--strict", action="store_true", help="a kernel that cannot run fails")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kernel-matrix")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    results: list[tuple[str, str, str, float, list[tuple[str, list[str]]]]] = []
    for kernel in args.kernels:
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
        ok, reported = probe(kernel, env)
        if not ok:
            print(f"== {kernel}: not run ({reported})", flush=True)
            results.append((kernel, "not run", reported, 0.0, []))
            continue
        print(f"== {kernel} (OpenBLAS reports {reported}): running the suite", flush=True)
        log = args.out / f"{kernel}.log"
        junit = args.out / f"{kernel}.xml"
        junit.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--hypothesis-profile=kernel-matrix",
            f"--junitxml={junit}",
            "-rfE",
            *args.pytest_args,
        ]
        start = time.monotonic()
        with log.open("w") as handle:
            code = subprocess.run(
                command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
        seconds = time.monotonic() - start
        tail = [ln.strip("= ") for ln in log.read_text().splitlines() if ln.strip()][-1:]
        status = "pass" if code.returncode == 0 else "FAIL"
        if code.returncode < 0:
            status = f"FAIL (signal {-code.returncode})"
        failed = failures(junit)
        results.append((kernel, status, tail[0] if tail else "", seconds, failed))
        print(f"   {status}: {tail[0] if tail else ''} ({seconds:.0f} s, log {log})", flush=True)

    print("\nkernel matrix")
    for kernel, status, summary, seconds, failed in results:
        print(f"  {kernel:<12} {status:<8} {summary} {f'[{seconds:.0f} s]' if seconds else ''}")
        for name, detail in failed:
            print(f"      {name}")
            for line in detail:
                print(f"          {line}")
    if any(status.startswith("FAIL") for _, status, *_ in results):
        return 1
    if args.strict and any(status == "not run" for _, status, *_ in results):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
