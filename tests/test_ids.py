"""Random identifiers are version-4 UUIDs, as ``uuid.uuid4()`` makes them."""

from __future__ import annotations

import uuid

from ttflow_async._ids import random_hex, random_uuid


def test_a_random_uuid_is_a_canonical_version_4_uuid() -> None:
    for _ in range(1000):
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_random_hex_is_the_hex_form_of_a_version_4_uuid() -> None:
    digits = random_hex()
    assert len(digits) == 32
    assert uuid.UUID(hex=digits).version == 4
    assert uuid.UUID(hex=digits).hex == digits


def test_random_ids_do_not_repeat() -> None:
    assert len({random_uuid() for _ in range(10_000)}) == 10_000
