"""Crash and concurrency tests with real OS processes (SPEC §6).

- SIGKILL at random points while runs commit: the store is always exactly before or
  after a run, no suspended run or queued event is lost, and the next run() proceeds.
- Two processes calling run(trigger) on one local store: every trigger ran exactly once.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.workers.durability_flows import crash_process, make_client, race_process
from tests.workers.forkserver import forkserver


def _worker(
    body: Callable[[str, int, int, Connection], None], spec: str, start: int, count: int
) -> tuple[BaseProcess, Connection]:
    """A runner process (forked from the warmed forkserver) and the pipe it reports on."""
    context = forkserver()
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=body, args=(spec, start, count, writer))
    process.start()
    writer.close()
    return process, reader


def _reports(reader: Connection) -> list[tuple[Any, ...]]:
    """Every report the process made before it ended (the pipe is closed by then)."""
    reports: list[tuple[Any, ...]] = []
    while True:
        try:
            reports.append(reader.recv())
        except EOFError:
            return reports


async def _check_consistent(spec: str) -> tuple[list[int], list[int]]:
    """The store reads cleanly and shows a whole number of runs."""
    client = make_client(spec)
    started = await client.get_state("started", [])
    seen = await client.get_state("seen", [])
    count = await client.get_state("count", 0)
    assert count == len(seen), "a run's state writes were committed in part"
    assert len(set(seen)) == len(seen), f"a run finished twice: {sorted(seen)}"
    assert len(set(started)) == len(started), f"a run started twice: {sorted(started)}"
    assert set(seen) <= set(started)
    history = Counter(h.run_id for h in await client.run_history())
    assert all(n == 1 for n in history.values())
    return started, seen


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    """The local store; tests/test_aws_runners.py does the same on S3 and DynamoDB."""
    spec = f"local:{tmp_path / 'state.json'}"
    # 60 kills land about a dozen inside passes; TTFLOW_ASYNC_SIGKILLS=200 soaks longer.
    kills = int(os.environ.get("TTFLOW_ASYNC_SIGKILLS", "60"))
    rng = random.Random(20261126)
    confirmed: set[int] = set()
    attempted: set[int] = set()
    next_tick = 0
    killed = 0
    mid_pass = 0
    while killed < kills:
        worker, reader = _worker(crash_process, spec, next_tick, 50)
        ready = await anyio.to_thread.run_sync(reader.poll, 60)
        assert ready, f"the runner did not start (exit code {worker.exitcode})"
        assert reader.recv() == ("ready",)
        await anyio.sleep(rng.uniform(0.0, 0.25))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(worker.join)
        assert worker.exitcode == -signal.SIGKILL, "the runner ended before it was killed"
        killed += 1
        mid_pass += await make_client(spec).is_locked()
        sent = [int(report[1]) for report in _reports(reader) if report[0] == "sent"]
        confirmed.update(sent)
        attempted.update(range(next_tick, (max(sent) + 2) if sent else next_tick + 1))
        next_tick = max(attempted) + 1
        await _check_consistent(spec)

    # After the storm: one clean runner finishes everything that is left.
    client = make_client(spec, lease_seconds=0.3)
    for _ in range(3):
        await client.run(lock_timeout=10)
    _started, seen = await _check_consistent(spec)
    assert confirmed <= set(seen), f"lost ticks: {sorted(confirmed - set(seen))}"
    assert set(seen) <= attempted
    assert await client.paused_runs() == []
    assert await client.store.inbox_list() == []
    assert not await client.is_locked()
    assert killed == kills
    # The kills must really land inside passes (lease held), not only between them.
    assert mid_pass >= kills // 5, f"only {mid_pass} of {kills} kills landed inside a pass"
    print(f"{mid_pass} of {kills} kills landed inside a pass")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_two_processes_every_trigger_runs_exactly_once(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    workers = [_worker(race_process, spec, start, 100) for start in (0, 1000)]
    for worker, reader in workers:
        await anyio.to_thread.run_sync(worker.join)
        assert worker.exitcode == 0
        assert _reports(reader) == [("done",)]
    client = make_client(spec)
    await client.run()  # fires any trigger that was queued behind a held lock
    bumped = await client.get_state("bumped")
    assert sorted(bumped) == [*range(100), *range(1000, 1100)]
    assert await client.get_state("bumps") == 200
    history = await client.run_history()
    assert len([h for h in history if h.workflow_name == "bump"]) == 200
    assert await client.store.inbox_list() == []
