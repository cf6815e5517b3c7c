"""How many AWS requests one ``run()`` makes, and in how many sequential waves.

A client's requests are observed through botocore's own event hooks on the session the
store uses: every API call (each page of a listing included) is counted once, and a
*wave* starts whenever a call begins while no other call of the client is in flight.
A pass that fetched 100 journals one after the other would show 100 waves; the engine
fetches them together, so the number of waves must not grow with the number of runs,
and neither must the number of requests (journal packs, issue 14).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import aioboto3
import anyio
import pytest

from tests.soak import scale
from ttflow_async import Client, RunContext, StoreError, event_trigger, setup

pytestmark = pytest.mark.aws

SpecFactory = Callable[[Literal["s3", "dynamodb"]], str]

#: Sequential waves a pass may take, whatever the number of runs it resumes.
MAX_WAVES = 16


class RequestRecorder:
    """Counts API calls and sequential waves of one aioboto3 session."""

    def __init__(self) -> None:
        self.session = aioboto3.Session()
        self.session.events.register("before-call", self._before)
        self.session.events.register("after-call", self._after)
        self.session.events.register("after-call-error", self._after)
        self.in_flight = 0
        self.waves = 0
        self.operations: Counter[str] = Counter()

    def reset(self) -> None:
        self.waves = 0
        self.operations.clear()

    @property
    def requests(self) -> int:
        return sum(self.operations.values())

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.in_flight == 0:
            self.waves += 1
        self.in_flight += 1
        self.operations[model.name] += 1
        context["ttflow_counted"] = True

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        if context.pop("ttflow_counted", False):
            self.in_flight -= 1


def _client(spec: str, recorder: RequestRecorder) -> Client:
    client = setup(spec, session=recorder.session)

    @client.workflow(trigger=event_trigger("spawn_paused"))
    async def paused(c: RunContext) -> None:
        await c.pause_once()
        await c.log("resumed")

    @client.workflow(trigger=event_trigger("spawn_waiter"))
    async def waiter(c: RunContext) -> None:
        approval = await c.wait_event("approve")
        await c.log(f"approved by {approval['by']}")

    return client


async def _spawn(client: Client, event: str, count: int) -> None:
    await asyncio.gather(*(client.send_event(event) for _ in range(count)))
    results = await client.run()
    assert sum(r.status == "paused" for r in results) == count


async def _measure(kind: str, spec: str, runs: int) -> dict[str, tuple[int, int, str]]:
    """Waves, requests and the per-operation counts of each scenario."""
    recorder = RequestRecorder()
    measured: dict[str, tuple[int, int, str]] = {}

    def note(scenario: str) -> None:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(recorder.operations.items()))
        measured[scenario] = (recorder.waves, recorder.requests, ops)
        recorder.reset()

    async with _client(spec, recorder) as client:
        await client.run()  # the first pass (workflows_changed)
        recorder.reset()
        await client.run()
        note("idle run()")

        await _spawn(client, "spawn_paused", runs)
        recorder.reset()
        results = await client.run()
        assert [r.status for r in results] == ["succeeded"] * runs
        note(f"run() resuming {runs} paused runs")

        await _spawn(client, "spawn_waiter", runs)
        recorder.reset()
        results = await client.run("approve", {"by": "ana"})
        assert [r.status for r in results] == ["succeeded"] * runs
        assert all(r.logs == ["approved by ana"] for r in results)
        note(f"run('approve') waking {runs} waiting runs")

        await client.send_event("ping")
        note("send_event()")
        results = await client.run()
        note("run() with one queued event, no listener")
        assert results == []
    for scenario, (waves, requests, ops) in measured.items():
        print(f"{kind:8} {scenario:40} waves {waves:3}  requests {requests:4}  ({ops})")
    return measured


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["s3", "dynamodb"])
async def test_waves_of_a_pass_do_not_grow_with_the_runs_it_resumes(
    kind: Literal["s3", "dynamodb"], aws_spec_factory: SpecFactory
) -> None:
    # 4 times the runs in a quick run, 10 times soaking (the table in docs/aws.md).
    few_runs, many_runs = 10, scale(40, 100)
    few = await _measure(kind, aws_spec_factory(kind), few_runs)
    many = await _measure(kind, aws_spec_factory(kind), many_runs)
    for (waves_few, requests_few, _), (scenario, (waves_many, requests_many, _)) in zip(
        few.values(), many.items(), strict=True
    ):
        assert waves_few <= MAX_WAVES, scenario
        assert waves_many <= MAX_WAVES, scenario
        # More runs, the same sequential waves (give or take requests that happen to
        # overlap in one measurement and not in the other).
        assert waves_many <= waves_few + 2, scenario
        # Nor the requests: the journals of runs suspended together are one pack (one
        # read on S3 too, where one blob per journal was one GET per run), and a commit
        # appends to the logs without reading them. DynamoDB batches the rest.
        assert requests_many - requests_few <= 4, scenario
    assert many["send_event()"][1] == 1


#: Requests that change the store.
WRITES = frozenset(
    {"PutObject", "DeleteObject", "DeleteObjects", "PutItem", "DeleteItem", "BatchWriteItem"}
)


async def test_the_first_open_of_an_s3_store_proves_its_conditions_in_two_waves(
    aws_spec_factory: SpecFactory,
) -> None:
    # Every fresh process (a cron tick, a Lambda cold start) pays this once: the probe's
    # write, then its two conditional writes together (issue 14), not one after another.
    spec = aws_spec_factory("s3")
    async with _client(spec, RequestRecorder()) as client:
        await client.run()  # the store exists and has been proven once
    recorder = RequestRecorder()
    async with _client(spec, recorder) as fresh:  # entering opens the store
        await fresh.store.open()  # (and opening it again proves nothing again)
        assert recorder.operations == Counter({"PutObject": 3}), recorder.operations
        assert recorder.waves == 2, recorder.operations


@pytest.mark.parametrize("kind", ["s3", "dynamodb"])
async def test_an_idle_pass_writes_nothing_and_reads_in_one_wave(
    kind: Literal["s3", "dynamodb"], aws_spec_factory: SpecFactory
) -> None:
    # The root (which summarises its head) and the inbox listing, together; no lease.
    spec = aws_spec_factory(kind)
    recorder = RequestRecorder()
    async with _client(spec, recorder) as client:
        await client.run()  # the first pass (workflows_changed)
        await client.send_event("spawn_paused")
        await client.run()  # a paused run now waits for the next pass
        await client.run()  # which resumes it
        assert await client.run() == []  # (deletes what the resuming commit left behind)
        recorder.reset()
        assert await client.run() == []
        assert recorder.waves == 1, recorder.operations
        assert not WRITES & set(recorder.operations), recorder.operations
    fresh_recorder = RequestRecorder()  # a new process: no head kept from a pass before
    async with _client(spec, fresh_recorder) as fresh:
        await fresh.store.open()  # (the S3 store's first use probes the server's writes)
        fresh_recorder.reset()
        assert await fresh.run() == []
        assert fresh_recorder.waves == 1, fresh_recorder.operations
        assert fresh_recorder.requests == 2, fresh_recorder.operations
    async with _client(spec, recorder) as client:
        traces = await client.traces()
        assert len(traces) == 3  # one per pass that did something
        await client.run()
        assert await client.traces() == traces


async def test_a_pass_does_not_read_the_inbox_items_its_client_is_still_deleting(
    aws_spec_factory: SpecFactory,
) -> None:
    # An entered client deletes what a commit consumed alongside its next call; that
    # call's inbox listing may still see those items. Reading their bodies is wasted
    # (the head names them consumed): one GET per item, 100 extra requests for 100 runs.
    recorder = RequestRecorder()
    inbox_gets = 0

    def count_inbox_gets(model: Any, params: dict[str, Any], **_: Any) -> None:
        nonlocal inbox_gets
        if model.name == "GetObject" and "/inbox/" in params["url_path"]:
            inbox_gets += 1

    recorder.session.events.register("before-call", count_inbox_gets)
    async with _client(aws_spec_factory("s3"), recorder) as client:
        await client.run()
        await _spawn(client, "spawn_paused", 20)  # consumes 20 inbox items
        inbox_gets = 0
        results = await client.run()
        assert [r.status for r in results] == ["succeeded"] * 20
        assert inbox_gets == 0
        # Nothing was lost or left behind: a new event is still read and delivered.
        await client.send_event("spawn_paused")
        (started,) = await client.run()
        assert started.status == "paused"
        assert inbox_gets >= 1
    assert await client.store.inbox_list() == []


async def test_a_listing_answered_after_its_clients_delete_leaves_the_items_out(
    aws_spec_factory: SpecFactory,
) -> None:
    # The race behind a flaky run of the test above: the pass's listing reaches the
    # server before the client's DeleteObjects, whose answer arrives first. The listing
    # then names items this store object deleted for good: they are not read again.
    recorder = RequestRecorder()
    inbox_gets = 0
    listed, deleted = anyio.Event(), anyio.Event()
    armed = False

    def count_inbox_gets(model: Any, params: dict[str, Any], **_: Any) -> None:
        nonlocal inbox_gets
        if model.name == "GetObject" and "/inbox/" in params["url_path"]:
            inbox_gets += 1

    async def delete_after_the_listing(model: Any, **kwargs: Any) -> None:
        if armed and model.name == "DeleteObjects" and "/inbox/" in str(kwargs.get("params")):
            await listed.wait()  # the server lists the items before it deletes them

    async def answer_the_listing_after_the_delete(model: Any, **_: Any) -> None:
        if not armed:
            return
        if model.name == "ListObjectsV2" and not listed.is_set():
            listed.set()
            await deleted.wait()  # ... and the delete's answer arrives first
        elif model.name == "DeleteObjects":
            deleted.set()

    recorder.session.events.register("before-call", count_inbox_gets)
    recorder.session.events.register("before-call", delete_after_the_listing)
    recorder.session.events.register("after-call", answer_the_listing_after_the_delete)
    async with _client(aws_spec_factory("s3"), recorder) as client:
        await client.run()
        await _spawn(client, "spawn_paused", 20)  # consumes 20 inbox items
        inbox_gets, armed = 0, True
        results = await client.run()
        armed = False
        assert listed.is_set()
        assert deleted.is_set()
        assert [r.status for r in results] == ["succeeded"] * 20
        assert inbox_gets == 0
    assert await client.store.inbox_list() == []


async def test_an_inbox_listing_during_a_delete_that_fails_still_returns_the_items(
    aws_spec_factory: SpecFactory,
) -> None:
    recorder = RequestRecorder()
    deleting, fail = anyio.Event(), anyio.Event()

    async def hold_then_fail(model: Any, **_: Any) -> None:
        if model.name == "DeleteObjects":
            deleting.set()
            await fail.wait()
            raise OSError("the network went away")

    recorder.session.events.register("before-call", hold_then_fail)
    async with _client(aws_spec_factory("s3"), recorder) as client:
        store = client.store
        await store.inbox_put("a", b"1")
        await store.inbox_put("b", b"2")
        listed: list[tuple[str, bytes]] = []

        async def delete() -> None:
            with pytest.raises(StoreError):
                await store.inbox_delete(["a"])

        async def list_then_fail() -> None:
            await deleting.wait()
            async with anyio.create_task_group() as tg:

                async def listing() -> None:
                    listed.extend(await store.inbox_list())

                tg.start_soon(listing)
                await anyio.sleep(0.2)  # the listing waits for the delete in flight
                assert listed == []
                fail.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(delete)
            tg.start_soon(list_then_fail)
        assert listed == [("a", b"1"), ("b", b"2")]


async def test_an_inbox_item_is_read_once_per_store_object(
    aws_spec_factory: SpecFactory,
) -> None:
    # Inbox items never change under their id: a pass lists the inbox up to three times
    # (the idle check, the pass, the drain before its commit), and reads each body once.
    spec = aws_spec_factory("s3")
    recorder = RequestRecorder()
    async with _client(spec, recorder) as client, _client(spec, RequestRecorder()) as other:
        store = client.store
        for name in "abcde":
            await store.inbox_put(name, name.encode())
        recorder.reset()
        assert [i for i, _ in await store.inbox_list()] == list("abcde")
        assert recorder.operations["GetObject"] == 5
        recorder.reset()
        assert await store.inbox_list() == [(n, n.encode()) for n in "abcde"]
        assert recorder.operations["GetObject"] == 0
        # The listing stays the truth: what another runner deleted is gone, what another
        # sender added is read.
        await other.store.inbox_delete(["b", "d"])
        await other.store.inbox_put("f", b"f")
        recorder.reset()
        assert await store.inbox_list() == [(n, n.encode()) for n in "acef"]
        assert recorder.operations["GetObject"] == 1
