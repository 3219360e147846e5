"""Label matching by value (levels.py): the integer fast path agrees with the string path."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedfx import levels


def string_path(column: pd.Series, keys: np.ndarray) -> np.ndarray:
    """The reference: every label through its canonical string key."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    found = pd.Index(keys.astype(str)).get_indexer(levels.canonical_keys(uniques).astype(str))
    return np.where(codes >= 0, found[np.maximum(codes, 0)], -1)


def test_integer_keys_find_ints_floats_and_strings() -> None:
    _, keys, _ = levels.encode(pd.Series(["1", "2", "10", "-3"]), "g")
    index = levels.KeyIndex(keys)
    assert index.integers is not None
    got = levels.lookup(pd.Series([10, 1, 3, -3]), index)
    assert got.tolist() == [
        keys.tolist().index("10"),
        keys.tolist().index("1"),
        -1,
        keys.tolist().index("-3"),
    ]
    floats = levels.lookup(pd.Series([1.0, 2.5, np.nan, 2.0]), index)
    assert floats.tolist() == [keys.tolist().index("1"), -1, -1, keys.tolist().index("2")]
    strings = levels.lookup(pd.Series(["01", "2", "x"]), index)
    assert strings.tolist() == [keys.tolist().index("1"), keys.tolist().index("2"), -1]


def test_non_integer_keys_use_strings() -> None:
    _, keys, _ = levels.encode(pd.Series(["a", "1", "2.5"]), "g")
    index = levels.KeyIndex(keys)
    assert index.integers is None
    got = levels.lookup(pd.Series([1, 2.5, "a", "b"], dtype=object), index)
    assert got.tolist() == [
        keys.tolist().index("1"),
        keys.tolist().index("2.5"),
        keys.tolist().index("a"),
        -1,
    ]


labels = st.one_of(
    st.integers(-50, 50),
    st.integers(-50, 50).map(float),
    st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1)),
    st.integers(-50, 50).map(str),
    st.sampled_from(["a", "b", "x1"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(labels, min_size=1, max_size=20), st.lists(labels, min_size=1, max_size=20))
def test_lookup_equals_string_path(train: list, new: list) -> None:
    _, keys, _ = levels.encode(pd.Series(train, dtype=object), "g")
    for column in (pd.Series(new, dtype=object), pd.Series(new).infer_objects()):
        assert (
            levels.lookup(column, levels.KeyIndex(keys)).tolist()
            == string_path(column, keys).tolist()
        )
    ints = [v for v in new if isinstance(v, int)]
    if ints:
        column = pd.Series(ints, dtype=np.int64)
        assert (
            levels.lookup(column, levels.KeyIndex(keys)).tolist()
            == string_path(column, keys).tolist()
        )
