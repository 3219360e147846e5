"""The package's layers: the engine imports no frames, the core never imports its backends.

Checked on the source's import statements (ast), so the rule holds for
modules added later too; ruff's banned-import rule (``engine/ruff.toml``)
reports the same at lint time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mixedfx"
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> list[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    package = ["mixedfx", *path.relative_to(SRC).parent.parts]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out += [f"{mod}.{a.name}" if not node.module else mod for a in node.names]
    return out


def files(sub: str) -> list[Path]:
    return sorted((SRC / sub).rglob("*.py"))


@pytest.mark.parametrize("path", files("engine"), ids=lambda p: p.name)
def test_engine_imports_only_numpy_scipy_nlopt_and_itself(path: Path) -> None:
    for name in imports(path):
        root = name.split(".")[0]
        if root in STDLIB or root in ("numpy", "scipy", "nlopt"):
            continue
        assert name.startswith("mixedfx.engine"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", files("frame"), ids=lambda p: p.name)
def test_frame_side_imports_nothing_above_it(path: Path) -> None:
    allowed = ("mixedfx.frame", "mixedfx.engine", "mixedfx.errors")
    for name in imports(path):
        if name.startswith("mixedfx"):
            assert name.startswith(allowed), f"{path.name} imports {name}"
        else:
            assert name.split(".")[0] not in ("dask", "matplotlib", "sklearn"), name


@pytest.mark.parametrize(
    "path", [p for p in SRC.rglob("*.py") if "distributed" not in p.parts], ids=str
)
def test_core_never_imports_the_dask_backend(path: Path) -> None:
    for name in imports(path):
        assert not name.startswith(("mixedfx.distributed", "dask")), f"{path} imports {name}"


PROCESS_OWNERS = {"cli.py", "demo.py"}  # entry points that own their process's warnings
FILTER_CALLS = {"simplefilter", "filterwarnings", "catch_warnings", "resetwarnings"}


@pytest.mark.parametrize("path", files(""), ids=lambda p: str(p.relative_to(SRC)))
def test_library_code_never_changes_the_warning_filters(path: Path) -> None:
    """Warning filters are process-wide: changing them in a library call races other threads.

    (Issue 12 §4: 212 of 300 concurrent predicts raised while predict did.) Only
    the command line and the demo, which own their process, set them.
    """
    if path.relative_to(SRC).as_posix() in PROCESS_OWNERS:
        return
    calls = [
        node.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr in FILTER_CALLS
        and isinstance(node.value, ast.Name)
        and node.value.id == "warnings"
    ]
    assert not calls, f"{path.name} calls warnings.{calls[0]}; pass quiet= or warn_...= instead"
