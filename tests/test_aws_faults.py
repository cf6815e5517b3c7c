"""The AWS stores through a proxy that breaks requests: retries and lost answers.

The proxy (``tests/fault_proxy.py``) sits on real HTTP between aioboto3 and the server
(moto, SeaweedFS or DynamoDB Local: ``aws_target``) and
answers 500, drops an answer after the service applied the request, or cuts a body
short, so these tests exercise the transport failures that happen in production.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from tests.aws_server import create_resource, unique_name
from tests.fault_proxy import Fault, FaultProxy, Request
from tests.real_servers import AwsTarget
from ttflow_async import Client, RunContext, setup
from ttflow_async._errors import StoreError
from ttflow_async._stores import BlobNotFound, RootConflict, Store, store_from_spec

pytestmark = pytest.mark.aws

Kind = Literal["s3", "dynamodb"]


@pytest.fixture
async def proxy(aws_target: AwsTarget) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of moto, SeaweedFS or DynamoDB Local."""
    async with FaultProxy(aws_target.endpoint) as running:
        yield running


@pytest.fixture
def kind(aws_target: AwsTarget) -> Kind:
    """The AWS store kind of the server under test."""
    return aws_target.kind


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


# -- servers that cannot keep the guarantees ----------------------------------------------


def _recording_client(store: Store, seen: list[str], **options: Any) -> Client:
    client = setup(store, **options)

    @client.workflow()
    async def record(c: RunContext, args: dict[str, Any]) -> None:
        seen.append(args["id"])
        await c.add_list_state("seen", args["id"])

    return client


async def test_an_s3_server_that_ignores_conditional_writes_is_refused_at_open(
    kind: Kind, proxy: FaultProxy
) -> None:
    if kind != "s3":
        pytest.skip("conditional PutObject is S3's")
    proxy.faults.append(Fault(lambda r: True, "strip_conditions", times=10**6))
    with pytest.raises(StoreError, match=r"ignores conditional writes") as caught:
        await _store(kind, proxy).ensure()
    assert proxy.url in str(caught.value)
    seen: list[str] = []
    client = _recording_client(_store(kind, proxy), seen)
    with pytest.raises(StoreError, match=r"If-None-Match"):
        async with client:
            await client.run("record", {"id": "A"})
    assert seen == []
    # Nothing but the probe was written: no root, no run.
    assert not [r for r in proxy.seen if r.path.endswith("/p/root.json") and r.method == "PUT"]


async def test_an_s3_server_that_keeps_conditions_is_probed_once_per_store(
    kind: Kind, proxy: FaultProxy
) -> None:
    if kind != "s3":
        pytest.skip("conditional PutObject is S3's")
    store = _store(kind, proxy)
    await store.ensure()
    await store.open()
    await store.aclose()
    await store.open()
    await store.aclose()
    probes = [r for r in proxy.seen if r.path.endswith("/p/conditions-probe")]
    assert len(probes) == 3


async def test_dynamodb_recognises_its_own_retried_root_write_without_the_returned_item(
    kind: Kind, proxy: FaultProxy
) -> None:
    if kind != "dynamodb":
        pytest.skip("ReturnValuesOnConditionCheckFailure is DynamoDB's")
    store = _store(kind, proxy)
    first = await store.write_root(b"zero", None)
    proxy.faults.append(Fault(_root_write(kind), "drop_answer"))
    proxy.faults.append(Fault(_root_write(kind), "strip_item", times=10**6))
    version = await store.write_root(b"one", first)
    assert await store.read_root() == (b"one", version)
    with pytest.raises(RootConflict):
        await store.write_root(b"late", first)


async def test_a_lost_commit_answer_without_the_returned_item_runs_once(
    kind: Kind, proxy: FaultProxy
) -> None:
    if kind != "dynamodb":
        pytest.skip("ReturnValuesOnConditionCheckFailure is DynamoDB's")
    seen: list[str] = []
    client = _recording_client(_store(kind, proxy), seen)
    async with client:
        await client.ensure_store()
        await client.run()  # first root, so the run below commits over an existing one
        proxy.faults.append(Fault(_nth_root_write(kind, 2), "drop_answer"))
        proxy.faults.append(Fault(_root_write(kind), "strip_item", times=10**6))
        results = await client.run("record", {"id": "A"})
        assert [r.status for r in results if r.workflow_name == "record"] == ["succeeded"]
        await client.run()
        assert await client.get_state("seen") == ["A"]
    assert seen == ["A"]
    assert len(proxy.faults[0].hits) == 1


def _nth_root_write(kind: Kind, n: int) -> Callable[[Request], bool]:
    """Select the ``n``-th root write from now (1: the lease taken, 2: the commit)."""
    seen = [0]
    is_root_write = _root_write(kind)

    def matches(request: Request) -> bool:
        if not is_root_write(request):
            return False
        seen[0] += 1
        return seen[0] == n

    return matches


