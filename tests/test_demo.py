"""The demo: it runs, its numbers say what it claims, and demo.png is a real figure.

``mixedfx.demo.run`` returns the numbers that the demo prints (a
``DemoResult``); the command line ``mixedfx demo`` is driven as a subprocess
in a temporary directory, and its printed RMSEs must be those numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mixedfx import demo

matplotlib = pytest.importorskip("matplotlib")
import matplotlib.image as mpimg  # noqa: E402

MAIN = "import sys; from mixedfx.cli import main; sys.exit(main(['demo']))"
RMSE_LINE = re.compile(r"^\s*(fixed effects only|with store BLUPs)\s*:\s*([0-9.]+)", re.MULTILINE)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[demo.DemoResult, Path]:
    out = tmp_path_factory.mktemp("demo") / "demo.png"
    return demo.run(str(out), verbose=False), out


def check_png(path: Path) -> None:
    assert path.is_file()
    assert path.stat().st_size > 20_000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    rgb = image[..., :3]
    assert float(np.var(rgb)) > 0.0
    non_white = np.any(rgb < 0.95, axis=-1).mean()
    assert non_white > 0.02  # points, error bars, axes and text, not a blank canvas
    colours = np.unique(np.round(rgb.reshape(-1, 3) * 255).astype(int), axis=0)
    assert len(colours) >= 8


def test_blups_beat_fixed_effects_only(result: tuple[demo.DemoResult, Path]) -> None:
    res, _ = result
    assert np.isfinite([res.rmse_fixed, res.rmse_blup]).all()
    assert 0.0 < res.rmse_blup < res.rmse_fixed
    # the stores differ (sd 8) much more than the weeks (sd 3): a clear win, not a tie
    assert res.rmse_blup < 0.7 * res.rmse_fixed


def test_new_store_interval(result: tuple[demo.DemoResult, Path]) -> None:
    res, _ = result
    table = res.new_store
    assert list(table.week) == [4, 5]
    fit, lower, upper = (table[c].to_numpy() for c in ("given_3", "lower90", "upper90"))
    assert np.isfinite(np.column_stack([fit, lower, upper])).all()
    assert (lower < fit).all() and (fit < upper).all()
    assert (upper - lower > 0.0).all()
    # three weeks of the new store help: its own level beats the population line
    assert res.rmse_new_given < res.rmse_new_fixed


def test_demo_png(result: tuple[demo.DemoResult, Path]) -> None:
    check_png(result[1])


def test_demo_keeps_callers_matplotlib_state(tmp_path: Path) -> None:
    """The demo draws on a bare Figure: no backend switch, open figures stay open."""
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("pdf")  # a caller's backend that is not the demo's Agg
    fig = plt.figure()
    try:
        demo.run(str(tmp_path / "demo.png"), verbose=False)
        assert matplotlib.get_backend() == "pdf"
        assert plt.fignum_exists(fig.number)
        check_png(tmp_path / "demo.png")
    finally:
        plt.close(fig)
        plt.switch_backend(before)


def test_command_line_demo(tmp_path: Path, result: tuple[demo.DemoResult, Path]) -> None:
    start = time.perf_counter()
    script = Path(sys.executable).parent / "mixedfx"  # the installed console script
    command = [str(script), "demo"] if script.exists() else [sys.executable, "-c", MAIN]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert elapsed < 60  # `make demo` promises 15 s; leave room for a loaded CI machine
    printed = dict(RMSE_LINE.findall(done.stdout))
    assert set(printed) == {"fixed effects only", "with store BLUPs"}, done.stdout
    fixed, blup = float(printed["fixed effects only"]), float(printed["with store BLUPs"])
    assert blup < fixed
    res, _ = result
    assert fixed == pytest.approx(res.rmse_fixed, abs=0.006)  # printed with 2 decimals
    assert blup == pytest.approx(res.rmse_blup, abs=0.006)
    assert "wrote demo.png" in done.stdout
    check_png(tmp_path / "demo.png")
