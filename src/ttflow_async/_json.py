"""Strict JSON: validation, normalisation and compact encoding of stored values.

Every value the engine stores (state, args, event args, side-effect results) goes
through :func:`normalize`, which both checks it and returns the exact value a JSON
round trip would give (tuples become lists), so user code sees the same values on
first execution as on replay.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from ._errors import InvalidStateError

JsonValue = Any
"""A value made only of dict (str keys), list, str, int, float (finite), bool, None."""

MAX_DEPTH = 255
"""The deepest nesting stored: the outermost container is level 1."""

_SCALARS = (int, bool, type(None))


def _bad_text(text: str) -> bool:
    """Whether ``text`` holds a lone UTF-16 surrogate (it cannot be encoded as UTF-8)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _where(path: str) -> str:
    if not path:
        return ""
    return f" at {path}" if len(path) <= 120 else f" at {path[:120]}..."


def _fail(what: str, path: str, problem: str) -> InvalidStateError:
    where = _where(path)
    return InvalidStateError(
        f"{what} must be strict JSON, but{where} {problem}; use only dict (with str keys), "
        "list, str, int, finite float, bool and None (convert other values first)"
    )


def normalize(value: Any, what: str = "the value", path: str = "") -> JsonValue:
    """Return a fresh strict-JSON copy of ``value`` or raise :class:`InvalidStateError`.

    Pydantic models are dumped in JSON mode first, so they can be passed as args.
    Strings must be valid Unicode (no lone surrogates) and containers may nest at most
    :data:`MAX_DEPTH` levels.
    """
    return _normalize(value, what, path, 0)


def _normalize(value: Any, what: str, path: str, depth: int) -> JsonValue:
    if isinstance(value, str):
        if _bad_text(value):
            raise _fail(what, path, "the string holds a lone surrogate (invalid Unicode)")
        return value
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(what, path, f"the float {value!r} is not finite")
        return value
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        raise InvalidStateError(
            f"{what} nests deeper than {MAX_DEPTH} levels{_where(path)}; "
            "flatten it (store deep structures as a string, or split them)"
        )
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(what, path, f"the dict key {key!r} is a {type(key).__name__}")
            if _bad_text(key):
                raise _fail(what, path, f"the dict key {key!r} holds a lone surrogate")
            out[key] = _normalize(item, what, f"{path}[{key!r}]", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_normalize(item, what, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        return _normalize(dump(mode="json"), what, path, depth)
    raise _fail(what, path, f"a value of type {type(value).__name__} is not JSON-serialisable")


def copy_json(value: JsonValue) -> JsonValue:
    """A cheap deep copy of an already-normalised value (scalars are shared)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _std_dumps(value: JsonValue) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _std_loads(data: bytes) -> JsonValue:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON nests too deeply to be decoded") from None


_fast: Any = None
"""``pydantic_core`` once something else has imported it (see :func:`_fast_codec`)."""


def _fast_codec() -> Any:
    """pydantic_core's JSON codec (Rust), if the process has loaded it already.

    It encodes a head or a wait shard 3-4x faster than :mod:`json` and decodes it 2x
    faster, but importing it costs a fresh process ~35 ms: this module never imports
    it. Every pass that finishes a run has loaded it (the results are pydantic models);
    an idle pass, which encodes nothing, never does.
    """
    global _fast
    if _fast is None:  # looked up until found, then kept
        _fast = sys.modules.get("pydantic_core")
    return _fast


def dumps(value: JsonValue) -> bytes:
    """Encode a normalised value compactly (UTF-8, no spaces).

    The output is the same JSON whichever encoder writes it (floats may differ in how
    they write an exponent: ``1e-7`` or ``1e-07``, the same number). A non-finite float
    is refused with ``ValueError`` by both: pydantic_core would write ``NaN`` or
    ``Infinity``, so output holding either word is encoded again by :mod:`json`, which
    raises for the float (and writes the same bytes for a string holding the word), as
    is a value nested deeper than pydantic_core encodes.
    """
    fast = _fast_codec()
    if fast is None:
        return _std_dumps(value)
    try:
        data: bytes = fast.to_json(value)
    except ValueError:  # nesting deeper than its limit (about 200 levels; 255 are valid)
        return _std_dumps(value)
    if b"NaN" in data or b"Infinity" in data:
        return _std_dumps(value)
    return data


def loads(data: bytes) -> JsonValue:
    """Decode bytes written by :func:`dumps`.

    Raises ``ValueError`` for anything that is not such JSON, including nesting too deep
    for the decoder (a ``RecursionError`` inside ``json``). What pydantic_core cannot
    decode (nesting deeper than its limit of about 200 levels, a lone surrogate escape,
    invalid JSON) is decoded by :mod:`json`, so both accept and refuse the same input.
    """
    fast = _fast_codec()
    if fast is not None:
        try:
            return fast.from_json(data)
        except ValueError:
            pass
    return _std_loads(data)
