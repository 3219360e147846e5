"""The command line end to end, as a subprocess, against the API's numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

FORMULA = "Reaction ~ Days + (Days | Subject)"


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
    d = tmp_path_factory.mktemp("cli")
    df = mfx.datasets.load("sleepstudy")
    df.to_csv(d / "sleep.csv", index=False)
    new = pd.DataFrame({"Subject": [308, 308, 999], "Days": [10.0, 12.0, 3.0]})
    new.to_csv(d / "new.csv", index=False)
    given = pd.DataFrame({"Subject": [999, 999], "Days": [0.0, 1.0], "Reaction": [290.0, 300.0]})
    given.to_csv(d / "given.csv", index=False)
    res = run("fit", "sleep.csv", "--formula", FORMULA, "--out", "sleep.mfx", cwd=d)
    assert res.returncode == 0, res.stderr
    assert "REML criterion: 1743.6283" in res.stdout
    return d


def api_model(d: Path) -> mfx.LinearMixedModel:
    return mfx.lmm(FORMULA, pd.read_csv(d / "sleep.csv"))


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--re", "none"],
        ["--re", "(1 | Subject)"],
        ["--new-levels", "nan"],
        ["--interval", "confidence"],
        ["--interval", "prediction", "--level", "0.9"],
        ["--given", "given.csv", "--interval", "prediction"],
    ],
)
def test_predict_matches_api(workdir: Path, options: list[str]) -> None:
    res = run(
        "predict", "sleep.mfx", "new.csv", *options, "--force", "--out", "preds.csv", cwd=workdir
    )
    assert res.returncode == 0, res.stderr
    got = pd.read_csv(workdir / "preds.csv")
    kwargs: dict = {}
    it = iter(options)
    for flag in it:
        value = next(it)
        key = flag.lstrip("-").replace("-", "_")
        kwargs[key] = float(value) if key == "level" else value
    if "given" in kwargs:
        kwargs["given"] = pd.read_csv(workdir / kwargs["given"])
    want = api_model(workdir).predict(pd.read_csv(workdir / "new.csv"), **kwargs)
    want = want if isinstance(want, pd.DataFrame) else pd.DataFrame({"fit": want})
    assert list(got.columns) == ["Subject", "Days", *want.columns]  # the input's columns first
    got = got[want.columns]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("out", [["--out", "-"], []])
def test_predict_to_stdout_and_summary(workdir: Path, out: list[str]) -> None:
    """``--out -`` is stdout, and so is no --out."""
    res = run("predict", "sleep.mfx", "new.csv", *out, cwd=workdir)
    assert res.returncode == 0 and res.stdout.splitlines()[0] == "Subject,Days,fit"
    assert len(res.stdout.splitlines()) == 4
    res = run("summary", "sleep.mfx", cwd=workdir)
    assert res.returncode == 0 and "Subject" in res.stdout and "Days" in res.stdout


@pytest.mark.parametrize(
    "args",
    [["summary", "sleep.mfx"], ["predict", "sleep.mfx", "sleep.csv", "--out", "-"]],
)
def test_closed_pipe_is_quiet(workdir: Path, args: list[str]) -> None:
    """``mixedfx summary m.mfx | head -1``: the reader leaves early; no error, status 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixedfx.cli", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything (it is still importing)
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert stderr == ""


def test_plot(workdir: Path) -> None:
    res = run("plot", "sleep.mfx", "--kind", "caterpillar", "--out", "cat.png", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert (workdir / "cat.png").stat().st_size > 5000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "missing.csv", "--formula", FORMULA, "--out", "x.mfx"], "does not exist"),
        (["predict", "sleep.mfx", "new.csv", "--out", "sleep.mfx"], "an input of this command"),
        (
            ["fit", "sleep.csv", "--formula", "Reaction ~ Days", "--out", "x.mfx"],
            "no random-effects term",
        ),
        (
            ["fit", "sleep.csv", "--formula", "Reaction ~ Dayz + (1 | Subject)", "--out", "x.mfx"],
            "Dayz",
        ),
        (["predict", "sleep.csv", "new.csv", "--out", "-"], "model file"),
        (["predict", "sleep.mfx", "new.csv", "--new-levels", "error", "--out", "-"], "999"),
    ],
)
def test_errors_are_one_line(workdir: Path, args: list[str], message: str) -> None:
    res = run(*args, cwd=workdir)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("mixedfx: error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr


def test_help_has_examples(workdir: Path) -> None:
    res = run("--help", cwd=workdir)
    assert res.returncode == 0 and "examples:" in res.stdout and "mixedfx predict" in res.stdout
