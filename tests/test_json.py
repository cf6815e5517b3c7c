"""Strict JSON of stored values: normalisation, refusals, the depth limit (SPEC §10.8)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel

from ttflow_async import InvalidStateError, setup
from ttflow_async._json import MAX_DEPTH, copy_json, dumps, loads, normalize


def nested(levels: int) -> Any:
    """A list nesting ``levels`` containers deep (the outermost is level 1)."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def test_normalize_returns_what_a_json_round_trip_gives() -> None:
    value = {"t": (1, 2.5, "x"), "n": None, "b": True, "d": {"k": [()]}}
    normal = normalize(value)
    assert normal == {"t": [1, 2.5, "x"], "n": None, "b": True, "d": {"k": [[]]}}
    assert loads(dumps(value)) == normal


def test_normalize_copies_containers() -> None:
    inner = [1]
    value = {"a": inner}
    normal = normalize(value)
    normal["a"].append(2)
    assert inner == [1]


def test_pydantic_models_are_dumped_in_json_mode() -> None:
    class Order(BaseModel):
        id: int
        tags: tuple[str, ...]

    assert normalize({"order": Order(id=3, tags=("a",))}) == {"order": {"id": 3, "tags": ["a"]}}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({1: "x"}, "the dict key 1 is a int"),
        ([math.nan], "not finite"),
        ({"a": [math.inf]}, "not finite"),
        ({"s": "\ud800"}, "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({"when": object()}, "type object is not JSON-serialisable"),
        ({1, 2}, "type set"),
        (b"bytes", "type bytes"),
    ],
)
def test_non_json_values_are_refused_with_the_reason(value: Any, problem: str) -> None:
    with pytest.raises(InvalidStateError, match="must be strict JSON") as refused:
        normalize(value, "state 'x'")
    assert problem in str(refused.value)
    assert str(refused.value).startswith("state 'x' must be strict JSON")


def test_refusal_names_the_path_to_the_bad_value() -> None:
    with pytest.raises(InvalidStateError, match=r"at \['a'\]\[1\]"):
        normalize({"a": [0, math.nan]})


def test_depth_limit_accepts_255_levels_and_refuses_256() -> None:
    assert MAX_DEPTH == 255
    assert normalize(nested(255)) == nested(255)
    with pytest.raises(InvalidStateError, match="nests deeper than 255 levels"):
        normalize(nested(256))
    deep_dict: Any = 0
    for _ in range(256):
        deep_dict = {"k": deep_dict}
    with pytest.raises(InvalidStateError, match="255 levels"):
        normalize(deep_dict)


async def test_depth_limit_is_enforced_at_the_public_api() -> None:
    client = setup("onmemory")
    with pytest.raises(InvalidStateError, match="255 levels"):
        await client.set_state("deep", nested(256))
    await client.set_state("deep", nested(255))
    assert await client.get_state("deep") == nested(255)


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_loads_turns_too_deep_input_into_a_value_error() -> None:
    with pytest.raises(ValueError, match="nests too deeply"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError, match="Expecting property name"):
        loads(b"{not json")


def test_copy_json_is_deep_and_shares_scalars() -> None:
    value = {"a": [{"b": "text"}]}
    copy = copy_json(value)
    assert copy == value
    copy["a"][0]["b"] = "changed"
    assert value["a"][0]["b"] == "text"
