"""Shared fixtures: every behavioural test runs against every store.

``make_client()`` builds a new client over one store per test (the same memory store
object, local file, bucket or table each time), so a test can stand in for several
processes or for a redeploy with changed code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ttflow_async import Client, setup
from ttflow_async._stores._memory import MemoryStore

pytest_plugins = ["tests.aws_server"]

STORE_KINDS = ["memory", "local", "s3", "dynamodb"]

MakeClient = Callable[..., Client]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The kind of store a behavioural test runs against."""
    kind: str = request.param
    if kind in ("s3", "dynamodb"):
        request.applymarker(pytest.mark.aws)
    return kind


@pytest.fixture
def store_spec(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A store spec string for a fresh, empty store of ``store_kind``."""
    if store_kind == "memory":
        return "onmemory"
    if store_kind == "local":
        return f"local:{tmp_path / 'store' / 'state.json'}"
    factory: Callable[[str], str] = request.getfixturevalue("aws_spec_factory")
    return factory(store_kind)


@pytest.fixture
def make_client(store_kind: str, store_spec: str) -> MakeClient:
    """``make_client(**options)``: a new client over this test's one store."""
    memory = MemoryStore() if store_kind == "memory" else None

    def make(**options: Any) -> Client:
        return setup(memory if memory is not None else store_spec, **options)

    return make
