"""The whitelist evaluator: formula expressions computed from data columns, never by Python.

An expression is a tree from :mod:`mixedfx.frame.syntax`; this module walks
it and computes, over the rows of a frame:

* column names and numeric literals (``TRUE``/``FALSE`` are 1/0);
* arithmetic ``+ - * /``, ``^`` (power), ``%%`` and ``%/%`` (R's modulo and
  integer division), unary ``-``, comparisons (logical, 1/0 in arithmetic);
* the functions of :data:`FUNCTIONS`: ``log`` (optional base), ``log1p``,
  ``log2``, ``log10``, ``exp``, ``sqrt``, ``abs``, ``I``; the stateful
  ``scale`` and ``poly`` (learned on training rows, reused on new rows,
  see :mod:`.transforms`); ``factor``/``as.factor`` (categorical);
  ``offset`` (its argument).

Nothing else: an unknown function is a FormulaError that names it and
lists these; a name is a column of the data or a DataError.

A *variable* of the model (a term's factor) is numeric (one column, or
``poly``'s several) or categorical: a text, boolean or categorical
column, a comparison, or ``factor(...)``, coded by its training levels.

Stateful transforms read their state from ``states`` (keyed by R's text
of the call, e.g. ``"scale(Days)"``). When learning, an evaluator with a
``record`` dict computes each missing state's partial statistics
(:class:`Site`) and returns :data:`PENDING` for what depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import transforms as tf
from .columns import column
from .na import numbers
from .syntax import BinOp, Bool, Call, Chain, Name, Node, Num, Paren, Unary, deparse

PENDING: Any = type("Pending", (), {"__repr__": lambda self: "PENDING"})()

_ELEMENTWISE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
FUNCTIONS = (*_ELEMENTWISE, "I", "scale", "poly", "factor", "as.factor", "offset")
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "^": np.power,
    "%%": np.mod,
    "%/%": np.floor_divide,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    ">": np.greater,
    "<=": np.less_equal,
    ">=": np.greater_equal,
}


def unknown_function(fn: str, node: Node) -> FormulaError:
    return FormulaError(
        f"unknown function {fn!r} in {deparse(node)!r}: a formula may use only "
        f"{', '.join(FUNCTIONS)} (and cbind on the left of '~')"
    )


@dataclass(frozen=True)
class Coded:
    """A categorical variable's level codes (-1 where missing) and its levels."""

    codes: np.ndarray
    levels: tf.Levels


@dataclass(frozen=True)
class Site:
    """A stateful transform being learned: its kind, arguments and partial statistics."""

    kind: str  # "levels", "scale" or "poly"
    args: tuple[Any, ...]
    partial: tf.Moments | tf.Distinct

    def then(self, other: Site) -> Site:
        """The statistics of these rows and ``other``'s (later rows)."""
        return Site(self.kind, self.args, self.partial.then(other.partial))  # type: ignore[arg-type]

    def finish(self, key: str) -> tf.State:
        if self.kind == "levels":
            assert isinstance(self.partial, tf.Distinct)
            return tf.learn_levels(key, self.partial)
        assert isinstance(self.partial, tf.Moments)
        if self.kind == "scale":
            return tf.learn_scale(key, self.partial, *self.args)
        return tf.learn_poly(key, self.partial, *self.args)


