"""A formula never runs code: not at fit, not in random terms, not from the command line,
not from a model file, and a refused call changes nothing.

Every payload below would create MARKER if any of it were evaluated as Python
(as ``I(x + 0*__import__('os').system('...'))`` did when formulas went
through formulaic's Python evaluation); each is refused with a FormulaError
(ModelFileError for a file) and MARKER never appears.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import frame, quiet_fit

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"mixedfx-formula-ran-{os.getpid()}"
TOUCH = f"__import__('os').system('touch {MARKER}')"
SRC = Path(mfx.__file__).parent


@pytest.fixture(autouse=True)
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "code from a formula ran"


PAYLOADS = [
    f"y ~ I(x + 0*{TOUCH}) + (1 | g)",  # the fixed part
    f"y ~ x + (I(x + 0*{TOUCH}) | g)",  # a random term
    f"I(y + 0*{TOUCH}) ~ x + (1 | g)",  # the response
    f"y ~ x + offset(0*{TOUCH}) + (1 | g)",  # an offset
    f"y ~ x + ({TOUCH} | g)",
    "y ~ x.__class__.__init__.__globals__ + (1 | g)",  # attribute access
    "y ~ x.__class__ + (1 | g)",
    "y ~ __builtins__ + (1 | g)",  # dunder names
    "y ~ I(x[0]) + (1 | g)",  # subscripts
    "y ~ getattr(x, 'real') + (1 | g)",
    "y ~ (lambda: 0)() + (1 | g)",  # lambda
    "y ~ {x} + (1 | g)",  # braces
    "y ~ eval(x) + (1 | g)",
    "y ~ exec(x) + (1 | g)",
    "y ~ np.log(x) + (1 | g)",  # formulaic/patsy's Python namespace
    "y ~ C(g) + (1 | g)",
    "y ~ x + (1 | g); import os",
    "y ~ x + (1 | g)\nimport os",  # a newline is white space: then 'import' is refused
    "y ~ " + "(" * 200 + "x" + ")" * 200 + " + (1 | g)",  # deep
    "y ~ " + "log(" * 200 + "x" + ")" * 200 + " + (1 | g)",
    "y ~ I(" + "-" * 500 + "x) + (1 | g)",
    "y ~ " + "x + " * 30_000 + "(1 | g)",  # long
]


@pytest.mark.parametrize("formula", PAYLOADS, ids=range(len(PAYLOADS)))
def test_lmm_refuses_without_running_anything(formula: str) -> None:
    with pytest.raises(mfx.FormulaError):
        mfx.lmm(formula, frame())


@pytest.mark.parametrize("formula", PAYLOADS[:6], ids=range(6))
def test_the_estimator_refuses(formula: str) -> None:
    est = mfx.MixedLMRegressor(formula=formula)
    data = frame()
    with pytest.raises(ValueError):  # the estimator reports FormulaError as ValueError
        est.fit(data.drop(columns="y"), data["y"])


@pytest.mark.parametrize("re_form", [f"(I(0*{TOUCH}) | g)", f"~ {TOUCH}", "(x[0] | g)"])
def test_predict_re_form_refuses(re_form: str) -> None:
    m = quiet_fit("y ~ x + (x | g)", frame())
    with pytest.raises(mfx.FormulaError):
        m.predict(frame(), re=re_form)


def test_command_line_refuses(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "d.csv", index=False)
    for formula in PAYLOADS[:3]:
        res = subprocess.run(
            [sys.executable, "-m", "mixedfx.cli", "fit", "d.csv", "--formula", formula,
             "--out", "m.mfx"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode != 0
        assert "cannot start with '_'" in res.stderr
        assert not (tmp_path / "m.mfx").exists()


def test_no_python_evaluation_in_the_formula_path() -> None:
    """The formula modules parse and compute by hand: no eval, exec, compile or imports by name."""
    banned = re.compile(
        r"(?<![.\w])(eval|exec|compile|__import__|getattr)\s*\(|import (importlib|pickle)"
    )
    for path in [*(SRC / "frame").glob("*.py"), SRC / "statecodec.py", SRC / "modelfile.py"]:
        assert not banned.search(path.read_text()), path


# -- a refused call changes nothing ------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    sleep = mfx.datasets.load("sleepstudy")
    sleep["Week"] = np.where(sleep["Days"] < 5, "first", "second")
    return mfx.lmm(
        "Reaction ~ poly(Days, 2) + Week + factor(Days > 6) + (scale(Days) | Subject)", sleep
    )


def saved_bytes(m: mfx.LinearMixedModel, path: Path) -> bytes:
    m.save(path)
    return path.read_bytes()


def test_refused_predictions_leave_the_model_unchanged(model, tmp_path: Path) -> None:
    sleep = model.data
    assert sleep is not None
    before = saved_bytes(model, tmp_path / "a.mfx")
    good = model.predict(sleep.head(20))
    bad_inputs = [
        sleep.assign(Days=sleep["Days"].astype(str)),  # numbers as text
        sleep.assign(Week=np.where(sleep["Days"] < 3, "first", "third")),  # an unseen level
        sleep.assign(Week=sleep["Days"]),  # a category as numbers
        sleep.drop(columns="Week"),
    ]
    for bad in bad_inputs:
        with pytest.raises(mfx.DataError):
            model.predict(bad)
        with pytest.raises(mfx.DataError):
            model.condition(bad)
    assert saved_bytes(model, tmp_path / "b.mfx") == before
    np.testing.assert_array_equal(model.predict(sleep.head(20)), good)


def test_no_global_warning_filter_is_touched(model) -> None:
    sleep = model.data
    assert sleep is not None
    filters = list(warnings.filters)
    model.predict(sleep)
    with pytest.raises(mfx.DataError):
        model.predict(sleep.assign(Week="third"))
    mfx.lmm("Reaction ~ Days + factor(Days > 4) + (1 | Subject)", sleep)
    assert warnings.filters == filters


def test_failing_and_succeeding_predicts_in_threads(model) -> None:
    """Concurrent predictions: the good ones always agree, the bad ones always fail."""
    sleep = model.data
    assert sleep is not None
    expected = model.predict(sleep)
    bad = sleep.assign(Week=np.where(sleep["Days"] < 3, "first", "third"))
    outcomes: list[str] = []

    def work(k: int) -> None:
        for _ in range(15):
            if k % 2:
                try:
                    model.predict(bad)
                    outcomes.append("bad passed")
                except mfx.DataError:
                    outcomes.append("refused")
            else:
                same = np.array_equal(model.predict(sleep), expected)
                outcomes.append("ok" if same else "wrong")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(outcomes)) == ["ok", "refused"]


def test_categorical_only_in_a_random_term_is_checked_like_a_fixed_one() -> None:
    """An unseen or missing level of k in (0 + k | g) is an error or NaN, not a zero slope."""
    data = frame().assign(k=lambda d: np.where(d.index % 3 == 0, "a", "b"))
    m = quiet_fit("y ~ x + (0 + k | g)", data)
    with pytest.raises(mfx.DataError, match="'k' has level"):
        m.predict(data.assign(k="c"))
    missing = data.head(3).astype({"k": object})
    missing.loc[1, "k"] = None
    with pytest.warns(mfx.MixedFXWarning, match="1 row"):
        out = m.predict(missing)
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()


def test_pandas_frame_with_formula_text_columns_is_data_only() -> None:
    """A column named like code is just a column (quoted), and its values are just values."""
    data = frame().rename(columns={"x": "__import__('os')"})
    m = mfx.lmm("y ~ `__import__('os')` + (1 | g)", data)
    assert list(m.fixef.index) == ["(Intercept)", "`__import__('os')`"]
    pd.testing.assert_series_equal(
        pd.Series(m.predict(data)), pd.Series(m.fitted()), check_exact=False, rtol=1e-12
    )
