"""Shared fixtures: every behavioural test runs against the stores it applies to.

Tests taking ``store_kind`` run on every store, except in the engine-behaviour suites
(``ENGINE_SUITES``): their tests run on memory and local, and only those marked
``@pytest.mark.all_stores`` (a representative smoke subset) on S3 and DynamoDB too. The
store protocol, runner, fault and race suites run every test on every store.

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
LOCAL_KINDS = ["memory", "local"]
ENGINE_SUITES = frozenset(
    {"test_core_workflows", "test_core_waits", "test_core_lock", "test_core_admin"}
)

MakeClient = Callable[..., Client]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``store_kind``: every store, or memory and local in the engine suites."""
    if "store_kind" not in metafunc.fixturenames:
        return
    kinds = STORE_KINDS
    suite = metafunc.module.__name__.rpartition(".")[2]
    if suite in ENGINE_SUITES and metafunc.definition.get_closest_marker("all_stores") is None:
        kinds = LOCAL_KINDS
    metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture
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
