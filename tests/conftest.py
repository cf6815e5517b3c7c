"""Shared fixtures: every behavioural test runs against the stores it applies to.

Tests taking ``store_kind`` run on every store, except in the engine-behaviour suites
(``ENGINE_SUITES``): their tests run on memory and local, and only those marked
``@pytest.mark.all_stores`` (a representative smoke subset) on S3 and DynamoDB too, on
moto and on the real servers (SeaweedFS, DynamoDB Local: ``tests/real_servers.py``). The
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
#: The real servers the smoke subset of the engine suites runs on besides moto.
REAL_SERVERS = ("s3-seaweedfs", "dynamodb-local")
ENGINE_SUITES = frozenset(
    {"test_core_workflows", "test_core_waits", "test_core_lock", "test_core_admin"}
)

MakeClient = Callable[..., Client]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests (``@pytest.mark.slow``) first, in a stable order.

    Started first, the long ones run beside the short ones, which then fill the gaps,
    instead of one of them running alone at the end while the other workers sit idle.
    ``make test`` runs xdist with ``--dist worksteal``: a worker that runs out of tests
    takes half of a busy worker's queue. Without it (``--dist load``) each worker keeps
    the share it was handed first, and one that drew long tests still had ~45 s of work
    when the others were done.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``store_kind``: every store, or memory and local in the engine suites."""
    if "store_kind" not in metafunc.fixturenames:
        return
    kinds: list[Any] = list(STORE_KINDS)
    suite = metafunc.module.__name__.rpartition(".")[2]
    if suite in ENGINE_SUITES:
        if metafunc.definition.get_closest_marker("all_stores") is None:
            kinds = list(LOCAL_KINDS)
        else:
            marks = [pytest.mark.aws, pytest.mark.real_server]
            kinds += [pytest.param(name, marks=marks) for name in REAL_SERVERS]
    metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kind of store a behavioural test runs against (``s3-seaweedfs`` is ``s3``)."""
    name: str = request.param
    if name in REAL_SERVERS:
        from tests.real_servers import use_target  # not at import: pytest rewrites it later

        return use_target(name, request, monkeypatch).kind
    if name in ("s3", "dynamodb"):
        request.applymarker(pytest.mark.aws)
    return name


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
