"""Concurrency inside a run: gather and task groups of side effects, parallel and map (§10.4)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import MakeClient
from ttflow_async import (
    BatchResult,
    Client,
    CompletionConfig,
    RetryPolicy,
    RunContext,
    setup,
)

START = 2_000_000.0


class Clock:
    """A hand-moved clock (epoch seconds)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def ts(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


async def test_gather_of_ten_side_effects_replays_with_each_body_run_once(
    make_client: MakeClient,
) -> None:
    client = make_client()
    runs: list[int] = []

    @client.sideeffect()
    async def fetch(c: RunContext, n: int) -> int:
        # Later calls finish first: positions must follow the calls, not completions.
        await asyncio.sleep(0.002 * (10 - n))
        runs.append(n)
        await c.log(f"fetched {n}")
        return n * n

    @client.workflow()
    async def fan(c: RunContext) -> list[int]:
        results = await asyncio.gather(*(fetch(c, n) for n in range(10)))
        await c.pause_once()
        again = await asyncio.gather(*(fetch(c, n) for n in range(10, 12)))
        return [*results, *again]

    assert [r.status for r in await client.run("fan")] == ["paused"]
    (done,) = await client.run()
    assert done.status == "succeeded"
    assert done.result == [n * n for n in range(12)]
    assert sorted(runs) == list(range(12))
    assert sorted(done.logs) == sorted(f"fetched {n}" for n in range(12))


async def test_task_groups_of_side_effects_work_and_suspend(make_client: MakeClient) -> None:
    clock = Clock()
    client = make_client(clock=clock)
    attempts: dict[str, int] = {}

    @client.sideeffect(retry=RetryPolicy(initial_delay=5, jitter="none"))
    async def call(c: RunContext, key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        await asyncio.sleep(0)
        if key.endswith("flaky") and attempts[key] == 1:
            raise ConnectionError(key)
        return key.upper()

    @client.workflow()
    async def grouped(c: RunContext) -> list[str]:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(call(c, "a"))
            b = tg.create_task(call(c, "b-flaky"))
        async with anyio.create_task_group() as group:
            group.start_soon(call, c, "c")
            group.start_soon(call, c, "d-flaky")
        return [a.result(), b.result(), await call(c, "e")]

    (first,) = await client.run("grouped")
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["retry"]["sideeffect"] == "call"
    clock.now += 5
    (second,) = await client.run()
    assert second.status == "paused"
    clock.now += 5
    (third,) = await client.run()
    assert third.status == "succeeded"
    assert third.result == ["A", "B-FLAKY", "E"]
    assert attempts == {"a": 1, "b-flaky": 2, "c": 1, "d-flaky": 2, "e": 1}


async def test_nested_calls_inside_concurrent_side_effects_stay_in_their_frames(
    make_client: MakeClient,
) -> None:
    client = make_client()
    inner_runs: list[str] = []

    @client.sideeffect()
    async def inner(c: RunContext, tag: str) -> str:
        inner_runs.append(tag)
        return f"<{tag}>"

    @client.sideeffect()
    async def outer(c: RunContext, tag: str, delay: float) -> str:
        first = await inner(c, f"{tag}1")
        await asyncio.sleep(delay)
        await c.log(f"outer {tag}")
        second = await inner(c, f"{tag}2")
        if tag == "x":
            await c.wait_event("go")
        return first + second

    @client.workflow()
    async def nested(c: RunContext) -> list[str]:
        return list(await asyncio.gather(outer(c, "x", 0.01), outer(c, "y", 0.0)))

    assert [r.status for r in await client.run("nested")] == ["paused"]
    (done,) = await client.run("go")
    assert done.status == "succeeded"
    assert done.result == ["<x1><x2>", "<y1><y2>"]
    assert sorted(inner_runs) == ["x1", "x2", "y1", "y2"]
    assert sorted(done.logs) == ["outer x", "outer y"]


async def test_parallel_with_a_sleeping_branch_keeps_the_other_results(
    make_client: MakeClient,
) -> None:
    clock = Clock()
    client = make_client(clock=clock)
    ran: list[str] = []

    async def quick(c: RunContext) -> str:
        ran.append("quick")
        await c.log("quick")
        return "q"

    async def slow(c: RunContext) -> str:
        ran.append("slow")
        await c.sleep(60, name="slow-branch")
        return "s"

    async def broken(c: RunContext) -> str:
        ran.append("broken")
        raise KeyError("nope")

    @client.workflow()
    async def fan(c: RunContext) -> dict[str, Any]:
        batch = await c.parallel([quick, slow, broken], name="three")
        return {
            "status": batch.status,
            "reason": batch.completion_reason,
            "results": batch.get_results(),
            "errors": [repr(e) for e in batch.get_errors()],
            "counts": [batch.success_count, batch.failure_count, batch.total_count],
            "items": [i.status for i in batch.succeeded() + batch.failed()],
        }

    (first,) = await client.run("fan")
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    wait = paused.waiting_for
    assert wait["kind"] == "batch"
    assert wait["name"] == "three"
    assert [w["index"] for w in wait["waiting"]] == [1]
    assert wait["waiting"][0]["waiting_for"]["name"] == "slow-branch"
    assert ts((await client.next_wakeup()) or 0) == START + 60
    clock.now += 60
    (done,) = await client.run()
    assert done.status == "succeeded"
    assert done.result == {
        "status": "failed",
        "reason": "all_completed",
        "results": ["q", "s"],
        "errors": [repr(KeyError("nope"))],
        "counts": [2, 1, 3],
        "items": ["succeeded", "succeeded", "failed"],
    }
    assert sorted(ran) == ["broken", "quick", "slow", "slow"]  # finished branches never rerun
    assert done.logs == ["quick"]


async def test_branches_waiting_for_events_resume_on_each(make_client: MakeClient) -> None:
    client = make_client()

    async def waiter(c: RunContext, name: str, index: int) -> Any:
        return await c.wait_event(name)

    @client.workflow()
    async def gate(c: RunContext) -> list[Any]:
        batch = await c.map(["a", "b", "a"], waiter, item_namer=lambda item, i: f"{item}{i}")
        return batch.get_results()

    assert [r.status for r in await client.run("gate")] == ["paused"]
    (paused,) = await client.paused_runs()
    assert [w["name"] for w in paused.waiting_for["waiting"]] == ["a0", "b1", "a2"]
    assert [r.status for r in await client.run("b", {"got": "b"})] == ["paused"]
    (done,) = await client.run("a", {"got": "a"})
    assert done.status == "succeeded"
    assert done.result == [{"got": "a"}, {"got": "b"}, {"got": "a"}]


async def test_min_successful_stops_early_and_unstarted_branches_never_run(
    make_client: MakeClient,
) -> None:
    client = make_client()
    started: list[int] = []

    async def work(c: RunContext, item: int, index: int) -> int:
        started.append(index)
        return item * 10

    @client.workflow()
    async def first_two(c: RunContext) -> dict[str, Any]:
        batch = await c.map(
            range(6),
            work,
            max_concurrency=1,
            completion=CompletionConfig(min_successful=2),
        )
        return {
            "reason": batch.completion_reason,
            "status": batch.status,
            "results": batch.get_results(),
            "total": batch.total_count,
            "statuses": [item.status for item in batch.items],
        }

    (done,) = await client.run("first_two")
    assert done.result == {
        "reason": "min_successful_reached",
        "status": "succeeded",
        "results": [0, 10],
        "total": 6,
        "statuses": ["succeeded", "succeeded"] + ["not_started"] * 4,
    }
    assert started == [0, 1]


@pytest.mark.parametrize(
    ("completion", "status", "reason"),
    [
        (CompletionConfig(tolerated_failure_count=2), "succeeded", "all_completed"),
        (CompletionConfig(tolerated_failure_count=1), "failed", "failure_tolerance_exceeded"),
        (CompletionConfig(tolerated_failure_percentage=40), "succeeded", "all_completed"),
        (
            CompletionConfig(tolerated_failure_percentage=39.9),
            "failed",
            "failure_tolerance_exceeded",
        ),
        (None, "failed", "all_completed"),
    ],
)
async def test_failure_tolerance_by_count_and_percentage(
    make_client: MakeClient, completion: CompletionConfig | None, status: str, reason: str
) -> None:
    client = make_client()

    async def work(c: RunContext, item: int, index: int) -> int:
        if item in (1, 3):  # 2 failures out of 5 = 40 %
            raise ValueError(f"item {item}")
        return item

    @client.workflow()
    async def tolerant(c: RunContext) -> list[str]:
        batch = await c.map(range(5), work, max_concurrency=1, completion=completion)
        return [batch.status, batch.completion_reason]

    (done,) = await client.run("tolerant")
    assert done.result == [status, reason]


async def test_map_never_exceeds_max_concurrency(make_client: MakeClient) -> None:
    client = make_client()
    in_flight = 0
    peak = 0

    @client.sideeffect()
    async def io(c: RunContext, n: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return n

    async def item(c: RunContext, n: int, index: int) -> int:
        return await io(c, n)

    @client.workflow()
    async def wide(c: RunContext) -> int:
        batch = await c.map(range(1000), item, max_concurrency=8)
        batch.throw_if_error()
        return sum(batch.get_results())

    (done,) = await client.run("wide")
    assert done.result == sum(range(1000))
    assert peak == 8


async def test_a_batch_counts_its_finished_branches_instead_of_rescanning_them(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After each finished branch the batch checks whether it is complete. Scanning
    # every branch for that made a batch quadratic in its size; it keeps counts now,
    # and scans its branches once when it starts and once for its final status.
    from ttflow_async import _batch

    counts = _batch._counts
    scans = 0

    def counted(state: dict[str, Any]) -> tuple[int, int]:
        nonlocal scans
        scans += 1
        return counts(state)

    monkeypatch.setattr(_batch, "_counts", counted)
    client = make_client()

    async def work(c: RunContext, item: int, index: int) -> int:
        if item % 10 == 0:
            raise ValueError(f"item {item}")
        return item

    @client.workflow()
    async def wide(c: RunContext) -> list[Any]:
        tolerant = CompletionConfig(tolerated_failure_percentage=10)
        batch = await c.map(range(200), work, max_concurrency=8, completion=tolerant)
        return [batch.status, batch.completion_reason, len(batch.succeeded())]

    (done,) = await client.run("wide")
    assert done.result == ["succeeded", "all_completed", 180]
    assert scans <= 2


async def test_a_run_timeout_cancels_every_branch_of_a_map_still_running(
    make_client: MakeClient,
) -> None:
    # The branches run in tasks of the batch's own; a run whose budget is spent while
    # they wait is cancelled with all of them, and none goes on after run() returned.
    client = make_client(run_timeout=0.2)
    cancelled: list[int] = []

    async def stuck(c: RunContext, item: int, index: int) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(item)
            raise

    @client.workflow()
    async def wide(c: RunContext) -> None:
        await c.map(range(5), stuck)

    (done,) = await client.run("wide")
    assert done.status == "failed"
    assert "WorkflowTimeoutError" in (done.error_message or "")
    assert sorted(cancelled) == [0, 1, 2, 3, 4]
    assert not await client.is_locked()


async def test_nested_parallels_resume(make_client: MakeClient) -> None:
    client = make_client()
    runs: list[str] = []

    async def leaf(c: RunContext, tag: str, index: int) -> str:
        runs.append(tag)
        if tag == "b2":
            await c.pause_once()
        return tag

    async def group(c: RunContext, tags: list[str], index: int) -> list[Any]:
        inner: BatchResult = await c.map(tags, leaf)
        return inner.get_results()

    @client.workflow()
    async def tree(c: RunContext) -> list[Any]:
        outer = await c.map([["a1", "a2"], ["b1", "b2"]], group, name="outer")
        return outer.get_results()

    assert [r.status for r in await client.run("tree")] == ["paused"]
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["kind"] == "batch"
    assert paused.waiting_for["waiting"][0]["waiting_for"]["kind"] == "batch"
    (done,) = await client.run()
    assert done.result == [["a1", "a2"], ["b1", "b2"]]
    assert sorted(runs) == ["a1", "a2", "b1", "b2", "b2"]


async def test_bad_batch_options_are_refused(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="tolerated_failure_percentage"):
        CompletionConfig(tolerated_failure_percentage=101)

    async def branch(c: RunContext) -> None:
        return None

    @client.workflow()
    async def zero(c: RunContext) -> None:
        await c.parallel([branch], max_concurrency=0)

    (result,) = await client.run("zero")
    assert result.status == "failed"
    assert "max_concurrency" in (result.error_message or "")


async def test_using_the_parent_context_inside_a_branch_blocks_the_run(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def confused(c: RunContext) -> None:
        async def branch(child: RunContext) -> None:
            await c.log("wrong context")

        await c.parallel([branch, branch])

    (result,) = await client.run("confused")
    assert result.status == "blocked"
    assert "c.parallel" in (result.error_message or "")


def build_fanout(spec: str, body_log: Path, **options: Any) -> Client:
    """The client of the mid-parallel crash test, the same in the killed process and here."""
    client = setup(spec, **options)

    @client.sideeffect()
    async def work(c: RunContext, tag: str) -> str:
        with body_log.open("a") as log:
            log.write(f"{tag}\n")
        if tag == "b":
            await asyncio.sleep(float(os.environ.get("WORK_SECONDS", "0")))
        return tag.upper()

    async def branch_a(c: RunContext) -> str:
        return await work(c, "a")

    async def branch_b(c: RunContext) -> str:
        await c.pause_once()
        return await work(c, "b")

    @client.workflow()
    async def fanout(c: RunContext) -> list[Any]:
        batch = await c.parallel([branch_a, branch_b], name="ab")
        return batch.get_results()

    return client


FANOUT_CHILD = """
import asyncio, sys
from pathlib import Path
from tests.test_concurrency_batch import build_fanout

async def main() -> None:
    client = build_fanout(sys.argv[1], Path(sys.argv[2]))
    await client.run("fanout")
    await client.run()

asyncio.run(main())
"""


def test_a_crash_mid_parallel_reruns_no_finished_branch(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'store' / 'state.json'}"
    body_log = tmp_path / "bodies.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", FANOUT_CHILD, spec, str(body_log)],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "WORK_SECONDS": "3600"},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while "b" not in (body_log.read_text().split() if body_log.exists() else []):
            assert child.poll() is None, "the child process ended before branch b started"
            assert time.monotonic() < deadline, "branch b never started"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    client = build_fanout(spec, body_log, clock=lambda: time.time() + 120)

    async def resume() -> list[Any]:
        (result,) = await client.run()
        assert result.status == "succeeded"
        return list(result.result)

    assert anyio.run(resume) == ["A", "B"]
    assert body_log.read_text().split() == ["a", "b", "b"]  # a ran once; b's pass died


async def test_gather_siblings_of_a_suspended_call_do_not_outlive_the_run(
    make_client: MakeClient,
) -> None:
    client = make_client()
    finished: list[str] = []

    @client.sideeffect()
    async def waits(c: RunContext) -> Any:
        return await c.wait_event("go")

    @client.sideeffect()
    async def slow(c: RunContext) -> str:
        await asyncio.sleep(0.05)
        finished.append("slow")
        await c.log("slow done")
        return "slow"

    @client.workflow()
    async def pair(c: RunContext) -> list[Any]:
        return list(await asyncio.gather(waits(c), slow(c)))

    (first,) = await client.run("pair")
    assert first.status == "paused"
    await asyncio.sleep(0.1)
    assert finished == []  # cancelled with the run, not left running past the pass
    finished.clear()
    (done,) = await client.run("go", 1)
    assert done.status == "succeeded"
    assert done.result == [1, "slow"]
    assert done.logs == ["slow done"]
    assert finished == ["slow"]
