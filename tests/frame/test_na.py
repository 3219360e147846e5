"""The one missing-value rule: None, NaN, pd.NA, NaT and inf are missing in every dtype."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedfx.frame import levels as lv
from mixedfx.frame.na import Count, is_missing, present
from mixedfx.frames import plain_dtypes

NAT = pd.NaT
# (name, column, where it is missing)
COLUMNS = [
    ("float NaN and inf", pd.Series([1.0, np.nan, np.inf, -np.inf, 0.0]), [0, 1, 1, 1, 0]),
    ("int", pd.Series([1, 2, 3]), [0, 0, 0]),
    ("bool", pd.Series([True, False]), [0, 0]),
    (
        "object labels",
        pd.Series(["a", None, np.nan, pd.NA, NAT, float("inf"), "b", 7], dtype=object),
        [0, 1, 1, 1, 1, 1, 0, 0],
    ),
    ("object numbers", pd.Series([1.5, None, np.inf, 2], dtype=object), [0, 1, 1, 0]),
    ("object booleans", pd.Series([True, None, False], dtype=object), [0, 1, 0]),
    ("object decimal", pd.Series([decimal.Decimal("1"), None], dtype=object), [0, 1]),
    ("Int64", pd.Series([1, None, 3], dtype="Int64"), [0, 1, 0]),
    ("Float64", pd.Series([1.0, None, 3.0], dtype="Float64"), [0, 1, 0]),
    ("boolean", pd.Series([True, None, False], dtype="boolean"), [0, 1, 0]),
    ("string[python]", pd.Series(["a", None, "b"], dtype="string[python]"), [0, 1, 0]),
    ("string[pyarrow]", pd.Series(["a", None, "b"], dtype="string[pyarrow]"), [0, 1, 0]),
    ("str", pd.Series(["a", None, "b"], dtype="str"), [0, 1, 0]),
    ("arrow string", pd.Series(["a", None], dtype=pd.ArrowDtype(pa.string())), [0, 1]),
    ("arrow bool", pd.Series([True, None], dtype=pd.ArrowDtype(pa.bool_())), [0, 1]),
    ("arrow int", pd.Series([1, None, 2], dtype=pd.ArrowDtype(pa.int64())), [0, 1, 0]),
    (
        "arrow float with NaN and null",
        pd.Series(
            pa.array([1.0, None, float("nan"), float("inf")]), dtype=pd.ArrowDtype(pa.float64())
        ),
        [0, 1, 1, 1],
    ),
    ("categorical", pd.Series(["a", np.nan, "b"], dtype="category"), [0, 1, 0]),
    ("categorical of numbers", pd.Series([1.0, np.inf, np.nan]).astype("category"), [0, 1, 1]),
    ("datetime", pd.Series([datetime.datetime(2020, 1, 1), NAT]), [0, 1]),
    ("timedelta", pd.Series([pd.Timedelta(1), NAT]), [0, 1]),
    ("empty", pd.Series([], dtype=object), []),
]


@pytest.mark.parametrize(("name", "column", "expected"), COLUMNS, ids=[c[0] for c in COLUMNS])
def test_the_rule_in_every_dtype(name: str, column: pd.Series, expected: list[int]) -> None:
    np.testing.assert_array_equal(is_missing(column), np.array(expected, dtype=bool))


@pytest.mark.parametrize(("name", "column", "expected"), COLUMNS, ids=[c[0] for c in COLUMNS])
def test_the_frame_boundary_keeps_what_is_missing(name, column, expected) -> None:
    """Nullable and Arrow columns become NumPy or object ones (mixedfx.frames): same rule."""
    converted = plain_dtypes(pd.DataFrame({"c": column}))["c"]
    np.testing.assert_array_equal(is_missing(converted), is_missing(column))


@pytest.mark.parametrize(("name", "column", "expected"), COLUMNS, ids=[c[0] for c in COLUMNS])
def test_labels_missing_by_the_rule_get_the_missing_code(name, column, expected) -> None:
    present_labels = column[~np.array(expected, dtype=bool)]
    if len(present_labels) == 0:
        return
    _, labels = lv.encode(present(present_labels), "c")
    codes, unseen = lv.lookup(column, lv.Levels(labels), "c")
    np.testing.assert_array_equal(codes == lv.MISSING, is_missing(column))
    assert len(unseen) == 0  # a missing value is never reported as a new label


VALUES = st.sampled_from([1.0, -2.5, np.nan, np.inf, None, "a", "b", pd.NA, NAT, True, 3])


@given(st.lists(VALUES, max_size=12))
@settings(max_examples=200, deadline=None)
def test_object_columns_follow_the_rule(values: list) -> None:
    column = pd.Series(values, dtype=object)
    expected = [
        v is None or v is pd.NA or v is NAT or (isinstance(v, float) and not np.isfinite(v))
        for v in values
    ]
    np.testing.assert_array_equal(is_missing(column), np.array(expected, dtype=bool))


@given(st.lists(st.booleans(), max_size=20), st.lists(st.booleans(), max_size=20))
def test_counts_of_adjacent_runs_add(a: list[bool], b: list[bool]) -> None:
    both = Count.of(np.array(a + b, dtype=bool))
    assert Count.of(np.array(a, dtype=bool)).then(Count.of(np.array(b, dtype=bool))) == both
