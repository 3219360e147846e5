"""Fuzz: damaged and crafted model files load to the same model or fail with ModelFileError.

Never a crash (the loads run in a subprocess, so a segfault is seen), a
hang, another exception, or a different prediction. See modelfuzz.py for
the mutants. Here a fixed seed and a few hundred mutants (~10 s of CPU);
``python bench/fuzz_modelfile.py --n 5000`` runs a longer campaign.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mixedfx as mfx
import modelfuzz
from mfxfile import members
from mixedfx.engine import blocks as blocks_mod

N_MUTANTS = 100  # per model


def sleep_case() -> tuple[mfx.LinearMixedModel, pd.DataFrame, pd.DataFrame]:
    """Dense blocks, a 2 x 2 random slope, a categorical fixed effect (formulaic state)."""
    sleep = mfx.datasets.load("sleepstudy")
    sleep["Week"] = np.where(sleep["Days"] < 5, "first", "second")
    model = mfx.lmm("Reaction ~ Days + Week + (Days | Subject)", sleep)
    new = sleep.iloc[::7].assign(Subject=lambda f: np.where(f.index % 2 == 0, 999, f["Subject"]))
    return model, new, sleep.head(4).assign(Subject=999)


def penicillin_case() -> tuple[mfx.LinearMixedModel, pd.DataFrame, pd.DataFrame]:
    """Crossed terms, sparse A21 (as large models keep it), conditioned on a new plate."""
    pen = mfx.datasets.load("penicillin")
    keep = blocks_mod.DENSE_LIMIT
    blocks_mod.DENSE_LIMIT = 10
    try:
        model = mfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    finally:
        blocks_mod.DENSE_LIMIT = keep
    model = model.condition(pen.head(5).assign(plate="new"))
    assert model.blocks.sparse and model.nobs_given == 5
    new = pen.iloc[::5].assign(plate=lambda f: np.where(f.index % 3 == 0, "other", f["plate"]))
    return model, new, pen.tail(3).assign(plate="other")


def cases(d: Path, n: int, seed: int) -> tuple[list[modelfuzz.Job], list[str], list[int]]:
    """Jobs: per model its file then its mutants; their labels; the index of each original."""
    jobs, labels, originals = [], [], []
    for name, case in (("sleep", sleep_case), ("penicillin", penicillin_case)):
        model, new, given = case()
        source = d / f"{name}.mfx"
        model.save(source)
        rows = (str(d / f"{name}-new.csv"), str(d / f"{name}-given.csv"))
        new.to_csv(rows[0], index=False)
        given.to_csv(rows[1], index=False)
        originals.append(len(jobs))
        jobs.append((str(source), *rows))
        labels.append(f"{name} original")
        for i, (label, blob) in enumerate(
            modelfuzz.mutants(source.read_bytes(), members(source), n, seed)
        ):
            path = d / f"{name}-{i}.mfx"
            path.write_bytes(blob)
            jobs.append((str(path), *rows))
            labels.append(f"{name}: {label}")
    return jobs, labels, originals


def failures(labels: list[str], results: list[dict], originals: list[int]) -> list[str]:
    """Outcomes that are neither a refusal nor the original model's predictions."""
    out, original = [], results[0]
    for k, (label, r) in enumerate(zip(labels, results, strict=True)):
        if k in originals:
            original = r
            if r["status"] != "ok":
                out.append(f"{label}: {r}")
        elif not (r["status"] == "refused" or r == original):
            out.append(f"{label}: {r}")
    return out


def test_fuzzed_files_load_the_same_model_or_fail_cleanly(tmp_path):
    jobs, labels, originals = cases(tmp_path, N_MUTANTS, seed=13)
    results = modelfuzz.run(jobs, tmp_path)
    wrong = failures(labels, results, originals)
    assert not wrong, "\n".join(wrong)
    refused = sum(r["status"] == "refused" for r in results)
    assert refused > len(jobs) // 2  # the mutants mostly break the file
