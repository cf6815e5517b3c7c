"""The AWS stores through a proxy that breaks requests: retries and lost answers.

The proxy (``tests/fault_proxy.py``) sits on real HTTP between aioboto3 and moto and
answers 500, drops an answer after the service applied the request, or cuts a body
short, so these tests exercise the transport failures that happen in production.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest

from tests.aws_server import create_resource, unique_name
from tests.fault_proxy import Fault, FaultProxy, Request
from ttflow_async._errors import StoreError
from ttflow_async._stores import RootConflict, Store, store_from_spec

pytestmark = pytest.mark.aws

Kind = Literal["s3", "dynamodb"]


@pytest.fixture
async def proxy(aws_endpoint: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the moto server."""
    async with FaultProxy(aws_endpoint) as running:
        yield running


@pytest.fixture(params=["s3", "dynamodb"])
def kind(request: pytest.FixtureRequest) -> Kind:
    """Each AWS store kind."""
    chosen: Kind = request.param
    return chosen


def _store(kind: Kind, proxy: FaultProxy, **options: object) -> Store:
    name = unique_name(kind)
    create_resource(kind, name)
    spec = f"s3:{name}/p" if kind == "s3" else f"dynamodb:{name}"
    return store_from_spec(spec, endpoint_url=proxy.url, **options)


def _name_of(store: Store) -> str:
    return str(getattr(store, "bucket", None) or getattr(store, "table", ""))


def _root_write(kind: Kind) -> Callable[[Request], bool]:
    if kind == "s3":
        return lambda r: r.method == "PUT" and r.path.endswith("/p/root.json")
    return lambda r: r.target == "PutItem" and b'"root"' in r.body


def _writes(kind: Kind) -> Callable[[Request], bool]:
    if kind == "s3":
        return lambda r: r.method in {"PUT", "POST"}
    return lambda r: r.target in {"PutItem", "BatchWriteItem"}


async def test_transient_server_errors_are_retried(kind: Kind, proxy: FaultProxy) -> None:
    store = _store(kind, proxy)
    fault = Fault(_writes(kind), "error_500", times=2)
    proxy.faults.append(fault)
    version = await store.write_root(b"one", None)
    assert len(fault.hits) == 2
    assert await store.read_root() == (b"one", version)
    proxy.faults.append(Fault(_writes(kind), "error_500", times=2))
    await store.put_blobs({"a-1-00": b"a", "b-1-00": os.urandom(500_000)})
    assert (await store.get_blobs(["a-1-00"]))["a-1-00"] == b"a"


@pytest.mark.parametrize("existing", [False, True])
async def test_a_root_write_whose_answer_was_lost_still_succeeds(
    kind: Kind, proxy: FaultProxy, existing: bool
) -> None:
    store = _store(kind, proxy)
    expected = await store.write_root(b"zero", None) if existing else None
    fault = Fault(_root_write(kind), "drop_answer")
    proxy.faults.append(fault)
    # The service applies the write, the answer is lost, botocore sends it again and
    # that retry finds its own write in place: the store recognises it.
    version = await store.write_root(b"one", expected)
    assert len(fault.hits) == 1
    assert len([r for r in proxy.seen if _root_write(kind)(r)]) == (3 if existing else 2)
    assert await store.read_root() == (b"one", version)
    # A writer that really is late still loses.
    with pytest.raises(RootConflict):
        await store.write_root(b"late", expected)
    assert await store.read_root() == (b"one", version)


async def test_a_body_cut_short_is_read_again(kind: Kind, proxy: FaultProxy) -> None:
    store = _store(kind, proxy)
    blob = os.urandom(200_000)
    await store.put_blobs({"j-1-00": blob})
    if kind == "s3":
        fault = Fault(lambda r: r.method == "GET" and r.path.endswith("/blobs/j-1-00"), "cut_body")
    else:
        fault = Fault(lambda r: r.target == "BatchGetItem", "cut_body")
    proxy.faults.append(fault)
    assert await store.get_blobs(["j-1-00"]) == {"j-1-00": blob}
    assert len(fault.hits) == 1


async def test_persistent_failures_raise_a_store_error_naming_the_store(
    kind: Kind, proxy: FaultProxy
) -> None:
    from botocore.exceptions import ClientError

    store = _store(kind, proxy, max_attempts=2)
    name = _name_of(store)
    proxy.faults.append(Fault(lambda r: True, "error_500", times=10))
    with pytest.raises(StoreError) as caught:
        await store.read_root()
    assert name in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientError)
    assert len(proxy.faults[0].hits) == 2


async def test_a_connection_that_keeps_dying_raises_a_store_error(
    kind: Kind, proxy: FaultProxy
) -> None:
    store = _store(kind, proxy, max_attempts=2)
    name = _name_of(store)
    proxy.faults.append(Fault(lambda r: True, "drop_answer", times=10))
    with pytest.raises(StoreError, match=name):
        await store.put_blobs({"a-1-00": b"a"})