class Evaluator:
    """Expressions over the rows of one frame.

    Parameters
    ----------
    data : DataFrame, shape (n, ...)
    states : mapping of str to State
        Learned states, keyed by R's text of the call or variable.
    record : dict or None
        When learning: receives a :class:`Site` per missing state.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        states: Mapping[str, tf.State],
        record: dict[str, Site] | None = None,
    ) -> None:
        self.data = data
        self.n = len(data)
        self.states = states
        self.record = record
        self.blocked = False  # a missing state whose input waits for another state
        self._columns: dict[str, pd.Series] = {}

    # -- columns ----------------------------------------------------------------------------
    def column(self, name: str) -> pd.Series:
        if name not in self._columns:
            if name not in self.data.columns:
                raise DataError(
                    f"column {name!r} is missing from the data "
                    f"(it has {list(map(str, self.data.columns))[:20]})"
                )
            self._columns[name] = column(self.data, name)
        return self._columns[name]

    def _numbers(self, name: str, node: Node) -> np.ndarray:
        col = self.column(name)
        if not _text_like(col.dtype):
            return numbers(col)
        raise DataError(
            f"{deparse(node)!r} needs numbers, but column {name!r} holds {col.dtype} values; "
            "use factor() for categories"
        )

    # -- numbers ----------------------------------------------------------------------------
    def numeric(self, node: Node) -> Any:
        """Float values, shape (n,), (n, k) or () for a constant; or PENDING."""
        if isinstance(node, Name):  # the common case first: a column
            return self._numbers(node.id, node)
        if isinstance(node, Num):
            return np.float64(node.value)
        if isinstance(node, Bool):
            return np.float64(node.value)
        if isinstance(node, Paren):
            return self.numeric(node.inner)
        if isinstance(node, Unary) and node.op in "+-":
            x = self.numeric(node.operand)
            return x if x is PENDING or node.op == "+" else -x
        if isinstance(node, Chain) and all(op in _ARITHMETIC for op in node.ops):
            out = self.numeric(node.items[0])
            for op, item in zip(node.ops, node.items[1:], strict=True):
                right = self.numeric(item)
                out = PENDING if _pending(out, right) else _arith(op, out, right)
            return out
        if isinstance(node, BinOp) and node.op == "^":
            left, right = self.numeric(node.left), self.numeric(node.right)
            return PENDING if _pending(left, right) else _arith("^", left, right)
        if isinstance(node, BinOp) and node.op in _COMPARE:
            values, missing = self.compare(node)
            return PENDING if values is PENDING else np.where(missing, np.nan, values * 1.0)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Chain | BinOp | Unary):
            op = node.ops[0] if isinstance(node, Chain) else node.op
            raise FormulaError(
                f"operator {op!r} in {deparse(node)!r} is not arithmetic; inside an expression "
                "use + - * / ^ %% %/% and comparisons (':' would be R's sequence operator)"
            )
        return self._numbers(node.id, node)

    def compare(self, node: BinOp) -> tuple[Any, np.ndarray]:
        """A comparison's truth values and where they are missing (NA).

        Missing where an operand is: NaN or infinite (:mod:`mixedfx.frame.na`).
        """
        left, right = self.numeric(node.left), self.numeric(node.right)
        if _pending(left, right):
            return PENDING, np.zeros(self.n, dtype=bool)
        with np.errstate(invalid="ignore"):
            values = np.broadcast_to(_COMPARE[node.op](left, right), (self.n,))
        missing = np.broadcast_to(~np.isfinite(left) | ~np.isfinite(right), (self.n,))
        return values, missing

    def call(self, node: Call) -> Any:
        fn = node.fn
        if fn in _ELEMENTWISE:
            return self.elementwise(node)
        if fn in ("I", "offset"):
            _arguments(node, 1)
            return self.numeric(node.args[0])
        if fn == "scale":
            return self.scale(node)
        if fn == "poly":
            return self.poly(node)
        if fn in ("factor", "as.factor"):
            raise FormulaError(
                f"{deparse(node)!r} gives categories; it cannot be used in arithmetic "
                "(write it as a term of the formula)"
            )
        if fn == "cbind":
            raise FormulaError(
                f"{deparse(node)!r}: cbind() is only for a two-column (binomial) response, "
                "on the left of '~'"
            )
        raise unknown_function(fn, node)

    def elementwise(self, node: Call) -> Any:
        base = None
        if node.fn == "log":
            if node.kwargs and node.kwargs[0][0] != "base":
                raise FormulaError(f"{deparse(node)}: log() takes x and base")
            args = (*node.args, *(v for _, v in node.kwargs))
            if not 1 <= len(args) <= 2:
                raise FormulaError(f"{deparse(node)}: log() takes x and an optional base")
            base = _constant(args[1], node) if len(args) == 2 else None
        else:
            _arguments(node, 1)
        x = self.numeric(node.args[0])
        if x is PENDING:
            return PENDING
        with np.errstate(all="ignore"):
            out = _ELEMENTWISE[node.fn](x)
            return out if base is None else out / np.log(float(base))

    def stateful(self, node: Call, x: Any, kind: str, args: tuple[Any, ...], order: int) -> Any:
        """The state of ``node``, or PENDING after recording its partial statistics."""
        key = deparse(node)
        state = self.states.get(key)
        if state is not None:
            if not isinstance(state, tf.Scale if kind == "scale" else tf.Poly):
                raise DataError(f"the learned state of {key!r} is not a {kind}() state")
            return state
        if self.record is None:
            raise DataError(f"the model has no learned state for {key!r}")
        if x is PENDING:
            self.blocked = True
        elif key not in self.record:
            self.record[key] = Site(kind, args, tf.Moments.of(np.asarray(x, dtype=float), order))
        return PENDING

    def scale(self, node: Call) -> Any:
        spec = _signature(node, ("x", "center", "scale"), {"center": True, "scale": True})
        x = self.numeric(spec["x"])
        if x is not PENDING and np.ndim(x) != 1:
            raise FormulaError(f"{deparse(node)}: scale() of one column only")
        flags = (_constant(spec["center"], node), _constant(spec["scale"], node))
        state = self.stateful(node, x, "scale", flags, 2)
        return PENDING if _pending(x, state) else state.apply(x)

    def poly(self, node: Call) -> Any:
        spec = _signature(node, ("x", "degree"), {"degree": 1.0, "raw": False})
        degree = _constant(spec["degree"], node)
        if (
            isinstance(degree, bool)
            or degree != int(degree)
            or not 1 <= degree <= tf.MAX_POLY_DEGREE
        ):
            raise FormulaError(f"{deparse(node)}: the degree must be 1 to {tf.MAX_POLY_DEGREE}")
        x = self.numeric(spec["x"])
        if x is not PENDING and np.ndim(x) != 1:
            raise FormulaError(f"{deparse(node)}: poly() of one variable only")
        if _constant(spec["raw"], node) is True:
            return PENDING if x is PENDING else x[:, None] ** np.arange(1, int(degree) + 1)
        state = self.stateful(node, x, "poly", (int(degree),), 2 * int(degree))
        return PENDING if _pending(x, state) else state.apply(x)

    # -- variables ----------------------------------------------------------------------------
    def labels(self, node: Node) -> Any:
        """The values of a categorical variable as a Series (or PENDING)."""
        if isinstance(node, Name):
            return self.column(node.id)
        if isinstance(node, Paren):
            return self.labels(node.inner)
        if isinstance(node, Call) and node.fn in ("I", "factor", "as.factor"):
            _arguments(node, 1)
            return self.labels(node.args[0])
        if isinstance(node, BinOp) and node.op in _COMPARE:
            values, missing = self.compare(node)
            if values is PENDING:
                return PENDING
            return pd.Series(pd.arrays.BooleanArray(np.asarray(values), np.asarray(missing)))
        x = self.numeric(node)
        if x is not PENDING and np.ndim(x) != 1:
            raise FormulaError(f"{deparse(node)}: a categorical variable needs one column")
        return PENDING if x is PENDING else pd.Series(np.broadcast_to(x, (self.n,)))

    def categorical(self, node: Node) -> bool:
        """Whether the variable ``node`` is categorical in these rows (training's view)."""
        inner = _unwrap(node)
        if isinstance(inner, Name):
            dtype = self.column(inner.id).dtype
            _refuse_time(inner.id, dtype)
            if isinstance(dtype, np.dtype):  # as below: neither a number nor a boolean
                return dtype.kind not in "iufc"
            return _text_like(dtype) or pd.api.types.is_bool_dtype(dtype)
        return categorical_form(node)

    def variable(self, node: Node) -> Any:
        """A model variable: float values (n,) or (n, k), :class:`Coded`, or PENDING."""
        key = deparse(node)
        state = self.states.get(key)
        if isinstance(state, tf.Levels) or (state is None and self.categorical(node)):
            values = self.labels(node)
            if values is PENDING:
                self.blocked |= state is None
                return PENDING
            if state is None:
                if self.record is None:
                    raise DataError(
                        f"{key!r} was numeric in training but is categorical in this data "
                        f"(dtype {values.dtype}); give it training's type"
                    )
                self.record.setdefault(key, Site("levels", (), tf.Distinct.of(values)))
                return PENDING
            return Coded(_codes(key, values, state), state)
        x = self.numeric(node)
        if x is PENDING:
            return PENDING
        if isinstance(x, np.ndarray) and x.ndim and len(x) == self.n:  # a value per row
            return np.array(x, dtype=float, order="C")  # the copy below, without broadcasting
        return np.broadcast_to(np.asarray(x, dtype=float), (self.n, *np.shape(x)[1:])).copy()


def _codes(key: str, values: pd.Series, levels: tf.Levels) -> np.ndarray:
    """Level codes of ``values`` (-1 where missing); an error names the levels training never saw.

    Labels are matched by the label policy (:mod:`mixedfx.frame.levels`):
    exactly, then by value across kinds (``1`` finds training's ``"1"``).
    """
    codes, unseen = levels.codes(values, key)
    if len(unseen):
        shown = [tf.r_label(v) for v in unseen[:10]]
        raise DataError(
            f"variable {key!r} has level(s) {shown} that training never saw (training levels: "
            f"{list(levels.names[:20])}); the model has no coefficient for them"
        )
    return np.maximum(codes, -1)


def _refuse_time(name: str, dtype: Any) -> None:
    """Refuse a date, time or duration column as a predictor: its number is not defined.

    R reads a ``Date`` as days and a ``POSIXct`` as seconds since 1970, so
    ``y ~ date`` is a linear trend in R; pandas keeps both as one
    ``datetime64`` type (in ns, us or s), so no number would be the user's,
    and levels (one coefficient per date) would silently be another model.
    ``factor(date)`` asks for levels; as a grouping factor a date is a label.
    """
    if isinstance(dtype, np.dtype):  # pandas' checks below, answered by the kind
        timed = dtype.kind in "mM"
    else:
        timed = pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(
            dtype
        )
    if timed:
        raise DataError(
            f"column {name!r} holds dates or durations ({dtype}), which a formula cannot read "
            "as one number: give it as a number in the unit you mean, e.g. "
            f"(data[{name!r}] - data[{name!r}].min()).dt.days, or as levels with "
            f"factor({name})"
        )


def _text_like(dtype: Any) -> bool:
    """Labels rather than numbers: text, objects, categoricals (booleans are both)."""
    if isinstance(dtype, np.dtype):  # pandas' checks below, answered by the kind
        return dtype.kind not in "biufc"
    return isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    )