async def test_a_run_cancelled_during_its_lease_write_leaves_the_store_unlocked(
    kind: Kind, proxy: FaultProxy
) -> None:
    seen: list[str] = []
    client = _recording_client(_store(kind, proxy), seen)
    async with client:
        await client.ensure_store()
        await client.run()
        # The next root write (the lease being taken) is applied at once and answered
        # after 1 s; run() is cancelled while it waits for that answer.
        proxy.faults.append(Fault(_root_write(kind), "delay", delay=1.0))
        with anyio.move_on_after(0.5) as scope:
            await client.run("record", {"id": "A"})
        assert scope.cancelled_caught
        assert len(proxy.faults[0].hits) == 1
        assert not await client.is_locked()
    assert seen == []


async def _longest_stall(*calls: Callable[[], Any]) -> float:
    """The longest time a 1 ms sleep overran while ``calls`` ran one after another.

    Only the part of an overrun in which this process was running counts (its CPU time
    over the overrun): a thread holding the GIL burns CPU while it blocks the loop,
    whereas the OS scheduling other processes (other test workers on shared cores)
    stalls the loop without it.
    """
    lags: list[float] = []
    done = anyio.Event()

    async def probe() -> None:
        while not done.is_set():
            start, cpu = time.perf_counter(), time.process_time()
            await anyio.sleep(0.001)
            overrun = time.perf_counter() - start - 0.001
            lags.append(min(overrun, time.process_time() - cpu))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(probe)
        await anyio.sleep(0.05)
        for call in calls:
            await call()
        done.set()
    return max(lags)


async def test_a_new_client_never_blocks_the_event_loop(kind: Kind, aws_target: AwsTarget) -> None:
    # Straight to the server: the fault proxy would share this event loop.
    name = unique_name(kind)
    create_resource(kind, name)
    spec = f"s3:{name}/p" if kind == "s3" else f"dynamodb:{name}"

    async def new_client() -> None:
        store = store_from_spec(spec)  # a new store object, whose first call builds a client
        await store.read_root()
        await store.open()
        await store.aclose()

    # The process has built clients before (botocore parsed its data files once).
    await store_from_spec(spec).read_root()
    # Three new clients: a stall in every one is the client's; one alone can be the
    # machine's (2 shared cores).
    stalls = [await _longest_stall(new_client) for _ in range(3)]
    assert min(stalls) < 0.020, f"the loop was blocked for {[round(x * 1000) for x in stalls]} ms"


_FRESH_PROCESS = """
import sys, time, anyio
from ttflow_async._stores import store_from_spec
from tests.test_aws_faults import _longest_stall

spec, endpoint = sys.argv[1], sys.argv[2]
first = store_from_spec(spec, endpoint_url=endpoint)  # made at startup, before the loop

async def main() -> None:
    async def second() -> None:
        await store_from_spec(spec, endpoint_url=endpoint).read_root()

    print(await _longest_stall(first.read_root, second))

anyio.run(main)
"""


async def test_the_first_clients_of_a_fresh_process_never_block_the_event_loop(
    kind: Kind, aws_target: AwsTarget
) -> None:
    if aws_target.server != "moto":
        pytest.skip("the stall is the client's, whatever the server: moto is enough")
    name = unique_name(kind)
    create_resource(kind, name)
    spec = f"s3:{name}/p" if kind == "s3" else f"dynamodb:{name}"
    stalls = []
    for _ in range(3):  # a stall in every process is the clients'; one can be the machine's
        result = await anyio.run_process(
            [sys.executable, "-c", _FRESH_PROCESS, spec, aws_target.endpoint],
            cwd=Path(__file__).parent.parent,
        )
        stalls.append(float(result.stdout))
    assert min(stalls) < 0.020, f"the loop was blocked for {[round(x * 1000) for x in stalls]} ms"


async def test_dynamodb_chunks_orphaned_by_a_crash_are_listed_and_collected(
    kind: Kind, proxy: FaultProxy
) -> None:
    if kind != "dynamodb":
        pytest.skip("only DynamoDB chunks blobs")
    import boto3

    store = _store(kind, proxy, max_attempts=1)
    # The write of the first chunks fails after the further chunks were written.
    proxy.faults.append(
        Fault(
            lambda r: r.target == "BatchWriteItem" and b'"blobs"' in r.body and b'"data"' in r.body,
            "error_500",
        )
    )
    with pytest.raises(StoreError):
        await store.put_blobs({"big-1-00": os.urandom(800_000)})
    assert await store.list_blobs() == ["big-1-00"]
    with pytest.raises(BlobNotFound):
        await store.get_blobs(["big-1-00"])
    await store.delete_blobs(["big-1-00"])
    assert await store.list_blobs() == []
    left = boto3.client("dynamodb").scan(TableName=_name_of(store))["Items"]
    assert [i for i in left if i["pk"]["S"].startswith("blobs")] == []
