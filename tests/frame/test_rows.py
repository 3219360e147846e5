"""rows: the label-mismatch warning (distinct labels, written as training's) and re= errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def sleep_model() -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def pastes_model() -> mfx.LinearMixedModel:
    return mfx.lmm("strength ~ 1 + (1 | batch/cask)", mfx.datasets.load("pastes"))


def test_new_groups_are_quiet(sleep_model, pastes_model) -> None:
    unseen = pd.DataFrame({"Days": [1.0], "Subject": ["999"]})  # the README's example
    first = pd.DataFrame({"Subject": "999", "Days": [0.0, 1.0, 2.0], "Reaction": [290.0, 300, 325]})
    patients = pd.DataFrame({"Days": 1.0, "Subject": np.arange(1000, 1050)})  # ints: fine too
    nested = pd.DataFrame({"batch": ["Z", "A"], "cask": ["a", "z"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.NewLevelWarning)
        sleep_model.predict(unseen)
        sleep_model.predict(unseen, given=first)
        sleep_model.predict(unseen, new_levels="nan", interval="prediction")
        sleep_model.predict(patients)
        pastes_model.predict(nested)


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ([" 308", "309 "], "spaces"),
        (["0308", "0309"], "zero padding"),
        (["308.0"], "number format"),
        (["S308", "S309"], "they are words, while training's labels are numbers"),
    ],
)
def test_mismatched_labels_warn(sleep_model, labels: list, why: str) -> None:
    new = pd.DataFrame({"Subject": labels, "Days": 1.0})
    with pytest.warns(mfx.NewLevelWarning, match=why) as caught:
        sleep_model.predict(new)
    text = str(caught[0].message)
    assert f"label(s) of 'Subject' that training never saw (e.g. {labels[:3]})" in text


def test_case_and_type_mismatches_warn() -> None:
    penicillin = mfx.datasets.load("penicillin")
    m = mfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin)
    upper = penicillin.head(3).assign(plate=lambda d: d["plate"].astype(str).str.upper())
    with pytest.warns(mfx.NewLevelWarning, match="only in case") as caught:
        m.predict(upper)
    assert "'plate'" in str(caught[0].message) and len(caught) == 1  # sample matched
    numbers = penicillin.head(2).assign(sample=[1, 2])
    with pytest.warns(mfx.NewLevelWarning, match="they are numbers, while training's"):
        m.predict(numbers)


def test_a_near_miss_warns_even_when_other_labels_match(sleep_model) -> None:
    new = pd.DataFrame({"Subject": ["308", "0309"], "Days": 1.0})
    with pytest.warns(mfx.NewLevelWarning, match=r"'0309' ~ '309'"):
        sleep_model.predict(new)


def test_return_info_counts_new_and_missing_levels(sleep_model, pastes_model) -> None:
    new = pd.DataFrame({"Subject": ["308", "999", "999", "998", None], "Days": 1.0})
    out, info = sleep_model.predict(new, return_info=True)
    np.testing.assert_array_equal(out, sleep_model.predict(new))
    row = info.levels.loc["Subject"]
    assert (row["rows"], row["new_rows"], row["new_levels"], row["missing_rows"]) == (5, 3, 2, 1)
    assert bool(row["used"])
    assert info.new.tolist() == [False, True, True, True, True]
    _, info = sleep_model.predict(new, re="none", interval="confidence", return_info=True)
    assert not info.levels.loc["Subject", "used"] and not info.new.any()
    nested = pd.DataFrame({"batch": ["A", "A", "Z"], "cask": ["a", "z", "a"]})
    _, info = pastes_model.predict(nested, return_info=True)
    assert info.levels.loc["cask:batch", "new_rows"] == 2
    assert info.levels.loc["batch", "new_rows"] == 1
    assert info.new.tolist() == [False, True, True]


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
