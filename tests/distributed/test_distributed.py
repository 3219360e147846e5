"""Fits and predictions on Dask frames against the in-memory path on the same rows.

The blocks of A = [Z X y]'[Z X y] summed over partitions equal the in-memory
blocks up to the order of floating-point additions (~1e-16 relative). The
optimizer finishes with Newton steps on the analytic gradient
(:func:`mixedfx.engine.newton.polish`), so the optimum is located to the
precision of those sums, not to BOBYQA's stopping tolerance: theta and
everything that follows from it agree within 1e-10 relative.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from mixedfx.frame.transforms import Levels
from tolerance import assert_close, assert_close_columns

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")

EXACT = 1e-10  # same rows: only the order of additions differs


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


def close(a, b, rtol: float, columns: bool = False) -> None:
    """Within rtol of the expected array's scale (tests/tolerance.py), or each column's.

    Not elementwise: a small covariance, BLUP or residual is held to the precision of the
    array's large elements, which is what rounding the sums in another order can keep.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if columns:  # fit, se, lower, upper: se is far smaller than fit
        assert_close_columns(a, b, rtol)
    else:
        assert_close(a, b, rtol)


def fit_both(formula: str, df: pd.DataFrame, nparts: int, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        mem = mfx.lmm(formula, df, **kw)
        dsk = mfx.lmm(formula, dd.from_pandas(df, npartitions=nparts), **kw)
    return mem, dsk


def check_design(mem: mfx.LinearMixedModel, dsk: mfx.LinearMixedModel) -> None:
    a, b = mem.spec, dsk.spec
    assert a.fixed_names == b.fixed_names and a.dropped == b.dropped
    assert a.all_names == b.all_names and a.kept.tolist() == b.kept.tolist()
    assert a.states.keys() == b.states.keys()
    for key, state in a.states.items():  # levels exactly; constants up to rounding
        if isinstance(state, Levels):
            assert b.states[key] == state
        else:
            other = b.states[key]
            for name in state.__dataclass_fields__:
                close(getattr(other, name), getattr(state, name), EXACT)
    for ta, tb in zip(a.terms, b.terms, strict=True):
        assert ta.term == tb.term and ta.columns == tb.columns
        assert ta.keys.tolist() == tb.keys.tolist()
        assert ta.labels.tolist() == tb.labels.tolist()
        assert [k.tolist() for k in ta.factor_keys] == [k.tolist() for k in tb.factor_keys]


def check_blocks(mem: mfx.LinearMixedModel, dsk: mfx.LinearMixedModel) -> None:
    a, b = mem.blocks, dsk.blocks
    assert (a.first, a.l0, a.q0, a.rest, a.p, a.n) == (b.first, b.l0, b.q0, b.rest, b.p, b.n)
    assert sp.issparse(a.A21) == sp.issparse(b.A21)
    for x, y in [(a.A11, b.A11), (a.A21, b.A21), (a.A22, b.A22)]:
        x = x.toarray() if sp.issparse(x) else x
        y = y.toarray() if sp.issparse(y) else y
        assert_close(y, x, 1e-13)


def check_fit(mem: mfx.LinearMixedModel, dsk: mfx.LinearMixedModel, blocks: bool = True) -> None:
    """Compare the fits: design, blocks (unless ``blocks`` is False), optimum, estimates, BLUPs."""
    check_design(mem, dsk)
    if blocks:
        check_blocks(mem, dsk)
    close(dsk.objective, mem.objective, EXACT)
    close(dsk.theta, mem.theta, EXACT)
    close(dsk.beta, mem.beta, EXACT)
    close(dsk.sigma, mem.sigma, EXACT)
    close(dsk.vcov_beta, mem.vcov_beta, EXACT)
    for x, y in zip(dsk.b, mem.b, strict=True):
        close(x, y, EXACT)
    for x, y in zip(dsk.b_condcov, mem.b_condcov, strict=True):
        close(x, y, EXACT)


def check_predictions(mem, dsk, new: pd.DataFrame, given: pd.DataFrame, nparts: int) -> None:
    dnew = dd.from_pandas(new, npartitions=nparts)
    dgiven = dd.from_pandas(given, npartitions=2)
    modes = [
        ({}, None),
        ({"re": "none"}, None),
        ({"new_levels": "nan"}, None),
        ({"interval": "confidence"}, None),
        ({"interval": "prediction", "re": "none"}, None),
        ({}, given),
        ({"interval": "prediction"}, dgiven),
    ]
    for kw, cond in modes:
        kw_mem = kw if cond is None else {**kw, "given": given}
        kw_dask = kw if cond is None else {**kw, "given": cond}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.NewLevelWarning)
            # given holds training rows and groups new data lacks: the same on both paths
            warnings.simplefilter("ignore", mfx.GivenWarning)
            expected = mem.predict(new, **kw_mem)
        lazy = dsk.predict(dnew, **kw_dask)
        assert lazy.npartitions == nparts
        got = lazy.compute()
        if "interval" in kw:
            assert list(got.columns) == ["fit", "se", "lower", "upper"]
            close(got.to_numpy(), expected.to_numpy(), EXACT, columns=True)
        else:
            assert got.name == "fit" and got.index.equals(new.index)
            close(got.to_numpy(), expected, EXACT)


