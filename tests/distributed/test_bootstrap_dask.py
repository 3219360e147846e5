"""The bootstrap's refits on the workers of an active Dask distributed client."""

from __future__ import annotations

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.inference import bootstrap as bootstrap_mod

distributed = pytest.importorskip("dask.distributed")
pytest.importorskip("joblib")


def test_refits_run_on_the_client_and_equal_local_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    local = m.bootstrap(8, seed=5, progress=False, n_jobs=1)
    backends = []
    real = bootstrap_mod._dask_backend

    def spy() -> str | None:
        backends.append(real())
        return backends[-1]

    monkeypatch.setattr(bootstrap_mod, "_dask_backend", spy)
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with cluster, distributed.Client(cluster):
        remote = m.bootstrap(8, seed=5, progress=False, n_jobs=2)
    assert backends == ["dask"]
    np.testing.assert_array_equal(remote.theta, local.theta)
    np.testing.assert_array_equal(remote.sigma, local.sigma)
