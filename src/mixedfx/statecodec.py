"""A whitelist JSON codec for formulaic's learned state (no pickle, no code).

formulaic remembers what it learned from training data (category levels,
contrasts, centring and scaling constants, polynomial coefficients) in plain
containers that hold a few formulaic types. This codec writes those as tagged
JSON and, when reading, constructs only the whitelisted types below from
data; anything else is refused, so a model file can never name a class or a
function to run.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np
from formulaic.parser.types import Factor
from formulaic.transforms import contrasts as fc
from formulaic.utils.sentinels import UNSET

from .errors import ModelFileError

_CONTRASTS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        fc.TreatmentContrasts,
        fc.SumContrasts,
        fc.PolyContrasts,
        fc.HelmertContrasts,
        fc.DiffContrasts,
        fc.SASContrasts,
        fc.CustomContrasts,
    )
}


def encode(obj: Any) -> Any:
    """Tagged JSON for formulaic state; raises ModelFileError on unknown types."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | float | np.integer | np.floating | np.bool_):
        return obj.item() if isinstance(obj, np.generic) else obj
    if obj is UNSET:
        return {"__unset__": True}
    if isinstance(obj, Factor.Kind):
        return {"__kind__": obj.value}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise ModelFileError(f"cannot save an array of dtype {obj.dtype} in the model spec")
        return {"__array__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, fc.ContrastsState):
        return {
            "__contrasts_state__": {
                "contrasts": encode(obj.contrasts),
                "levels": encode(obj.levels),
            }
        }
    if type(obj).__name__ in _CONTRASTS and isinstance(obj, _CONTRASTS[type(obj).__name__]):
        fields = {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
        return {"__contrasts__": type(obj).__name__, "fields": fields}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v) for v in obj]}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in obj.items()]}
    if isinstance(obj, enum.Enum):
        raise ModelFileError(f"cannot save enum {obj!r} in the model spec")
    raise ModelFileError(f"cannot save an object of type {type(obj).__name__} in the model spec")


def _key(value: Any) -> Any:
    """Dict keys must be hashable: lists from JSON become tuples."""
    return tuple(_key(v) for v in value) if isinstance(value, list) else value


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode`; builds only whitelisted types."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict) or len(obj) not in (1, 2):
        raise ModelFileError("model file: malformed fixed-effects state")
    if "__unset__" in obj:
        return UNSET
    if "__kind__" in obj:
        try:
            return Factor.Kind(obj["__kind__"])
        except ValueError as exc:
            raise ModelFileError(f"model file: unknown factor kind {obj['__kind__']!r}") from exc
    if "__array__" in obj:
        dtype = np.dtype(str(obj.get("dtype", "float64")))
        if dtype.kind not in "biuf":
            raise ModelFileError(f"model file: array dtype {dtype} is not allowed")
        return np.asarray(obj["__array__"], dtype=dtype)
    if "__contrasts_state__" in obj:
        inner = obj["__contrasts_state__"]
        return fc.ContrastsState(
            contrasts=decode(inner["contrasts"]), levels=decode(inner["levels"])
        )
    if "__contrasts__" in obj:
        cls = _CONTRASTS.get(obj["__contrasts__"])
        if cls is None:
            raise ModelFileError(f"model file: unknown contrasts {obj['__contrasts__']!r}")
        return cls(**{str(k): decode(v) for k, v in dict(obj["fields"]).items()})
    if "__tuple__" in obj:
        return tuple(decode(v) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_key(decode(k)): decode(v) for k, v in obj["__dict__"]}
    raise ModelFileError(f"model file: unknown tag in fixed-effects state: {sorted(obj)}")
