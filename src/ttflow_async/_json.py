"""Strict JSON: validation, normalisation and compact encoding of stored values.

Every value the engine stores (state, args, event args, side-effect results) goes
through :func:`normalize`, which both checks it and returns the exact value a JSON
round trip would give (tuples become lists), so user code sees the same values on
first execution as on replay.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ._errors import InvalidStateError

JsonValue = Any
"""A value made only of dict (str keys), list, str, int, float (finite), bool, None."""

_SCALARS = (str, int, bool, type(None))


def _fail(what: str, path: str, problem: str) -> InvalidStateError:
    where = f" at {path}" if path else ""
    return InvalidStateError(
        f"{what} must be strict JSON, but{where} {problem}; use only dict (with str keys), "
        "list, str, int, finite float, bool and None (convert other values first)"
    )


def normalize(value: Any, what: str = "the value", path: str = "") -> JsonValue:
    """Return a fresh strict-JSON copy of ``value`` or raise :class:`InvalidStateError`.

    Pydantic models are dumped in JSON mode first, so they can be passed as args.
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(what, path, f"the float {value!r} is not finite")
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(what, path, f"the dict key {key!r} is a {type(key).__name__}")
            out[key] = normalize(item, what, f"{path}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [normalize(item, what, f"{path}[{i}]") for i, item in enumerate(value)]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        return normalize(dump(mode="json"), what, path)
    raise _fail(what, path, f"a value of type {type(value).__name__} is not JSON-serialisable")


def copy_json(value: JsonValue) -> JsonValue:
    """A cheap deep copy of an already-normalised value (scalars are shared)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def dumps(value: JsonValue) -> bytes:
    """Encode a normalised value compactly."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def loads(data: bytes) -> JsonValue:
    """Decode bytes written by :func:`dumps`."""
    return json.loads(data)
