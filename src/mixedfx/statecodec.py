"""The formula's learned state as plain JSON: numbers, strings and booleans, never code.

A model file stores the formula as text and, per stateful part of it, what
was learned from the training rows (:mod:`mixedfx.frame.transforms`)::

    {"key": "factor(k)", "type": "levels", "labels": [0, 1], "ordered": false}
    {"key": "scale(Days)", "type": "scale", "center": 4.5, "scale": 2.88}
    {"key": "poly(Days, 2)", "type": "poly", "alpha": [4.5, 4.5], "norm2": [1, 180, 1485, 9504]}

Reading builds only these three records from data, checks every field
(types, lengths, finiteness, positivity) and that each key is a part of the
re-parsed formula of the right kind, and that every part the formula needs
has its state: anything else is a :class:`~mixedfx.errors.ModelFileError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import ModelFileError
from .frame import state as state_mod
from .frame import transforms as tf
from .frame.formula import ParsedFormula


def encode(states: Mapping[str, tf.State]) -> list[dict[str, Any]]:
    """The states as JSON records, in key order."""
    out: list[dict[str, Any]] = []
    for key in sorted(states):
        s = states[key]
        if isinstance(s, tf.Levels):
            out.append(
                {
                    "key": key,
                    "type": "levels",
                    "labels": list(s.labels),
                    "ordered": s.ordered,
                }
            )
        elif isinstance(s, tf.Scale):
            out.append({"key": key, "type": "scale", "center": s.center, "scale": s.scale})
        else:
            out.append({"key": key, "type": "poly", "alpha": list(s.alpha), "norm2": list(s.norm2)})
    return out


def _fail(key: object, what: str) -> ModelFileError:
    return ModelFileError(f"model file: the learned state of {key!r} is malformed ({what})")


def _numbers(key: str, values: Any, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(values, list) or (n is not None and len(values) != n):
        raise _fail(key, "a list of numbers of the wrong length")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _fail(key, "a value that is not a finite number")
        out.append(float(v))
    return tuple(out)


def _optional(key: str, value: Any, positive: bool) -> float | None:
    if value is None:
        return None
    (v,) = _numbers(key, [value])
    if positive and v <= 0:
        raise _fail(key, "a scale that is not positive")
    return v


def _levels(key: str, d: dict[str, Any]) -> tf.Levels:
    """Labels with their JSON types (``"1"`` and ``1`` are two levels), distinct as labels."""
    labels = d.get("labels")
    if not isinstance(labels, list) or not labels:
        raise _fail(key, "labels must be a non-empty list")
    for v in labels:
        if not isinstance(v, str | int | float | bool) or (
            isinstance(v, float) and not math.isfinite(v)
        ):
            raise _fail(key, "a label that is not a string, number or boolean")
    if not pd.Index(labels, dtype=object).is_unique:
        raise _fail(key, "labels must be distinct")
    if not isinstance(d.get("ordered"), bool):
        raise _fail(key, "ordered must be true or false")
    return tf.Levels(tuple(labels), d["ordered"])


def _state(d: Any) -> tuple[str, tf.State]:
    if not isinstance(d, dict) or not isinstance(d.get("key"), str):
        raise ModelFileError("model file: a learned state without a key")
    key, kind = d["key"], d.get("type")
    fields = {"levels": {"labels", "ordered"}, "scale": {"center", "scale"}}
    fields["poly"] = {"alpha", "norm2"}
    if kind not in fields or set(d) != {"key", "type", *fields[kind]}:
        raise _fail(key, f"type {kind!r} with fields {sorted(d)}")
    if kind == "levels":
        return key, _levels(key, d)
    if kind == "scale":
        return key, tf.Scale(_optional(key, d["center"], False), _optional(key, d["scale"], True))
    alpha = _numbers(key, d["alpha"])
    norm2 = _numbers(key, d["norm2"], len(alpha) + 2)
    if not 1 <= len(alpha) <= tf.MAX_POLY_DEGREE or min(norm2) <= 0:
        raise _fail(key, "a polynomial degree or norm out of range")
    return key, tf.Poly(alpha, norm2)


def decode(items: Any, parsed: ParsedFormula) -> dict[str, tf.State]:
    """The states of a model file, checked against its (re-parsed) formula.

    Raises
    ------
    ModelFileError
        For a malformed record, a key that is not a part of the formula or
        of another kind, or a stateful part of the formula without a state.
    """
    if not isinstance(items, list):
        raise ModelFileError("model file: the learned states must be a list")
    states = dict(_state(d) for d in items)
    if len(states) != len(items):
        raise ModelFileError("model file: a learned state appears twice")
    kinds = state_mod.parts(parsed)
    for key, s in states.items():
        allowed = kinds.get(key)
        if allowed is None:
            raise ModelFileError(
                f"model file: a learned state for {key!r}, which the formula lacks"
            )
        if not isinstance(s, allowed):
            raise _fail(key, f"a {type(s).__name__.lower()} state where the formula has another")
    missing = [k for k, kind in kinds.items() if kind is not tf.Levels and k not in states]
    missing += [k for k in state_mod.factor_calls(parsed) if k not in states]
    if missing:
        raise ModelFileError(f"model file: no learned state for {sorted(missing)}")
    return states
