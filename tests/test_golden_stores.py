"""Golden stores: checked-in stores of every storage format version must stay readable.

tests/golden/v1/ was written by tests/golden/make_v1_store.py and tests/golden/v2/ by
make_v2_store.py; they are never regenerated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.golden.flows import make_client

GOLDEN = Path(__file__).parent / "golden"


async def test_version_1_store_reads_and_resumes(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN / "v1", tmp_path / "v1")
    client = make_client(f"local:{tmp_path / 'v1' / 'state.json'}")

    paused = {p.workflow_name + ":" + p.waiting_for["kind"] for p in await client.paused_runs()}
    assert paused == {"order:event", "reminder:timer"}
    assert await client.get_state("orders") == ["tea", "cake"]
    assert await client.get_state("mode") == {"level": 3}
    assert await client.next_wakeup() is not None
    assert [t.trigger_name for t in await client.traces()] == ["order", "order", "reminder"]
    assert "workflows_changed" in [e.event_name for e in await client.event_log()]

    results = await client.run("approve:tea", {"by": "ana"})
    by_name = {r.workflow_name: r for r in results}
    assert by_name["order"].logs == ["2 x tea at 3", "approved by ana"]
    assert by_name["note"].logs == ["note: left in the inbox"]
    assert {h.workflow_name for h in await client.run_history()} == {"order", "note"}
    (cake,) = [p for p in await client.paused_runs() if p.workflow_name == "order"]
    assert await client.run_logs(cake.run_id) == ["1 x cake at 5"]


async def test_version_1_store_becomes_version_2_at_its_first_commit(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN / "v1", tmp_path / "v1")
    root = tmp_path / "v1" / "state.json"
    assert json.loads(root.read_text())["v"] == 1
    client = make_client(f"local:{root}")
    await client.run()  # delivers the queued note: a commit
    assert json.loads(root.read_text())["v"] == 2
    assert await client.get_state("orders") == ["tea", "cake"]
    assert {p.workflow_name for p in await client.paused_runs()} == {"order", "reminder"}


async def test_version_2_store_reads_and_resumes(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN / "v2", tmp_path / "v2")
    client = make_client(f"local:{tmp_path / 'v2' / 'state.json'}")

    paused = {p.workflow_name + ":" + p.waiting_for["kind"] for p in await client.paused_runs()}
    assert paused == {"order:event", "reminder:timer"}
    history = {h.status: h for h in await client.run_history()}
    assert set(history) == {"failed", "cancelled"}
    assert history["failed"].error_message == "KeyError('pie')"
    assert (history["failed"].error_traceback or "").rstrip().endswith("KeyError: 'pie'")
    assert history["cancelled"].error_message == "one reminder is enough"
    assert await client.get_state("orders") == ["tea", "cake"]
    assert await client.get_state("mode") == {"level": 3}

    results = await client.run("approve:tea", {"by": "ana"})
    by_name = {r.workflow_name: r for r in results}
    assert by_name["order"].logs == ["2 x tea at 3", "approved by ana"]
    assert by_name["note"].logs == ["note: left in the inbox"]
    assert await client.run("order", {"item": "tea", "quantity": 1}, key="fresh-key") != []
