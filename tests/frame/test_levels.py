"""levels.py: exact within a frame, matched by value across frames, tuples for interactions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedfx import DataError, MixedFXWarning
from mixedfx.frame import levels


def codes_of(train: list, new: list | pd.Series) -> list[int]:
    _, labels = levels.encode(pd.Series(train, dtype=object), "g")
    column = new if isinstance(new, pd.Series) else pd.Series(new, dtype=object)
    return levels.lookup(column, levels.Levels(labels), "g")[0].tolist()


# labels that tempt a merge: padding, spaces, case, number formats, long ids
texts = st.one_of(
    st.text(alphabet="0123456789 aAbB.e-+", max_size=6),
    st.sampled_from(["007", "7", "0007", " 7", "7 ", "7.0", "1e2", "100", "a", " a", "A"]),
    st.integers(10**18, 10**18 + 20).map(str),
)
numbers = st.one_of(
    st.integers(-50, 50),
    st.integers(-50, 50).map(float),
    st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(texts, numbers), min_size=1, max_size=30))
def test_distinct_training_labels_never_share_a_level(train: list) -> None:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", MixedFXWarning)
        codes, labels = levels.encode(pd.Series(train, dtype=object), "g")
    # a number next to the text that spells it is warned about (and nothing else is)
    texts = {v for v in train if isinstance(v, str)}
    look_alike = any(levels.spell(v) in texts for v in train)
    assert [issubclass(w.category, MixedFXWarning) for w in got] == ([True] if look_alike else [])
    # each level holds one label; two labels share a level only when Python calls them equal
    # (numbers by value: 7 and 7.0), never two different strings
    for k, label in enumerate(labels):
        members = {(type(v) is str, v) for v, c in zip(train, codes, strict=True) if c == k}
        assert all(v == label and is_text == isinstance(label, str) for is_text, v in members)
    strings = {v for v in train if isinstance(v, str)}
    assert len({c for v, c in zip(train, codes, strict=True) if isinstance(v, str)}) == len(strings)


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.integers(-(10**12), 10**12), min_size=1, max_size=15),
    st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=15),
)
def test_cross_type_matching_equals_exact_matching_after_a_cast(train: set, new: list) -> None:
    new = new + list(train)[:3]  # some of them known
    as_int = pd.Series(new, dtype=np.int64)
    as_text = as_int.astype(str).astype(object)
    as_float = as_int.astype(float)
    # training ints: text and float labels of new data match as if cast to int first
    ints = sorted(train)
    assert codes_of(ints, as_text) == codes_of(ints, as_int) == codes_of(ints, as_float)
    # training text (written as str(int)): ints match as if cast to str first
    words = [str(v) for v in ints]
    assert codes_of(words, as_int) == codes_of(words, as_text)
    if all(abs(v) < 2**53 for v in new):
        assert codes_of(words, as_float) == codes_of(words, as_text)


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.integers(0, 30), min_size=1, max_size=10),
    st.sets(st.integers(0, 30), max_size=5),
    st.lists(st.integers(0, 30), min_size=1, max_size=10),
)
def test_a_number_with_several_training_spellings_is_ambiguous(
    canonical: set, padded: set, new: list
) -> None:
    train = [str(v) for v in canonical] + [f"0{v}" for v in padded]
    ambiguous = [v for v in new if v in canonical and v in padded]
    if ambiguous:
        with pytest.raises(DataError, match="matches more than one training label") as caught:
            codes_of(train, pd.Series(new, dtype=np.int64))
        assert any(f"'0{v}'" in str(caught.value) for v in ambiguous)
    else:  # "07" alone is another spelling: 7 does not match it
        expect = codes_of(train, pd.Series([str(v) for v in new], dtype=object))
        assert codes_of(train, pd.Series(new, dtype=np.int64)) == expect


def test_issue_examples_stay_distinct() -> None:
    for labels in (["007", "7", "0007"], ["a", " a", "a "], ["1e2", "100"]):
        _, found = levels.encode(pd.Series(labels * 2, dtype=object), "g")
        assert sorted(found.tolist()) == sorted(labels)
    ids = [str(1234567890123456789 + k) for k in range(12)]  # equal as float64
    _, found = levels.encode(pd.Series(ids), "g")
    assert len(found) == 12


def test_only_the_canonical_spelling_matches_a_number() -> None:
    assert codes_of(["1", "2.5", "x"], [1, 1.0, np.int64(1), 2.5, "1"]) == [0, 0, 0, 1, 0]
    # "1.0" is text that does not spell 1 canonically: no match, either way round
    assert codes_of(["1.0", "2"], [1]) == [-1]
    assert codes_of([1, 2], ["1.0", " 1", "01", "1"]) == [-1, -1, -1, 0]
    assert codes_of(["007"], [7]) == [-1]


def test_ambiguous_error_lists_the_candidates() -> None:
    with pytest.raises(DataError, match=r"label 7 of 'g' matches more than one") as caught:
        codes_of(["7", "07", "8"], pd.Series([7, 8]))
    assert "'7'" in str(caught.value) and "'07'" in str(caught.value)


def test_missing_and_unseen_labels_have_their_codes() -> None:
    _, labels = levels.encode(pd.Series(["a", "b"]), "g")
    codes, unseen = levels.lookup(pd.Series(["a", None, "c", "c"]), levels.Levels(labels), "g")
    assert codes.tolist() == [0, levels.MISSING, levels.UNSEEN, levels.UNSEEN]
    assert unseen.tolist() == ["c"]


def test_interaction_keys_are_tuples_that_cannot_collide() -> None:
    a = pd.Series(["a", "a:b", "a", "a:b"])
    b = pd.Series(["b:c", "c", "b:c", "c"])
    (ca, la), (cb, lb) = levels.encode(a, "a"), levels.encode(b, "b")
    codes, keys = levels.combine([(ca, la), (cb, lb)])
    assert keys.tolist() == [("a", "b:c"), ("a:b", "c")]
    assert codes.tolist() == [0, 1, 0, 1]
    assert [levels.display(k) for k in keys] == ["a:b:c", "a:b:c"]  # display only


@pytest.mark.parametrize(
    ("train", "new", "why"),
    [
        (["A", "B", "C"], ["a", "b"], "case, spaces"),
        (["a", "b"], [" a"], "case, spaces"),
        (["007", "008"], [7, 8], "zero padding"),
        (["7", "8"], ["7.0"], "number format"),
        (["x1", "x2"], [1, 2], "they are numbers, while training's labels are words"),
        ([1, 2], ["S1", "S2"], "they are words, while training's labels are numbers"),
        (["308", "309"], ["S308"], "they are words"),
    ],
)
def test_mismatch_evidence(train: list, new: list, why: str) -> None:
    _, labels = levels.encode(pd.Series(train, dtype=object), "g")
    _, unseen = levels.lookup(pd.Series(new, dtype=object), levels.Levels(labels), "g")
    found = levels.Levels(labels).mismatch(unseen, matched=False)
    assert found is not None and why in found


@pytest.mark.parametrize(
    ("train", "new", "matched"),
    [
        (["308", "309"], ["999"], False),  # a new subject, written like training's
        ([308, 309], [999, "1000"], False),
        (["a", "b"], ["c"], False),
        (["x1", "x2"], [3], True),  # numbers among matched labels: not all new
    ],
)
def test_no_mismatch_for_new_groups(train: list, new: list, matched: bool) -> None:
    _, labels = levels.encode(pd.Series(train, dtype=object), "g")
    assert levels.Levels(labels).mismatch(new, matched) is None


def _split_kinds(labels: list) -> pd.DataFrame:
    rows = np.arange(40)
    y = rows % len(labels) + 0.3 * np.sin(rows)  # the groups differ: no boundary fit
    return pd.DataFrame({"y": y, "g": [labels[i % len(labels)] for i in rows]})


def test_numbers_and_the_text_that_spells_them_are_warned_about() -> None:
    """308 and "308" in one column: two groups within a frame, one across frames."""
    import mixedfx as mfx

    data = _split_kinds([308, "308", 309, "309", 7.0, "7", "x"])
    with pytest.warns(mfx.MixedFXWarning, match=r"3 such pair\(s\), e\.g\. 308 and '308'") as got:
        m = mfx.lmm("y ~ 1 + (1 | g)", data)
    assert got[0].filename == __file__  # pointed at the caller, not into mixedfx
    assert len(m.ranef["g"]) == 7  # still the documented policy: compared exactly


@pytest.mark.parametrize(
    "labels",
    [[308, "0308", 309, "x"], ["a", "b", "c"], [1, 2, 3], [1.5, "1.50", 2], [True, "True", 3]],
)
def test_other_mixtures_are_not_warned_about(labels: list) -> None:
    import mixedfx as mfx

    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.MixedFXWarning)
        mfx.lmm("y ~ 1 + (1 | g)", _split_kinds(labels))


GROUP_COLUMNS = [
    pd.Series([308, "308", 309], dtype=object),  # objects: may mix kinds
    pd.Series([308, "308", 309], dtype=object).astype("category"),  # object categories
    pd.Series(["308", "309", "a"], dtype=object),
    pd.Series(["308", "309", "a"]),  # pandas' default text dtype
    pd.Series(["308", "309", "a"], dtype="string"),
    pd.Series(["308", "309", "a"], dtype="string[pyarrow]"),
    pd.Series(["308", "309", "a"], dtype="category"),
    pd.Series([308, 309, 7], dtype="category"),
    pd.Series([1.5, 2.5, 7.0]),
    pd.Series([1.5, 2.5, 7.0], dtype="Float64"),
    pd.Series([3, 2, 1], dtype="Int64"),
    pd.Series([3, 2, 1], dtype="int64[pyarrow]"),
    pd.Series([True, False, True]),
    pd.Series(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"])),
]


@pytest.mark.parametrize("column", GROUP_COLUMNS, ids=lambda c: str(c.dtype))
def test_look_alikes_are_looked_for_in_every_dtype_that_can_mix_kinds(column: pd.Series) -> None:
    """encode skips the look-alike scan only for dtypes whose labels cannot mix kinds."""
    uniques = column.dtype.categories if isinstance(column.dtype, pd.CategoricalDtype) else None
    if uniques is None:
        uniques = pd.factorize(column)[1]
    kind = pd.api.types.infer_dtype(np.asarray(uniques, dtype=object), skipna=False)
    if kind in ("mixed", "mixed-integer"):
        assert levels._objects(uniques.dtype)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", MixedFXWarning)
        levels.encode(column, "g")
    warned = [w for w in got if "spells them" in str(w.message)]
    assert len(warned) == (1 if 308 in list(column) and "308" in list(column) else 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["b", "a", "07", "7", "c"]), min_size=0, max_size=20),
    st.permutations(["b", "a", "07", "7", "c", "unused"]),
    st.booleans(),
)
def test_a_categorical_is_encoded_in_its_categories_order(
    values: list, categories: list, ordered: bool
) -> None:
    """Codes of a categorical index its used categories, in the categories' order."""
    column = pd.Series(pd.Categorical(values, categories=categories, ordered=ordered))
    codes, labels = levels.encode(column, "g")
    expected = [c for c in categories if c in values]  # unused categories dropped, as lme4
    assert labels.dtype == object and labels.tolist() == expected
    assert codes.dtype == np.int64 and [expected[c] for c in codes] == values
    for dtype in (object, "str"):  # the same labels as text: the same levels, sorted
        _, plain = levels.encode(pd.Series(values, dtype=dtype), "g")
        assert sorted(plain.tolist()) == sorted(expected)


@pytest.mark.parametrize(
    ("column", "count"),
    [
        (pd.Series(["a", None, "b", None], dtype="category"), 2),
        (pd.Series([1.0, np.inf, 2.0, np.inf]).astype("category"), 2),  # an infinite category
        (pd.Series([1.0, np.inf, np.nan]).astype("category"), 2),
        (pd.Series(["a", None, np.inf, "b"], dtype=object), 2),
    ],
)
def test_training_labels_that_are_missing_are_refused(column: pd.Series, count: int) -> None:
    with pytest.raises(DataError, match=rf"grouping column 'g' has {count} missing values"):
        levels.encode(column, "g")
