"""A ``Trigger`` is a value: equal by kind and name, hashable, immutable, copyable.

It is a plain class (a frozen dataclass cost ~1 ms at import, in every fresh
process), so these properties are kept by hand and checked here.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from ttflow_async import Trigger, event_trigger, every_trigger, state_trigger


def test_triggers_are_equal_by_kind_and_name_and_hash_alike() -> None:
    assert event_trigger("x") == Trigger("event", "x")
    assert hash(event_trigger("x")) == hash(Trigger("event", "x"))
    assert event_trigger("x") != state_trigger("x")
    assert event_trigger("x") != event_trigger("y")
    assert event_trigger("x") != ("event", "x")
    assert len({event_trigger("x"), event_trigger("x"), every_trigger()}) == 2


def test_a_trigger_cannot_be_changed() -> None:
    trigger = event_trigger("x")
    with pytest.raises(AttributeError, match="cannot be changed"):
        trigger.name = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot be changed"):
        del trigger.kind
    with pytest.raises(AttributeError):
        trigger.other = 1  # type: ignore[attr-defined]
    assert (trigger.kind, trigger.name, trigger.event_name) == ("event", "x", "x")


def test_a_trigger_survives_copy_and_pickle() -> None:
    trigger = state_trigger("temp")
    for again in (copy.copy(trigger), copy.deepcopy(trigger), pickle.loads(pickle.dumps(trigger))):
        assert again == trigger
        assert again.event_name == "state_changed_temp"
    assert repr(trigger) == "Trigger(kind='state', name='temp')"
