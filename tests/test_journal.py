"""The replay journal: positional matching, mismatch errors, side-effect frames."""

from __future__ import annotations

from typing import Any

import pytest

from ttflow_async import NondeterminismError
from ttflow_async._journal import (
    Entry,
    Frame,
    Suspend,
    close_done,
    close_failed,
    describe,
    is_closed,
)


def frame(entries: list[Entry] | None = None) -> Frame:
    return Frame([] if entries is None else entries, run_id="r1", workflow_name="wf")


def test_steps_match_by_position_and_past_the_end_return_none() -> None:
    recorded = frame([["gs", "count", 1], ["lg", None, "hi"]])
    assert recorded.next("gs", "count") == ["gs", "count", 1]
    assert recorded.position() == "1"
    assert recorded.peek() == ["lg", None, "hi"]
    assert recorded.next("lg", None) == ["lg", None, "hi"]
    assert recorded.peek() is None
    assert recorded.next("ss", "count") is None
    assert recorded.pos == 2


def test_append_records_at_the_cursor_and_replays_the_same() -> None:
    entries: list[Entry] = []
    first = frame(entries)
    first.append("gs", "a", 5)
    first.append("ev", "ping", {"x": 1})
    assert entries == [["gs", "a", 5], ["ev", "ping", {"x": 1}]]
    again = frame(entries)
    assert again.next("gs", "a") == ["gs", "a", 5]
    assert again.next("ev", "ping") == ["ev", "ping", {"x": 1}]


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("ss", "count", "reached set_state 'count' at position 1"),
        ("gs", "other", "reached get_state 'other' at position 1"),
    ],
)
def test_a_different_step_raises_nondeterminism_naming_both(
    kind: str, name: str, expected: str
) -> None:
    recorded = frame([["lg", None, "x"], ["gs", "count", 1]])
    recorded.next("lg", None)
    with pytest.raises(NondeterminismError) as mismatch:
        recorded.next(kind, name)
    message = str(mismatch.value)
    assert expected in message
    assert "journal recorded get_state 'count' there" in message
    assert "run r1 of workflow 'wf'" in message
    assert recorded.pos == 1  # a mismatch consumes nothing


def test_mismatch_in_a_nested_frame_names_the_top_position_and_the_nested_step() -> None:
    root = frame([["gs", "a", 1], ["se", "outer", None, [["ev", "x", None]], {}]])
    root.next("gs", "a")
    entry, index = root.reserve_sideeffect("outer")
    assert (index, root.position(index)) == (1, "1")
    body = root.child(entry[3], 1, owner=None)
    with pytest.raises(NondeterminismError) as mismatch:
        body.next("ev", "y")
    message = str(mismatch.value)
    assert "at position 1 (nested step 1.0)" in message
    assert "event 'x'" in message


def test_new_side_effect_is_reserved_open_with_nested_entries_and_meta() -> None:
    entries: list[Entry] = []
    root = frame(entries)
    entry, index = root.reserve_sideeffect("notify")
    assert (index, root.position(index)) == (0, "0")
    assert entry == ["se", "notify", None, [], {}]
    assert not is_closed(entry)
    body = root.child(entry[3], 0, owner=7)
    assert body.path == (0,)
    assert body.owner == 7
    body.append("lg", None, "inside")
    assert body.position() == "0.1"
    assert entries == [["se", "notify", None, [["lg", None, "inside"]], {}]]


def test_closed_side_effect_replays_in_one_step() -> None:
    entries: list[Entry] = []
    first = frame(entries)
    entry, _ = first.reserve_sideeffect("charge")
    close_done(entry, {"ok": True})
    assert entries == [["se", "charge", {"ok": True}]]
    assert is_closed(entry)
    replayed, index = frame(entries).reserve_sideeffect("charge")
    assert replayed is entries[0]
    assert index == 0
    assert is_closed(replayed)


def test_failed_side_effect_is_closed_with_its_error() -> None:
    entries: list[Entry] = []
    entry, _ = frame(entries).reserve_sideeffect("charge")
    error: dict[str, Any] = {"type": "builtins.ValueError", "message": "no", "args": ["no"]}
    close_failed(entry, error)
    assert entries == [["er", "charge", error]]
    replayed, _ = frame(entries).reserve_sideeffect("charge")
    assert is_closed(replayed)
    assert replayed[0] == "er"


def test_open_side_effect_resumes_its_nested_journal() -> None:
    entries: list[Entry] = [["se", "job", None, [["gs", "k", 3]], {"attempt": 2}]]
    entry, _ = frame(entries).reserve_sideeffect("job")
    assert not is_closed(entry)
    body = frame(entry[3])
    assert body.next("gs", "k") == ["gs", "k", 3]
    assert entry[4] == {"attempt": 2}


def test_old_unjournaled_failure_runs_its_body_again() -> None:
    entries: list[Entry] = [["fe", "job", None]]
    entry, _ = frame(entries).reserve_sideeffect("job")
    assert entry == ["se", "job", None, [], {}]
    assert not is_closed(entry)


def test_side_effect_at_a_position_recorded_as_something_else_is_a_mismatch() -> None:
    recorded = frame([["gs", "k", 1]])
    with pytest.raises(NondeterminismError, match="side effect 'job' at position 0"):
        recorded.reserve_sideeffect("job")
    renamed = frame([["se", "old", 1]])
    with pytest.raises(NondeterminismError, match="recorded side effect 'old'"):
        renamed.reserve_sideeffect("new")


def test_describe_names_steps_readably() -> None:
    assert describe("se", "notify") == "side effect 'notify'"
    assert describe("lg", None) == "log"
    assert describe("zz", "x") == "zz 'x'"


def test_suspend_is_not_an_exception_so_except_exception_cannot_swallow_it() -> None:
    assert not issubclass(Suspend, Exception)
    waiting = {"kind": "timer", "due": 1.0}
    assert Suspend(waiting).waiting is waiting
