"""The command line's messages speak in flags; every option is documented with its default."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx import cli

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(autouse=True)
def restore_warning_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    sleep = mfx.datasets.load("sleepstudy")
    sleep.to_csv("sleep.csv", index=False)
    sleep.assign(Days=np.where(sleep.index == 3, np.nan, sleep["Days"])).to_csv(
        "holes.csv", index=False
    )
    mfx.lmm(FORMULA, sleep).save("sleep.mfx")
    Path("new.csv").write_text("Subject,Days\n999,1\n")
    return tmp_path


def error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "holes.csv", "--formula", FORMULA, "--out", "m.mfx"], "pass --missing drop"),
        (
            ["predict", "sleep.mfx", "new.csv", "--new-levels", "error"],
            "use --new-levels population or --new-levels nan to predict them",
        ),
        (
            ["plot", "sleep.mfx", "--kind", "shrinkage", "--out", "s.png"],
            "plot --kind shrinkage needs the training data: add --data train.csv",
        ),
        (
            ["plot", "sleep.mfx", "--kind", "caterpillar", "--which", "3", "--out", "s.png"],
            "--which does not apply to --kind caterpillar (it applies to --kind groups)",
        ),
    ],
)
def test_messages_name_flags(files, capsys, args, message):
    got = error(args, capsys)
    assert message in got
    assert "=" not in got.split("error:")[1], got  # no Python keyword arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fit", "sleep.csv", "--fromula", "y ~ x", "--out", "m.mfx"],
            "--fromula (did you mean --formula?)",
        ),
        (
            ["predict", "sleep.mfx", "new.csv", "--intervall", "prediction"],
            "(did you mean --interval?)",
        ),
        (
            ["predict", "sleep.mfx", "new.csv", "--new-level=nan"],
            "--new-level (did you mean --new-levels?)",
        ),
        (["plot", "sleep.mfx", "--kindd", "groups"], "(did you mean --kind?)"),
        (["predict", "sleep.mfx", "new.csv", "--zzz"], "unknown option --zzz"),
        (["--verison"], "did you mean --version?"),
    ],
)
def test_misspelt_option(files, capsys, args, message):
    got = error(args, capsys)
    assert "unknown option" in got and message in got


def test_an_abbreviation_is_not_an_option(files, capsys):
    assert "unknown option --form" in error(
        ["fit", "sleep.csv", "--form", FORMULA, "--out", "m.mfx"], capsys
    )


def test_option_values_that_look_like_options_are_values(files, capsys):
    assert cli.main(["predict", "sleep.mfx", "new.csv", "--re", "none", "--keep", "Days"]) == 0


def test_api_message_translation():
    assert cli.cli_message("pass missing='drop' to drop them") == "pass --missing drop to drop them"
    assert cli.cli_message("pass x=, one of") == "pass --x, one of"
    assert cli.cli_message("use matrix=2") == "use matrix=2"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"mixedfx {mfx.__version__}"


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = [("mixedfx", a) for a in parser._actions if a.option_strings]
    for name, p in sub.choices.items():
        out += [(name, a) for a in p._actions if a.option_strings]
    return out


@pytest.mark.parametrize(
    "item", _options(cli.parser()), ids=lambda i: f"{i[0]} {i[1].option_strings[-1]}"
)
def test_every_option_has_help_and_a_default(item):
    command, action = item
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return
    text = cli._Formatter("mixedfx")._get_help_string(action)
    assert action.help and ("default" in text or "(required)" in text), (command, text)


def test_plot_exposes_the_plot_options(files, capsys):
    args = ["plot", "sleep.mfx", "--kind", "caterpillar", "--group", "Subject", "--term", "Days"]
    assert cli.main([*args, "--level", "0.5", "--out", "c.png"]) == 0
    args = ["plot", "sleep.mfx", "--kind", "groups", "--data", "sleep.csv", "--x", "Days"]
    assert cli.main([*args, "--which", "308,309", "--out", "g.png"]) == 0
    assert Path("c.png").stat().st_size > 5000 and Path("g.png").stat().st_size > 5000
    got = error(["plot", "sleep.mfx", "--term", "Dayz", "--out", "x.png"], capsys)
    assert "term must be one of" in got
