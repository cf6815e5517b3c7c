"""The two encoders of stored JSON write the same values and refuse the same input.

``_json.dumps``/``loads`` use pydantic_core's codec once the process has loaded it (it
encodes a head or a wait shard 3-4x faster than ``json``), and ``json`` before. A store
written by either is read by the other as the same values; a non-finite float is
refused by both; what pydantic_core cannot decode is decoded as ``json`` decodes it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core
import pytest

from ttflow_async import _json

VALUES: list[Any] = [
    {"w": "waiter", "since": 1796319009.401882, "wait": {"kind": "event", "deadline": None}},
    [2**70, -(2**64), 10**30, 0, -0.0, 1e-7, 1e16, 5e-324, 1.7976931348623157e308, 0.1],
    '\u2028\x00\x1f"\\/é😀\x7f',
    {"": [[], {}, [None, True, False]], "ключ": "значение"},
    {"text": "NaN and Infinity are words here", "-Infinity": "x"},
]


@pytest.fixture
def stdlib_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_json`` as in a process that has not loaded pydantic_core."""
    monkeypatch.setattr(_json, "_fast", None)
    monkeypatch.setattr(_json, "_fast_codec", lambda: None)


@pytest.fixture
def fast_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "_fast", pydantic_core)


def encode(value: Any, *, fast: bool) -> bytes:
    if fast:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_json, "_fast", pydantic_core)
            return _json.dumps(value)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_json, "_fast", None)
        m.setattr(_json, "_fast_codec", lambda: None)
        return _json.dumps(value)


def decode(data: bytes, *, fast: bool) -> Any:
    with pytest.MonkeyPatch.context() as m:
        if fast:
            m.setattr(_json, "_fast", pydantic_core)
        else:
            m.setattr(_json, "_fast", None)
            m.setattr(_json, "_fast_codec", lambda: None)
        return _json.loads(data)


@pytest.mark.parametrize("value", VALUES)
def test_what_either_codec_writes_the_other_reads_as_the_same_value(value: Any) -> None:
    for writer in (True, False):
        data = encode(value, fast=writer)
        assert json.loads(data) == value  # strict JSON, compact, UTF-8
        assert b" " not in data.replace(b"NaN and Infinity are words here", b"")
        for reader in (True, False):
            assert decode(data, fast=reader) == value
    assert repr(decode(encode(-0.0, fast=True), fast=False)) == "-0.0"


def test_a_value_nested_255_levels_deep_is_written_by_either_codec() -> None:
    value: Any = 0
    for _ in range(255):  # deeper than pydantic_core encodes or decodes
        value = [value]
    for writer in (True, False):
        data = encode(value, fast=writer)
        assert data == b"[" * 255 + b"0" + b"]" * 255
        for reader in (True, False):
            assert decode(data, fast=reader) == value


@pytest.mark.usefixtures("fast_codec")
def test_a_non_finite_float_is_refused_by_the_fast_encoder_too() -> None:
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="not JSON compliant"):
            _json.dumps({"x": [1, bad]})
    assert _json.dumps("Infinity") == b'"Infinity"'


@pytest.mark.usefixtures("stdlib_codec")
def test_a_non_finite_float_is_refused_by_the_stdlib_encoder() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        _json.dumps([math.inf])


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 255 + b"0" + b"]" * 255,  # deeper than pydantic_core decodes
        b'"\\ud800"',  # a lone surrogate escape (never written, but readable as before)
        b"[NaN, 1E400]",
        b'{"a": 1, "a": 2}',
        b'\xef\xbb\xbf{"bom": 1}',
    ],
)
def test_what_the_fast_decoder_cannot_read_is_read_as_json_reads_it(data: bytes) -> None:
    expected = json.loads(data)
    got = decode(data, fast=True)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("data", [b"", b"{", b"[1,]", b"\xff", b"[" * 100_000 + b"]" * 100_000])
def test_invalid_or_too_deep_input_is_a_value_error_for_both(data: bytes) -> None:
    for fast in (True, False):
        with pytest.raises(ValueError, match=r"Expecting|codec|too deeply"):
            decode(data, fast=fast)
