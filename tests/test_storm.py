"""The storm: many sender processes and several runner processes on one store.

Every event must be delivered exactly once (SPEC §10.1), counted by a file that the
workflow's side effect appends to, not by the engine's own records.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from tests.conftest import MakeClient
from tests.soak import scale
from tests.storm_worker import storm_client

REPO = Path(__file__).resolve().parent.parent

SENDERS = 8
RUNNERS = 2
#: Events sent in all; on the AWS stores 8 x 12 quick, 8 x 63 with ``TTFLOW_SOAK=1``.
EVENTS = {"memory": 0, "local": 2000, "s3": scale(96, 504), "dynamodb": scale(96, 504)}


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storm_worker", *args],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        },
    )


def _wait(process: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        code = process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"storm process {process.args} did not finish within {seconds} s")
    assert code == 0, f"storm process {process.args} exited with {code}"


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_storm_of_senders_and_runners_delivers_every_event_exactly_once(
    store_kind: str, store_spec: str, make_client: MakeClient, tmp_path: Path
) -> None:
    if store_kind == "memory":
        pytest.skip("a memory store cannot be shared by processes")
    total = EVENTS[store_kind]
    per_sender = total // SENDERS
    out = tmp_path / "delivered.txt"
    stop = tmp_path / "stop"
    runners = [_start("run", store_spec, str(out), str(stop)) for _ in range(RUNNERS)]
    senders = [
        _start("send", store_spec, str(out), f"s{i}", str(per_sender)) for i in range(SENDERS)
    ]
    for process in senders:
        await anyio.to_thread.run_sync(_wait, process, 400.0)
    stop.touch()
    for process in runners:
        await anyio.to_thread.run_sync(_wait, process, 200.0)
    client = storm_client(store_spec, str(out))
    await client.run()  # whatever a runner left behind (nothing, if all went well)
    delivered = Counter(out.read_text().split())
    expected = {f"s{i}-{n}" for i in range(SENDERS) for n in range(per_sender)}
    assert set(delivered) == expected, f"{len(expected - set(delivered))} events never delivered"
    twice = [event for event, times in delivered.items() if times > 1]
    assert twice == [], f"{len(twice)} events delivered more than once"
    assert await client.store.inbox_list() == []