def _pending(*values: Any) -> bool:
    return any(v is PENDING for v in values)


def _arith(op: str, left: Any, right: Any) -> Any:
    with np.errstate(all="ignore"):
        return _ARITHMETIC[op](left, right)


def _arguments(node: Call, count: int) -> None:
    if len(node.args) != count or node.kwargs:
        raise FormulaError(f"{deparse(node)}: {node.fn}() takes {count} argument(s)")


def _signature(node: Call, positional: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """R-style argument matching: positional in order, then by name; unknown names refused."""
    if len(node.args) > len(positional):
        raise FormulaError(f"{deparse(node)}: too many arguments (at most {len(positional)})")
    out: dict[str, Any] = {
        **{k: Bool(v) if isinstance(v, bool) else Num(v) for k, v in defaults.items()}
    }
    out |= dict(zip(positional, node.args, strict=False))
    for name, value in node.kwargs:
        if name not in (*positional, *defaults) or name in dict(
            zip(positional, node.args, strict=False)
        ):
            raise FormulaError(f"{deparse(node)}: unexpected argument {name!r}")
        out[name] = value
    if positional[0] not in out:
        raise FormulaError(f"{deparse(node)}: missing argument {positional[0]!r}")
    return out


def _constant(node: Node, call: Call) -> bool | float:
    """A literal argument: TRUE/FALSE (or T/F) or a number."""
    if isinstance(node, Bool):
        return node.value
    if isinstance(node, Name) and node.id in ("T", "F"):
        return node.id == "T"
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Num):
        return -node.operand.value
    raise FormulaError(
        f"{deparse(call)}: argument {deparse(node)!r} must be a number or TRUE/FALSE"
    )


