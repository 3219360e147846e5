"""rows: the label-mismatch warning (distinct labels, written as training's) and re= errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


def test_unseen_warning_lists_distinct_labels() -> None:
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    typo = pd.DataFrame({"Subject": ["S308", "S308", "S309"], "Days": [1.0, 2.0, 3.0]})
    with pytest.warns(mfx.NewLevelWarning) as caught:
        m.predict(typo)
    text = str(caught[0].message)
    assert "e.g. ['S308', 'S309']" in text
    assert "training has e.g. ['308', '309', '310']" in text


def test_unseen_warning_nested_labels_as_in_training() -> None:
    pastes = mfx.datasets.load("pastes")
    m = mfx.lmm("strength ~ 1 + (1 | batch/cask)", pastes)
    new = pd.DataFrame({"batch": ["Z", "Z"], "cask": ["a", "a"]})
    with pytest.warns(mfx.NewLevelWarning) as caught:
        m.predict(new)
    texts = [str(w.message) for w in caught]
    interaction = next(t for t in texts if "'cask:batch'" in t)
    assert "e.g. ['a:Z']" in interaction and "['a:A', 'a:B', 'a:C']" in interaction


def test_no_warning_when_some_labels_known() -> None:
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    mixed = pd.DataFrame({"Subject": [308, 999], "Days": [1.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.NewLevelWarning)
        out = m.predict(mixed)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    ("re", "unknown"),
    [("(x | Subject)", "['x']"), ("(1 + Days + x + z | Subject)", "['x', 'z']")],
)
def test_re_term_with_unknown_column_names_it(re: str, unknown: str) -> None:
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    new = pd.DataFrame({"Subject": ["308"], "Days": [1.0], "x": [2.0], "z": [3.0]})
    with pytest.raises(mfx.FormulaError) as caught:
        m.predict(new, re=re)
    text = str(caught.value)
    assert f"unknown column(s) {unknown}" in text
    assert "columns ['(Intercept)', 'Days']" in text
