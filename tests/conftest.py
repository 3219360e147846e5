"""Shared fixtures: lme4 reference values and fitted models, fitted once per session."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

import mixedfx as mfx

# tools/kernel_matrix.py runs the suite once per BLAS kernel with this profile, so that every
# kernel sees the same examples and a failure found under one kernel is not replayed under the next.
settings.register_profile("kernel-matrix", derandomize=True, database=None)

REFERENCE = Path(__file__).parent / "reference" / "lme4_fits.json"


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text())


_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit_case(name: str) -> mfx.LinearMixedModel:
    """Fit a reference case with mixedfx (cached for the session)."""
    if name not in _FITS:
        case = load_reference()[name]
        data = mfx.datasets.load(case["dataset"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            _FITS[name] = mfx.lmm(case["formula"], data, reml=case["reml"])
    return _FITS[name]


@pytest.fixture(scope="session")
def reference() -> dict:
    return load_reference()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """numpy, scipy and the BLAS they run on: the last digits of a result depend on its kernel."""
    import scipy.linalg  # loads scipy's own BLAS, so that it is listed too

    lines = [f"numpy {np.__version__}, scipy {scipy.__version__}"]
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        lines.append(f"OPENBLAS_CORETYPE={coretype}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [*lines, "BLAS: threadpoolctl not installed"]
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        kernel = info.get("architecture") or info.get("corename") or "?"
        shipped_by = Path(info.get("filepath", "?")).parent.name  # e.g. numpy.libs, scipy.libs
        lines.append(
            f"BLAS: {info.get('internal_api')} {info.get('version')} ({shipped_by}), "
            f"kernel {kernel}, {info.get('num_threads')} threads, {info.get('threading_layer')}"
        )
    return lines


# -- a small data set for input checks ----------------------------------------------------
def frame(n_groups: int = 6, size: int = 10, seed: int = 0) -> pd.DataFrame:
    """``y ~ x + (1 | g)`` data: ``n_groups`` string labels ``s0, s1, ...`` of ``size`` rows."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    y = 1.0 + 0.5 * x + rng.normal(size=n_groups)[g] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{k}" for k in g]})


def quiet_fit(formula: str, data: pd.DataFrame, **kw: object) -> mfx.LinearMixedModel:
    """:func:`mixedfx.lmm` without the SingularFitWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm(formula, data, **kw)  # type: ignore[arg-type]