def relabel(df: pd.DataFrame, col: str, new: str, rows: slice) -> pd.DataFrame:
    out = df.copy()
    out[col] = out[col].astype(str)
    out.loc[out.index[rows], col] = new
    return out


def test_sleepstudy(client) -> None:
    df = mfx.datasets.load("sleepstudy")
    mem, dsk = fit_both("Reaction ~ Days + (Days | Subject)", df, 4)
    check_fit(mem, dsk)
    new = relabel(df, "Subject", "new", slice(0, 15))
    given = relabel(df.iloc[::9], "Subject", "other", slice(0, 4))
    check_predictions(mem, dsk, new, given, 3)


def test_penicillin_crossed(client) -> None:
    df = mfx.datasets.load("penicillin")
    mem, dsk = fit_both("diameter ~ 1 + (1 | plate) + (1 | sample)", df, 5)
    check_fit(mem, dsk)
    check_predictions(mem, dsk, relabel(df, "plate", "zz", slice(0, 7)), df.iloc[::5], 2)


def test_pastes_nested(client) -> None:
    df = mfx.datasets.load("pastes")
    mem, dsk = fit_both("strength ~ 1 + (1 | batch/cask)", df, 3, reml=False)
    check_fit(mem, dsk)
    check_predictions(mem, dsk, relabel(df, "cask", "z", slice(0, 6)), df.iloc[::4], 2)


