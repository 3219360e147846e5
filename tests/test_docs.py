"""The user guide runs: every code block of docs/guide.md, in order, in one namespace.

```python blocks are executed with ``exec`` in a shared namespace (later blocks
use earlier variables); their ``assert`` statements check the facts the guide
states. A ```text block right after a python block is the output the guide
shows for it: it must equal what the block printed (whitespace aside).
```sh blocks are run with bash (``-euo pipefail``) in the same directory, with
the ``mixedfx`` console script of this environment on PATH. Everything runs
in a temporary directory, with matplotlib's Agg backend.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mixedfx.errors import MixedFXWarning

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, line number, code) of each fenced block, in order."""
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
    ]


def same_text(a: str, b: str) -> bool:
    """Equal up to whitespace (column alignment, trailing blanks)."""
    return a.split() == b.split()


def test_fence_parser() -> None:
    text = "intro\n```python\nx = 1\n```\n\n```text\nout\n```\n```sh\necho hi\n```\n"
    assert code_blocks(text) == [
        ("python", 2, "x = 1\n"),
        ("text", 6, "out\n"),
        ("sh", 9, "echo hi\n"),
    ]


def test_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")

    blocks = code_blocks(GUIDE.read_text())
    languages = [lang for lang, _, _ in blocks]
    assert languages.count("python") >= 10, "the guide lost its examples"
    assert "sh" in languages

    namespace: dict[str, object] = {"__name__": "__guide__"}
    ran = checked = 0
    printed: str | None = None  # stdout of the block just before, if python
    with warnings.catch_warnings():
        # a mixedfx warning the guide does not catch itself is a failure: the
        # guide's examples must not warn unless they show the warning
        warnings.simplefilter("error", MixedFXWarning)
        for lang, line, code in blocks:
            if lang == "python":
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out):
                        exec(compile(code, f"{GUIDE.name}:{line}", "exec"), namespace)
                except Exception as exc:  # pragma: no cover - the failure report
                    pytest.fail(f"python block at docs/guide.md:{line} raised {exc!r}")
                ran += 1
                printed = out.getvalue()
                continue
            if lang == "text" and printed is not None:
                assert same_text(code, printed), (
                    f"output shown at docs/guide.md:{line} is not what the block above "
                    f"prints; it prints:\n{printed}"
                )
                checked += 1
            elif lang == "sh":
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", code],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=120,
                )
                assert done.returncode == 0, (
                    f"sh block at docs/guide.md:{line} failed:\n{done.stdout}\n{done.stderr}"
                )
                ran += 1
            printed = None
    assert ran == sum(lang in ("python", "sh") for lang in languages)
    assert checked >= 10, "the guide shows fewer outputs than expected"
    assert matplotlib.get_backend().lower() == "agg"


def test_readme_links_guide() -> None:
    readme = (GUIDE.parents[1] / "README.md").read_text()
    assert "(docs/guide.md)" in readme


def test_readme_and_guide_state_the_label_policy_alike() -> None:
    """The three sentences of the label policy, word for word in both (line breaks aside)."""
    readme = " ".join((GUIDE.parents[1] / "README.md").read_text().split())
    guide = " ".join(GUIDE.read_text().split())
    start = readme.index("Labels are compared exactly within a frame")
    end = readme.index("never joined strings.", start) + len("never joined strings.")
    policy = readme[start:end]
    assert policy.count(". ") + 1 == 3  # three sentences
    assert policy in guide
