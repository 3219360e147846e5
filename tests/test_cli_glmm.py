"""The command line for GLMMs and weights: fit --family/--weights/--offset, predict --type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixedfx.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli_glmm")
    cbpp = mfx.datasets.load("cbpp").assign(prop=lambda x: x.incidence / x["size"])
    cbpp.to_csv(d / "cbpp.csv", index=False)
    new = pd.DataFrame({"herd": [1, 5, 99], "period": [1, 2, 4], "size": [10, 20, 5]})
    new.to_csv(d / "new.csv", index=False)
    res = run(
        "fit", "cbpp.csv", "--formula", "prop ~ period + (1 | herd)",
        "--family", "binomial", "--weights", "size", "--out", "cbpp.mfx", cwd=d,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Family: binomial ( logit )" in res.stdout
    return d


def api_model(d: Path) -> mfx.GeneralizedLinearMixedModel:
    data = pd.read_csv(d / "cbpp.csv")
    return mfx.glmm("prop ~ period + (1 | herd)", data, family="binomial", weights="size")


@pytest.mark.parametrize(
    "options", [[], ["--type", "link"], ["--interval", "confidence"], ["--interval", "prediction"]]
)
def test_predict_matches_the_api(workdir: Path, options: list[str]) -> None:
    res = run(
        "predict",
        "cbpp.mfx",
        "new.csv",
        *options,
        "--keep",
        "",
        "--out",
        "p.csv",
        "--force",
        cwd=workdir,
    )
    assert res.returncode == 0, res.stderr
    got = pd.read_csv(workdir / "p.csv")
    new = pd.read_csv(workdir / "new.csv")
    kind = "link" if "link" in options else "response"
    interval = options[1] if options and options[0] == "--interval" else None
    want = api_model(workdir).predict(new, type=kind, interval=interval)
    want = want if isinstance(want, pd.DataFrame) else pd.DataFrame({"fit": want})
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("flag", [["--link", "probit"], ["--nagq", "5"]])
def test_glmm_only_flags_are_refused_for_an_lmm(workdir: Path, flag: list[str]) -> None:
    res = run(
        "fit", "cbpp.csv", "--formula", "prop ~ period + (1 | herd)", *flag,
        "--out", "x.mfx", cwd=workdir,
    )  # fmt: skip
    assert res.returncode == 2 and f"{flag[0]} is for GLMMs" in res.stderr


def test_offset_of_an_lmm_is_lmms_offset(workdir: Path) -> None:
    """--offset COL is lmm(offset="COL") as well as glmm(offset="COL")."""
    res = run(
        "fit", "cbpp.csv", "--formula", "prop ~ period + (1 | herd)", "--offset", "size",
        "--out", "o.mfx", cwd=workdir,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    want = mfx.lmm("prop ~ period + (1 | herd)", pd.read_csv(workdir / "cbpp.csv"), offset="size")
    back = mfx.load(workdir / "o.mfx")
    assert back.spec.offset_column == "size"
    np.testing.assert_allclose(back.beta, want.beta, rtol=1e-12)


def test_cbind_response_on_the_command_line(workdir: Path) -> None:
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    res = run(
        "fit", "cbpp.csv", "--formula", formula, "--family", "binomial", "--out", "cb.mfx",
        cwd=workdir,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert mfx.load(workdir / "cb.mfx").objective == pytest.approx(
        api_model(workdir).objective, rel=1e-10
    )


def test_weighted_lmm_and_type_for_lmm(workdir: Path) -> None:
    res = run(
        "fit", "cbpp.csv", "--formula", "prop ~ period + (1 | herd)", "--weights", "size",
        "--out", "w.mfx", cwd=workdir,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert mfx.load(workdir / "w.mfx").weights == "size"
    res = run("predict", "w.mfx", "new.csv", "--type", "link", "--out", "-", cwd=workdir)
    assert res.returncode == 2 and "--type is for GLMMs" in res.stderr


def test_poisson_with_offset_and_summary(workdir: Path) -> None:
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 10)
    exposure = rng.uniform(1, 3, size=len(g))
    counts = rng.poisson(exposure * np.exp(rng.normal(size=8)[g]))
    pd.DataFrame({"n": counts, "g": g, "logexp": np.log(exposure)}).to_csv(
        workdir / "counts.csv", index=False
    )
    res = run(
        "fit", "counts.csv", "--formula", "n ~ 1 + (1 | g)", "--family", "poisson",
        "--offset", "logexp", "--out", "c.mfx", cwd=workdir,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run("summary", "c.mfx", cwd=workdir)
    assert "Family: poisson ( log )" in res.stdout and "offset: logexp" in res.stdout
