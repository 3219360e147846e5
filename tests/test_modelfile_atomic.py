"""Saves are atomic: a save that fails or is killed part-way never loses the previous file."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.atomicfile import replacing


@pytest.fixture(scope="module")
def two_models() -> tuple[mfx.LinearMixedModel, mfx.LinearMixedModel]:
    sleep = mfx.datasets.load("sleepstudy")
    a = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    b = mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=sleep["Reaction"] * 2))
    return a, b


def which(path: Path, models: tuple[mfx.LinearMixedModel, ...], data: pd.DataFrame) -> int:
    """Index of the model that ``path`` holds (its predictions, bit for bit)."""
    got = mfx.load(path).predict(data, interval="prediction").to_numpy()
    for k, m in enumerate(models):
        if np.array_equal(got, m.predict(data, interval="prediction").to_numpy()):
            return k
    raise AssertionError("the file holds neither model")


def strays(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp"))


FSIZE_SCRIPT = """
import errno, os, resource, signal, sys
import mixedfx as mfx
old, new, target = sys.argv[1:4]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit raises EFBIG instead
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
model = mfx.load(new)
for limit in map(int, sys.argv[4:]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        model.save(target)
        print(limit, "saved")
    except OSError as exc:
        print(limit, "failed", errno.errorcode[exc.errno])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
"""


def test_a_save_that_hits_a_file_size_limit_keeps_the_old_file(two_models, tmp_path):
    """A full disk, simulated with RLIMIT_FSIZE: the save fails, the old model stays readable."""
    a, b = two_models
    old, new, target = tmp_path / "old.mfx", tmp_path / "new.mfx", tmp_path / "m.mfx"
    a.save(old)
    b.save(new)
    a.save(target)
    size = new.stat().st_size
    limits = sorted({n for n in (0, 1, 100, 1000, 4096, size // 3, size // 2) if n < size})
    limits.append(size - 1)  # every limit below the new file's size must fail
    res = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(old), str(new), str(target), *map(str, limits)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:-1] == [f"{n} failed EFBIG" for n in limits]
    assert which(target, two_models, a.data) == 0
    assert strays(tmp_path) == []


def test_a_save_killed_at_random_instants_keeps_a_whole_file(two_models, tmp_path):
    """SIGKILL a process re-saving two models in turn: the file always holds one of them."""
    a, b = two_models
    target = tmp_path / "m.mfx"
    a.save(target)
    rng = random.Random(13)
    seen, mid_write = set(), 0
    for _ in range(25):
        pid = os.fork()
        if pid == 0:  # the child saves until it is killed
            try:
                while True:
                    b.save(target)
                    a.save(target)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        seen.add(which(target, two_models, a.data))
        left = strays(tmp_path)
        mid_write += bool(left)
        for p in left:  # what a killed save leaves: a temporary file, never the target
            p.unlink()
    assert mid_write >= 5, "the kills should land inside saves"
    assert seen == {0, 1}


def test_a_failing_writer_leaves_nothing(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as f:
        f.write(b"new, half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and strays(tmp_path) == []


def test_refusing_to_overwrite(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="exists"), replacing(target, overwrite=False) as f:
        f.write(b"new")
    assert target.read_bytes() == b"old" and strays(tmp_path) == []


def test_a_symlink_is_followed_and_permissions_are_ordinary(two_models, tmp_path):
    a, _ = two_models
    real = tmp_path / "real.mfx"
    real.write_bytes(b"")
    link = tmp_path / "link.mfx"
    link.symlink_to(real)
    a.save(link)
    assert link.is_symlink() and which(real, two_models, a.data) == 0
    umask = int(
        subprocess.run(["sh", "-c", "umask"], capture_output=True, text=True, check=True).stdout,
        8,
    )
    assert stat.S_IMODE(real.stat().st_mode) == 0o666 & ~umask


def test_a_replaced_file_keeps_its_permissions(two_models, tmp_path):
    a, b = two_models
    target = tmp_path / "m.mfx"
    a.save(target)
    target.chmod(0o600)
    b.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and which(target, two_models, a.data) == 1


def test_a_model_the_format_cannot_hold_is_not_written(two_models, tmp_path, monkeypatch):
    a, _ = two_models
    target = tmp_path / "m.mfx"
    a.save(target)
    before = target.read_bytes()
    monkeypatch.setattr("mixedfx.modelfile.MAX_LABEL_BYTES", 0)
    monkeypatch.setattr("mixedfx.modelfile.LEVELS_SLACK", 0)
    with pytest.raises(mfx.ModelFileError, match="level labels take"):
        a.save(target)
    assert target.read_bytes() == before and strays(tmp_path) == []


def test_save_into_a_missing_directory(two_models, tmp_path):
    a, _ = two_models
    with pytest.raises(FileNotFoundError):
        a.save(tmp_path / "nowhere" / "m.mfx")
