"""Several real runner processes on one S3 or DynamoDB store: races, fencing, crashes.

Every runner is an OS process of its own (see ``tests/aws_workers.py``); the store is
moto's server over HTTP (the race runs on SeaweedFS and DynamoDB Local too). These
tests check SIGKILL-level guarantees of SPEC §6: one runner at a time, no lost update,
fencing of an expired runner, atomic commits.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from tests.aws_workers import (
    aws_environment,
    build_client,
    crash_trial,
    fenced_runner,
    race_worker,
)
from tests.real_servers import AwsTarget
from tests.soak import scale
from tests.workers.forkserver import forkserver
from ttflow_async import Client
from ttflow_async._view import read_view

pytestmark = pytest.mark.aws

SpecFactory = Callable[[Literal["s3", "dynamodb"]], str]


def _join(process: Any, seconds: float) -> int:
    process.join(seconds)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail(f"runner process {process.pid} did not finish within {seconds} s")
    code: int = process.exitcode
    return code


async def _inbox_ids(client: Client) -> list[str]:
    return [item_id for item_id, _ in await client.store.inbox_list()]


async def _consumed_ids(client: Client) -> set[str]:
    """Inbox ids the last commit consumed (kept in the head; in the root before v2)."""
    view = await read_view(client.store)
    return view.previously_consumed()


# -- race -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eight_racing_processes_run_every_trigger_exactly_once(
    aws_target: AwsTarget, aws_spec_factory: SpecFactory, tmp_path: Path
) -> None:
    # On moto, SeaweedFS and DynamoDB Local (``aws_target``).
    spec = aws_spec_factory(aws_target.kind)
    processes, runs = 8, scale(6, 40)
    context = forkserver()
    workers = [
        context.Process(
            target=race_worker,
            args=(spec, aws_environment(), index, runs, str(tmp_path / f"race-{index}.json")),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        assert _join(worker, 540) == 0
    reports = [json.loads((tmp_path / f"race-{i}.json").read_text()) for i in range(processes)]
    queued = sum(r["queued"] for r in reports)
    statuses = [s for r in reports for s in r["statuses"]]
    assert set(statuses) <= {"succeeded"}

    async def check() -> None:
        async with build_client(spec) as client:
            # Triggers that met a held lock were queued; the next pass fires them.
            await client.run()
            expected = sorted(f"{p}-{i}" for p in range(processes) for i in range(runs))
            seen = await client.get_state("seen")
            assert sorted(seen) == expected  # every trigger ran, none twice
            assert await client.get_state("counter") == processes * runs
            history = [h for h in await client.run_history() if h.workflow_name == "tick"]
            assert len(history) == processes * runs
            assert {h.status for h in history} == {"succeeded"}
            assert len({h.run_id for h in history}) == processes * runs
        # After the exit: an entered client deletes consumed items when it leaves.
        assert await _inbox_ids(build_client(spec)) == []

    anyio.run(check)
    assert len(statuses) + queued == processes * runs


# -- fencing ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_runner_whose_lease_expired_cannot_commit(
    aws_target: AwsTarget, aws_spec_factory: SpecFactory, tmp_path: Path
) -> None:
    # On moto, SeaweedFS and DynamoDB Local (``aws_target``).
    spec = aws_spec_factory(aws_target.kind)
    marker, out = tmp_path / "inside", tmp_path / "a.json"

    async def before() -> None:
        async with build_client(spec) as client:
            await client.run()  # first pass: workflows_changed
            await client.send_event("ping", {"id": "p1"})

    anyio.run(before)
    runner_a = forkserver().Process(
        target=fenced_runner, args=(spec, aws_environment(), str(marker), str(out))
    )
    runner_a.start()
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert runner_a.is_alive()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Freeze A inside its run: it cannot renew its 1 s lease, which expires.
        assert runner_a.pid is not None
        os.kill(runner_a.pid, signal.SIGSTOP)

        async def take_over() -> list[str]:
            async with build_client(spec) as client:
                while await client.is_locked():  # noqa: ASYNC110 - another process holds it
                    await anyio.sleep(0.05)
                results = await client.run("slow_job", {"by": "B", "id": "B"}, lock_timeout=30)
                return sorted(f"{r.workflow_name}:{r.status}" for r in results)

        assert anyio.run(take_over) == ["on_ping:succeeded", "slow_job:succeeded"]
    finally:
        if runner_a.pid is not None and runner_a.is_alive():
            os.kill(runner_a.pid, signal.SIGCONT)
    assert _join(runner_a, 60) == 0
    report = json.loads(out.read_text())
    # A's commit was rejected; its trigger went to the inbox instead of being lost.
    assert report["queued"] is True
    assert "expired" in report["error"]

    async def after() -> None:
        async with build_client(spec) as client:
            # Nothing of A's run was committed; B's commit stands.
            assert await client.get_state("slow_job_by") == "B"
            assert sorted(await client.get_state("seen")) == ["B", "p1"]
            assert await client.get_state("counter") == 1
            # A's queued trigger runs exactly once, and nothing else runs again.
            results = await client.run()
            assert [(r.workflow_name, r.status) for r in results] == [("slow_job", "succeeded")]
            assert await client.get_state("slow_job_by") == "A"
            assert await client.run() == []
            assert sorted(await client.get_state("seen")) == ["A", "B", "p1"]
            assert await client.get_state("counter") == 1
            names = sorted(h.workflow_name for h in await client.run_history())
            assert names == ["on_ping", "slow_job", "slow_job"]
        # After the exit: an entered client deletes consumed items when it leaves.
        assert await _inbox_ids(build_client(spec)) == []

    anyio.run(after)


# -- crashes ----------------------------------------------------------------------------


class _Ledger:
    """What the test has sent, and the check that the store is before or after a pass."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.sent: list[str] = []
        self.keeper: str | None = None

    async def snapshot(self, client: Client) -> tuple[list[str], int, int]:
        seen = await client.get_state("seen", [])
        counter = await client.get_state("counter", 0)
        passes = await client.get_state("keeper_passes", 0)
        return list(seen), counter, passes

    async def check(self, client: Client, before: tuple[list[str], int, int]) -> bool:
        """Assert before-or-after and nothing lost; True if the pass committed."""
        seen, counter, passes = await self.snapshot(client)
        pending = [i for i in self.sent if i not in before[0]]
        committed = (seen, counter, passes) != before
        if committed:
            # Exactly after: every pending ping delivered once, the keeper resumed once.
            assert seen == before[0] + pending
            assert counter == before[1] + len(pending)
            assert passes == before[2] + 1
        assert len(set(seen)) == len(seen)
        # Nothing lost: each ping not delivered yet still waits in the inbox (items a
        # committed pass consumed but did not delete yet are named in the root).
        waiting = set(await _inbox_ids(client)) - await _consumed_ids(client)
        assert len(waiting) == len([i for i in self.sent if i not in seen])
        paused = [r for r in await client.paused_runs() if r.workflow_name == "keeper"]
        assert [r.run_id for r in paused] == [self.keeper]
        return committed


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_during_commit_leaves_the_store_before_or_after(
    aws_target: AwsTarget, aws_spec_factory: SpecFactory, tmp_path: Path
) -> None:
    # On moto, SeaweedFS and DynamoDB Local (``aws_target``). Every write request of a
    # pass is a kill point, before it is sent and after its answer, and each is hit
    # once, in a shuffled order (15 writes on S3: 30 kills; 5 on DynamoDB: 10). Quick
    # runs hit 8 of them, drawn at random each time; ``TTFLOW_SOAK=1`` hits them all.
    kind = aws_target.kind
    spec = aws_spec_factory(kind)
    rounds = 1
    ledger = _Ledger(spec)
    context = forkserver()
    env = aws_environment()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))

    async def start() -> None:
        async with build_client(spec) as client:
            (result,) = [r for r in await client.run("keeper") if r.workflow_name == "keeper"]
            ledger.keeper = result.run_id

    anyio.run(start)

    async def send(item_id: str) -> tuple[list[str], int, int]:
        async with build_client(spec) as client:
            await client.send_event("ping", {"id": item_id})
            ledger.sent.append(item_id)
            return await ledger.snapshot(client)

    async def verify(before: tuple[list[str], int, int]) -> bool:
        async with build_client(spec) as client:
            return await ledger.check(client, before)

    kills, trials, most_writes = 0, 0, 0
    points: list[tuple[int, str]] = []  # the kill points of this round still to hit
    wanted = 1  # until the first pass has counted its writes
    outcomes: dict[str, int] = {}
    while kills < wanted:
        trials += 1
        assert trials <= 4 * wanted + 1, f"only {kills} kills in {trials} trials"
        before = anyio.run(send, f"ping-{trials}")
        out = tmp_path / f"trial-{trials}.json"
        # The first pass is measured; later ones are killed at one of its write requests.
        if trials == 1:
            kill_at, phase = 10**6, "before"
        else:
            if not points:
                points = [(n, p) for n in range(1, most_writes + 1) for p in ("before", "after")]
                rng.shuffle(points)
            kill_at, phase = points.pop()
        trial = context.Process(target=crash_trial, args=(spec, env, kill_at, phase, str(out)))
        trial.start()
        code = _join(trial, 120)
        if code == -signal.SIGKILL:
            kills += 1
        else:
            assert code == 0
            most_writes = max(most_writes, json.loads(out.read_text())["writes"])
            wanted = max(wanted, min(rounds * 2 * most_writes, scale(8, 10**6)))
        committed = anyio.run(verify, before)
        key = f"{phase}-{kill_at if code else 'none'}-{'after' if committed else 'before'}"
        outcomes[key] = outcomes.get(key, 0) + 1

    async def final() -> None:
        async with build_client(spec, lease_seconds=1) as client:
            await client.run(lock_timeout=60)
            assert await client.get_state("seen") == ledger.sent
            assert await client.get_state("counter") == len(ledger.sent)
            paused = [r.run_id for r in await client.paused_runs()]
            assert paused == [ledger.keeper]
        # After the exit: an entered client deletes consumed items when it leaves.
        assert await _inbox_ids(build_client(spec)) == []

    anyio.run(final)
    print(f"{kind}: {kills} kills in {trials} trials, outcomes {sorted(outcomes.items())}")
