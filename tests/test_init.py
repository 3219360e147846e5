"""The top-level namespace exports every public error and warning class."""

from __future__ import annotations

import importlib.metadata
import inspect

import mixedfx as mfx
from mixedfx import errors


def public_classes() -> list[str]:
    return [
        name
        for name, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__ and not name.startswith("_")
    ]


def test_every_error_and_warning_is_exported() -> None:
    names = public_classes()
    assert "MixedFXWarning" in names and "MixedFXError" in names
    for name in names:
        assert getattr(mfx, name) is getattr(errors, name)
        assert name in mfx.__all__


def test_base_warning_catches_every_mixedfx_warning() -> None:
    for name in public_classes():
        cls = getattr(mfx, name)
        if issubclass(cls, Warning):
            assert issubclass(cls, mfx.MixedFXWarning)


def test_version_has_one_source() -> None:
    """pyproject.toml reads the version from mixedfx.__version__ (installed metadata agrees)."""
    assert importlib.metadata.version("mixedfx") == mfx.__version__
