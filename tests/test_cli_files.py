"""The command line never clobbers, reads and writes the formats it says, and keeps the keys.

In-process (``cli.main``) for speed; tests/test_cli.py drives the installed
command as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx import cli

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    return mfx.lmm(FORMULA, mfx.datasets.load("sleepstudy"))


@pytest.fixture()
def files(tmp_path: Path, model: mfx.LinearMixedModel, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    model.data.to_csv("sleep.csv", index=False)
    model.save("sleep.mfx")
    Path("new.csv").write_text("Subject,Days,note\n308,1.50,a\n0309,2,NA\n999,3.0,\n")
    Path("given.csv").write_text("Subject,Days,Reaction\n999,0,290\n999,1,300\n")
    return tmp_path


def digest(path: str) -> str:
    return "dir" if Path(path).is_dir() else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refused(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The command exits with status 2, a one-line error holding ``message``, and writes nothing."""
    before = {p: digest(p) for p in os.listdir(".")}
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert {p: digest(p) for p in os.listdir(".")} == before


def test_main_prints_warnings_and_leaves_the_warning_state(files, capsys) -> None:
    """In-process, ``cli.main`` shows its warnings its way and restores every filter and hook."""
    Path("gap.csv").write_text("Subject,Days\n308,\n309,2\n")
    before = (list(warnings.filters), warnings.showwarning, warnings.formatwarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a caller's filter: main shows its warnings anyway
        inner = list(warnings.filters)
        assert cli.main(["predict", "sleep.mfx", "gap.csv"]) == 0
        assert warnings.filters == inner
    assert (list(warnings.filters), warnings.showwarning, warnings.formatwarning) == before
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mixedfx: warning: 1 row(s) of newdata have missing predictors; their predictions are NaN"
    ]


# -- never clobber -------------------------------------------------------------------------------
FIT = ["fit", "sleep.csv", "--formula", FORMULA]
INPUTS = [
    (["predict", "sleep.mfx", "new.csv", "--out", "sleep.mfx"], "sleep.mfx"),
    (["predict", "sleep.mfx", "new.csv", "--out", "new.csv"], "new.csv"),
    (
        ["predict", "sleep.mfx", "new.csv", "--given", "given.csv", "--out", "given.csv"],
        "given.csv",
    ),
    ([*FIT, "--out", "sleep.csv"], "sleep.csv"),
    (["plot", "sleep.mfx", "--out", "sleep.mfx"], "sleep.mfx"),
    (
        ["plot", "sleep.mfx", "--kind", "groups", "--data", "sleep.csv", "--out", "sleep.csv"],
        "sleep.csv",
    ),
]


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize(
    ("args", "name"), INPUTS, ids=lambda a: " ".join(a) if isinstance(a, list) else a
)
def test_never_writes_over_an_input(files, capsys, args, name, force):
    refused([*args, *force], f"over '{name}', an input of this command", capsys)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_input_by_another_name_is_still_an_input(files, capsys, link):
    (os.symlink if link == "symlink" else os.link)("sleep.mfx", "alias.mfx")
    refused(
        ["predict", "sleep.mfx", "new.csv", "--force", "--out", "alias.mfx"], "an input", capsys
    )


@pytest.mark.parametrize(
    "args",
    [
        [*FIT, "--out", "old.mfx"],
        ["predict", "sleep.mfx", "new.csv", "--out", "old.mfx"],
        ["plot", "sleep.mfx", "--out", "old.mfx"],
        ["demo", "--out", "old.mfx"],
    ],
    ids=["fit", "predict", "plot", "demo"],
)
def test_an_existing_output_needs_force(files, capsys, args):
    Path("old.mfx").write_text("keep me")
    refused(args, "--out 'old.mfx' exists; add --force to overwrite it", capsys)


def test_force_overwrites(files, capsys):
    Path("preds.csv").write_text("old")
    assert cli.main(["predict", "sleep.mfx", "new.csv", "--force", "--out", "preds.csv"]) == 0
    assert pd.read_csv("preds.csv").shape == (3, 4)