def synthetic(n: int = 480, seed: int = 3) -> pd.DataFrame:
    """Rows in partition order with levels and groups that some partitions lack."""
    rng = np.random.default_rng(seed)
    part = np.repeat(np.arange(4), n // 4)
    trt = np.where(part == 0, rng.choice(["a", "b"], n), rng.choice(["b", "c"], n))
    trt = np.where(part == 3, rng.choice(["c", "d", "b"], n), trt)  # "d" in the last only
    g = np.where(part < 2, rng.integers(0, 12, n), rng.integers(8, 30, n))  # 0-7 early only
    site = rng.choice(["s1", "s2", "s3", "s4", "s5"], n)
    x = rng.normal(3.0, 2.0, n)
    effect = {"a": 0.0, "b": 1.0, "c": -0.5, "d": 2.0}
    u = rng.normal(0.0, 1.0, 30)
    y = 5 + np.vectorize(effect.get)(trt) + 0.3 * x + u[g] + rng.normal(0.0, 0.7, n)
    return pd.DataFrame({"y": y, "x": x, "z": x * x, "trt": trt, "g": g, "site": site})


@pytest.mark.filterwarnings("ignore::mixedfx.SingularFitWarning")
def test_synthetic_levels_transforms_rank(client) -> None:
    df = synthetic()
    formula = (
        "y ~ trt + scale(x, scale = FALSE) + x + scale(z) + poly(x, 3) + I(x > 3) "
        "+ (1 + scale(x, scale = FALSE) | g) + (1 | site)"
    )
    dropped = r"\['x', 'poly\(x, 3\)1', 'poly\(x, 3\)2'\]"  # x, x^2 = z: dependent
    with pytest.warns(mfx.RankDeficiencyWarning, match=dropped):
        mem = mfx.lmm(formula, df)
    with pytest.warns(mfx.RankDeficiencyWarning, match=dropped):
        dsk = mfx.lmm(formula, dd.from_pandas(df, npartitions=4))
    assert dsk.spec.fixed_names[:4] == ("(Intercept)", "trtb", "trtc", "trtd")
    close(dsk.spec.states["scale(x, scale = FALSE)"].center, df["x"].mean(), EXACT)
    check_fit(mem, dsk)
    new = df.sample(100, random_state=1).sort_index()  # Dask keeps a sorted index
    new.loc[new.index[:10], "g"] = 99  # a group never seen
    given = df.iloc[::11].assign(g=lambda d: np.where(d.index % 2, d["g"], d["g"] + 100))
    check_predictions(mem, dsk, new, given, 3)


def test_shifted_and_rescaled_columns(client) -> None:
    """Each partition standardizes with its own moments; merged, they are the whole frame's.

    sleepstudy is ordered by subject, so the partitions' means differ; y + 1e8 and
    Days + 1e6 in a random slope would cancel catastrophically without it. The
    merged means differ from the whole's by ~eps |mean| (the partitions' own
    rounding), so the blocks are in coordinates shifted by ~eps |mean| / sd
    (~1e-9 for y): not compared; the fits, exact in either, are.
    """
    df = mfx.datasets.load("sleepstudy")
    df = df.assign(y=df["Reaction"] * 1e-3 + 1e8, x=df["Days"] * 1e4 + 1e6)
    mem, dsk = fit_both("y ~ x + (x | Subject)", df, 4)
    check_fit(mem, dsk, blocks=False)
    check_predictions(mem, dsk, relabel(df, "Subject", "new", slice(0, 15)), df.iloc[::9], 3)


def test_intercept_combination_dropped(client) -> None:
    """``0 + w + f``: f's indicators hold the constant until f[a] is dropped (w = f[a]).

    Both paths then fit y and the columns uncentred (Dask moves its centred
    partials back to unshifted coordinates before dropping the column).
    """
    df = synthetic().assign(w=lambda d: (d["trt"] == "a").astype(float))
    formula = "y ~ 0 + w + trt + x + (1 | g)"
    with pytest.warns(mfx.RankDeficiencyWarning, match=r"\['trta'\]"):
        mem = mfx.lmm(formula, df)
    with pytest.warns(mfx.RankDeficiencyWarning, match=r"\['trta'\]"):
        dsk = mfx.lmm(formula, dd.from_pandas(df, npartitions=4))
    assert mem.standardized.coords.x_weights is None
    assert dsk.standardized.coords.x_weights is None
    check_fit(mem, dsk)


def test_look_alike_labels_match_memory(client) -> None:
    """Text labels "07", "7" and " 7" are three levels in a fixed factor and a group alike."""
    rng = np.random.default_rng(4)
    n = 240
    kinds = np.array(["07", "7", " 7", "8"])
    df = pd.DataFrame(
        {
            "f": kinds[rng.integers(0, 4, n)],
            "g": np.array(["01", "1", "001", "a", "A", "a "])[rng.integers(0, 6, n)],
            "x": rng.normal(size=n),
        }
    )
    df["y"] = df["x"] + (df["f"] == "7") + rng.normal(size=n) * 0.5
    mem, dsk = fit_both("y ~ x + f + (1 | g)", df, 3)
    assert len(dsk.spec.states["f"]) == 4 and dsk.spec.terms[0].nlevels == 6
    check_fit(mem, dsk)
    new = df.sample(40, random_state=3).sort_index()
    new.loc[new.index[:3], "g"] = "b"  # a new group
    close(dsk.predict(dd.from_pandas(new, npartitions=2)).compute(), mem.predict(new), EXACT)


def test_offsets_match_memory(client) -> None:
    df = mfx.datasets.load("sleepstudy").assign(e=lambda d: np.log1p(d["Days"]))
    formula = "Reaction ~ Days + offset(2 * e) + (Days | Subject)"
    mem, dsk = fit_both(formula, df, 3, offset="Days")
    check_fit(mem, dsk)
    new = df.sample(30, random_state=2).sort_index()
    close(dsk.predict(dd.from_pandas(new, npartitions=2)).compute(), mem.predict(new), EXACT)
    given = df.head(10).assign(Subject="new")
    close(
        dsk.condition(dd.from_pandas(given, npartitions=2)).b[0], mem.condition(given).b[0], EXACT
    )
    with pytest.raises(mfx.DataError, match="offset= must be the name of a column"):
        mfx.lmm(formula, dd.from_pandas(df, npartitions=2), offset=np.ones(len(df)))


def test_model_without_rows(client, tmp_path) -> None:
    df = mfx.datasets.load("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=3)
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", ddf, progress=True)
    assert m.data is None and m.fitted_values is None and m.nobs == len(df)
    with pytest.raises(mfx.DataError, match=r"Dask frame.*m\.predict\(data\)"):
        m.fitted()
    with pytest.raises(mfx.DataError, match="no residuals"):
        m.residuals()
    assert "Number of obs: 180" in m.summary()
    m.save(tmp_path / "m.mfx")
    loaded = mfx.load(tmp_path / "m.mfx")
    expected = m.predict(df, interval="prediction")
    close(loaded.predict(ddf, interval="prediction").compute(), expected, EXACT, columns=True)
    given = dd.from_pandas(df.head(20), npartitions=2)
    close(loaded.condition(given).b[0], m.condition(df.head(20)).b[0], EXACT)
    resid = (ddf["Reaction"] - m.predict(ddf)).compute()
    close(resid, df["Reaction"] - m.predict(df), EXACT)


def test_errors_match_memory(client) -> None:
    df = mfx.datasets.load("sleepstudy")
    bad = df.copy()
    bad.loc[100, "Reaction"] = np.nan
    cases = [
        ("Reaction ~ Dayz + (Days | Subject)", df),
        ("Reaction ~ Days + (Days | Subjekt)", df),
    ]
    for formula, data in cases:
        with pytest.raises(mfx.MixedFXError) as memory:
            mfx.lmm(formula, data)
        with pytest.raises(type(memory.value), match=None) as dask_err:
            mfx.lmm(formula, dd.from_pandas(data, npartitions=4))
        assert str(dask_err.value) == str(memory.value)
    # missing values: in memory the message offers missing="drop", which Dask frames do
    # not take; both name the column
    no_day = df.assign(Days=df["Days"].where(df.index != 150))
    no_subject = df.assign(Subject=df["Subject"].where(df.index != 77))
    missing = [
        ("Reaction ~ Days + (Days | Subject)", bad, "Reaction"),
        ("Reaction ~ Days + (Days | Subject)", no_day, "Days"),
        ("Reaction ~ Days + (1 | Subject)", no_subject, "Subject"),
    ]
    for formula, data, column in missing:
        with pytest.raises(mfx.DataError, match=f"'{column}'"):
            mfx.lmm(formula, data)
        with pytest.raises(mfx.DataError, match=f"'{column}'"):
            mfx.lmm(formula, dd.from_pandas(data, npartitions=4))
    with pytest.raises(mfx.DataError, match="not supported for a Dask frame"):
        ddf_bad = dd.from_pandas(bad, npartitions=2)
        mfx.lmm("Reaction ~ Days + (1 | Subject)", ddf_bad, missing="drop")
    ddf = dd.from_pandas(df, npartitions=2)
    for nested in ("poly(scale(Days), 2)", "factor(I(scale(Days) > 0))"):
        with pytest.raises(mfx.FormulaError, match="inside another"):
            mfx.lmm(f"Reaction ~ {nested} + (1 | Subject)", ddf)
    with pytest.raises(mfx.FormulaError, match="the response.*cannot be learned"):
        mfx.lmm("scale(Reaction) ~ Days + (1 | Subject)", ddf)
    unknown = ddf.assign(Subject=ddf["Subject"].cat.as_unknown())
    with pytest.raises(mfx.DataError, match="unknown categories.*categorize"):
        mfx.lmm("Reaction ~ Days + (1 | Subject)", unknown)
    m = mfx.lmm("Reaction ~ Days + (1 | Subject)", ddf)
    with pytest.raises(mfx.DataError, match=r"\['Days'\] missing"):
        m.predict(ddf.drop(columns="Days"))
    with pytest.raises(ValueError, match="new_levels"):
        m.predict(ddf, new_levels="drop")
    new = dd.from_pandas(relabel(df, "Subject", "new", slice(0, 3)), npartitions=2)
    with pytest.raises(mfx.DataError, match="not seen in training"):
        m.predict(new, new_levels="error").compute()


def test_import_does_not_import_dask() -> None:
    code = (
        "import sys, mixedfx as mfx\n"
        "m = mfx.lmm('Reaction ~ Days + (Days | Subject)', mfx.datasets.load('sleepstudy'))\n"
        "m.predict(mfx.datasets.load('sleepstudy'), interval='confidence')\n"
        "assert not [k for k in sys.modules if k.split('.')[0] in ('dask', 'distributed')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