def width(node: Node) -> int:
    """Columns of a numeric expression: ``d`` for ``poly(x, d)`` and what is built on it, else 1."""
    if isinstance(node, Call) and node.fn == "poly":
        degree = _constant(
            _signature(node, ("x", "degree"), {"degree": 1.0, "raw": False})["degree"], node
        )
        return int(degree)
    if isinstance(node, Call):
        children: tuple[Node, ...] = node.args
    elif isinstance(node, Chain):
        children = node.items
    elif isinstance(node, BinOp):
        children = (node.left, node.right)
    elif isinstance(node, Unary):
        children = (node.operand,)
    elif isinstance(node, Paren):
        children = (node.inner,)
    else:
        children = ()
    return max((width(c) for c in children), default=1)


def _unwrap(node: Node) -> Node:
    """``node`` without enclosing parentheses and ``I()``."""
    while isinstance(node, Paren) or (
        isinstance(node, Call) and node.fn == "I" and len(node.args) == 1
    ):
        node = node.inner if isinstance(node, Paren) else node.args[0]
    return node


def categorical_form(node: Node) -> bool:
    """Whether a variable is categorical whatever the data: ``factor()``, a comparison."""
    inner = _unwrap(node)
    if isinstance(inner, Call):
        return inner.fn in ("factor", "as.factor")
    return isinstance(inner, BinOp) and inner.op in _COMPARE


def state_kind(node: Node) -> type | None:
    """The state a call learns: Scale for ``scale()``, Poly for ``poly()`` (not raw), else None."""
    if not isinstance(node, Call):
        return None
    if node.fn == "scale":
        return tf.Scale
    if node.fn == "poly":
        raw = _signature(node, ("x", "degree"), {"degree": 1.0, "raw": False})["raw"]
        return None if _constant(raw, node) is True else tf.Poly
    return None