def test_output_directory_is_checked_before_the_fit(files, capsys):
    """The directory is checked first: the (bad) formula is never reached."""
    args = ["fit", "sleep.csv", "--formula", "Reaction ~ Dayz + (1 | Subject)", "--out", "no/m.mfx"]
    refused(args, "the directory of --out 'no/m.mfx' ('no') does not exist", capsys)


def test_a_model_file_is_not_written_to_stdout(files, capsys):
    refused([*FIT, "--out", "-"], "fit writes a model file: give --out a file name", capsys)


def test_output_that_is_a_directory(files, capsys):
    os.mkdir("d")
    refused(["predict", "sleep.mfx", "new.csv", "--out", "d"], "'d' is a directory", capsys)


# -- predictions carry their keys ----------------------------------------------------------------
def test_predictions_follow_the_input_columns_as_written(files, model, capsys):
    assert cli.main(["predict", "sleep.mfx", "new.csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Subject,Days,note,fit"
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == ["308,1.50,a", "0309,2,NA", "999,3.0,"]
    fits = [float(line.rsplit(",", 1)[1]) for line in lines[1:]]
    # the labels as written: "0309" is not subject 309 (the label policy), as in Python
    new = pd.DataFrame({"Subject": ["308", "0309", "999"], "Days": [1.5, 2.0, 3.0]})
    with pytest.warns(mfx.NewLevelWarning):
        want = model.predict(new)
    assert fits == list(want)  # written exactly (shortest round-trip text)
    # a new group: the fixed effects alone (one subtraction apart: rounding of ~300)
    assert fits[1] == pytest.approx(fits[2] - model.fixef["Days"], rel=1e-13)


def test_zero_padded_ids_in_a_csv_stay_distinct_groups(tmp_path, monkeypatch, capsys):
    """Type inference would read 007 and 7 as the number 7: one group instead of two."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    ids = ["007", "7", "08", "8", "9", "010", "10"]
    g = np.array(ids * 40)
    effect = dict(zip(ids, rng.normal(0.0, 2.0, len(ids)), strict=True))
    x = rng.normal(size=g.size)
    y = 2.0 + x + np.array([effect[k] for k in g]) + rng.normal(size=g.size)
    pd.DataFrame({"y": y, "x": x, "g": g}).to_csv("train.csv", index=False)
    assert cli.main(["fit", "--formula", "y ~ x + (1 | g)", "train.csv", "--out", "m.mfx"]) == 0
    m = mfx.load("m.mfx")
    assert sorted(m.ranef["g"].index) == sorted(ids)
    Path("new.csv").write_text("x,g\n0.5,007\n0.5,7\n")
    assert cli.main(["predict", "m.mfx", "new.csv", "--keep", "g"]) == 0
    out = capsys.readouterr().out.splitlines()[-2:]
    want = m.predict(pd.DataFrame({"x": [0.5, 0.5], "g": ["007", "7"]}))
    assert [float(line.split(",")[1]) for line in out] == list(want) and want[0] != want[1]
    # ids that are plain numbers stay numbers, sorted as numbers as R reads them
    pd.DataFrame({"y": y, "x": x, "g": [int(k) for k in g]}).to_csv("plain.csv", index=False)
    assert cli.main(["fit", "--formula", "y ~ x + (1 | g)", "plain.csv", "--out", "p.mfx"]) == 0
    assert mfx.load("p.mfx").ranef["g"].index.tolist() == [7, 8, 9, 10]


@pytest.mark.parametrize(
    ("keep", "header"),
    [("Subject", "Subject,fit"), ("Days, Subject", "Days,Subject,fit"), ("", "fit")],
)
def test_keep_some_columns(files, capsys, keep, header):
    assert cli.main(["predict", "sleep.mfx", "new.csv", "--keep", keep]) == 0
    assert capsys.readouterr().out.splitlines()[0] == header


def test_keep_an_unknown_column(files, capsys):
    refused(
        ["predict", "sleep.mfx", "new.csv", "--keep", "Subjct"], "did you mean 'Subject'?", capsys
    )


def test_input_column_named_like_a_prediction(files, capsys):
    Path("fitcol.csv").write_text("Subject,Days,fit\n308,1,0\n")
    refused(["predict", "sleep.mfx", "fitcol.csv"], "named like the prediction columns", capsys)
    assert cli.main(["predict", "sleep.mfx", "fitcol.csv", "--keep", "Subject"]) == 0


def test_float_format(files, capsys):
    args = ["predict", "sleep.mfx", "new.csv", "--interval", "prediction", "--float-format", "%.3f"]
    assert cli.main(args) == 0
    row = capsys.readouterr().out.splitlines()[1].split(",")
    assert row[:3] == ["308", "1.50", "a"] and all(len(v.split(".")[1]) == 3 for v in row[3:])


@pytest.mark.parametrize(
    ("fmt", "message"), [("%q", "is not a format"), ("abc", "is not a format")]
)
def test_bad_float_format(files, capsys, fmt, message):
    refused(["predict", "sleep.mfx", "new.csv", "--float-format", fmt], message, capsys)


# -- formats ---------------------------------------------------------------------------------------
def test_tsv_in_and_out(files, model, capsys):
    pd.read_csv("new.csv").to_csv("new.tsv", sep="\t", index=False)
    assert cli.main(["predict", "sleep.mfx", "new.tsv", "--out", "p.tsv"]) == 0
    got = pd.read_csv("p.tsv", sep="\t")
    assert list(got.columns) == ["Subject", "Days", "note", "fit"]
    want = model.predict(pd.DataFrame({"Subject": [308, 309, 999], "Days": [1.5, 2.0, 3.0]}))
    np.testing.assert_array_equal(got["fit"], want)


def test_other_separator(files, model, capsys):
    model.data.to_csv("sleep.txt", sep=";", index=False)
    assert cli.main([*FIT[:1], "sleep.txt", *FIT[2:], "--sep", ";", "--out", "m.mfx"]) == 0
    np.testing.assert_array_equal(mfx.load("m.mfx").theta, model.theta)


def test_compressed_csv_out(files, capsys):
    assert cli.main(["predict", "sleep.mfx", "new.csv", "--out", "p.csv.gz"]) == 0
    assert Path("p.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert list(pd.read_csv("p.csv.gz").columns) == ["Subject", "Days", "note", "fit"]


def test_parquet_in_and_out(files, model, capsys):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"Subject": [308, 309], "Days": [1.5, 2.0]}).to_parquet("new.parquet")
    assert cli.main(["predict", "sleep.mfx", "new.parquet", "--out", "p.parquet"]) == 0
    got = pd.read_parquet("p.parquet")
    np.testing.assert_array_equal(got["fit"], model.predict(pd.read_parquet("new.parquet")))
    refused(
        ["predict", "sleep.mfx", "new.csv", "--float-format", "%.3f", "--out", "q.parquet"],
        "--float-format applies to CSV output",
        capsys,
    )


NO_PYARROW = """
import sys
sys.modules["pyarrow"] = sys.modules["fastparquet"] = None  # as if not installed
from mixedfx.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new.parquet"], "reading Parquet (new.parquet) needs pyarrow"),
        (["new.csv", "--out", "p.parquet"], "writing Parquet (p.parquet) needs pyarrow"),
    ],
)
def test_parquet_without_pyarrow_names_the_extra(files, args, message):
    Path("new.parquet").write_bytes(b"PAR1")
    res = subprocess.run(
        [sys.executable, "-c", NO_PYARROW, "predict", "sleep.mfx", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"mixedfx: error: {message}: pip install 'mixedfx[parquet]'"
    assert not Path("p.parquet").exists()


def test_stdin_is_read_once_for_model_and_keys(files, model, capsys, monkeypatch):
    import io

    from mixedfx import clifiles

    clifiles._stdin.cache_clear()
    monkeypatch.setattr(sys, "stdin", io.StringIO(Path("new.csv").read_text()))
    try:
        assert cli.main(["predict", "sleep.mfx", "-"]) == 0
    finally:
        clifiles._stdin.cache_clear()
    assert capsys.readouterr().out.splitlines()[2].startswith("0309,2,NA,")
