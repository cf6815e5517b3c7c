"""Golden stores: checked-in stores of every storage format version must stay readable.

tests/golden/v1/ was written by tests/golden/make_v1_store.py, tests/golden/v2/ by
make_v2_store.py, tests/golden/v3/ by make_v3_store.py and tests/golden/v4/ by
make_v4_store.py; they are never regenerated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.golden.flows import make_client
from ttflow_async._layout import FORMAT_VERSION

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


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_an_older_store_becomes_the_current_version_at_its_first_commit(
    tmp_path: Path, version: int
) -> None:
    shutil.copytree(GOLDEN / f"v{version}", tmp_path / "old")
    root = tmp_path / "old" / "state.json"
    assert json.loads(root.read_text())["v"] == version
    client = make_client(f"local:{root}")
    orders = await client.get_state("orders")
    paused = sorted(p.run_id for p in await client.paused_runs())
    await client.run()  # delivers the queued note: a commit
    assert json.loads(root.read_text())["v"] == FORMAT_VERSION == 4
    assert await client.get_state("orders") == orders
    assert sorted(p.run_id for p in await client.paused_runs()) == paused


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


V3_PAUSED = [
    ("order", "approve:cake"),
    ("order", "approve:tea"),
    ("order", "approve:tea"),
    ("reminder", ""),
]
"""What waits in the version-3 and version-4 stores (written by the same sequence)."""


async def _paused(client: Any) -> list[tuple[str, str]]:
    return sorted(
        (p.workflow_name, p.waiting_for.get("name", "")) for p in await client.paused_runs()
    )


async def test_version_3_store_reads_and_resumes_runs_from_a_shared_journal_pack(
    tmp_path: Path,
) -> None:
    shutil.copytree(GOLDEN / "v3", tmp_path / "v3")
    root = tmp_path / "v3" / "state.json"
    blobs = tmp_path / "v3" / "state.json.d" / "blobs"
    client = make_client(f"local:{root}")

    def packs() -> list[str]:
        return sorted(p.name for p in blobs.iterdir() if p.name.startswith("jp-"))

    (pack,) = packs()  # the journals of the tea and cake orders, suspended in one pass
    assert await _paused(client) == V3_PAUSED
    history = {h.status: h for h in await client.run_history()}
    assert set(history) == {"failed", "cancelled"}
    assert history["failed"].error_message == "KeyError('pie')"
    assert sorted(await client.get_state("orders")) == ["cake", "tea", "tea"]
    assert await client.get_state("mode") == {"level": 3}
    (cake,) = [p for p in await client.paused_runs() if p.waiting_for.get("name") == "approve:cake"]
    assert await client.run_logs(cake.run_id) == ["1 x cake at 5"]

    results = await client.run("approve:tea", {"by": "ana"})
    tea_logs = sorted(tuple(r.logs) for r in results if r.workflow_name == "order")
    assert tea_logs == [
        ("1 x tea at 3", "approved by ana"),
        ("2 x tea at 3", "approved by ana"),
    ]
    assert packs() == [pack]  # the cake order still reads its journal from it
    assert json.loads(root.read_text())["v"] == FORMAT_VERSION

    (done,) = await client.run("approve:cake", {"by": "bo"})
    assert done.logs == ["1 x cake at 5", "approved by bo"]
    assert packs() == []  # its last journal released: the pack went with the commit
    assert [p.workflow_name for p in await client.paused_runs()] == ["reminder"]
    assert await client.run("order", {"item": "tea", "quantity": 1}, key="fresh-key") != []


async def test_version_4_store_delivers_the_item_left_in_its_inbox_log(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN / "v4", tmp_path / "v4")
    root = tmp_path / "v4" / "state.json"
    logs = tmp_path / "v4" / "state.json.d" / "inbox-logs"
    client = make_client(f"local:{root}")
    (log,) = logs.iterdir()  # the note sent last, in the log of the client that sent it

    assert await _paused(client) == V3_PAUSED
    assert sorted(await client.get_state("orders")) == ["cake", "tea", "tea"]
    results = await client.run("approve:tea", {"by": "ana"})
    by_name = sorted((r.workflow_name, tuple(r.logs)) for r in results)
    assert by_name == [
        ("note", ("note: left in the inbox",)),
        ("order", ("1 x tea at 3", "approved by ana")),
        ("order", ("2 x tea at 3", "approved by ana")),
    ]
    assert not log.exists()  # its one item consumed and its writer gone: deleted
    assert await client.run() == []  # delivered once
    assert json.loads(root.read_text())["v"] == FORMAT_VERSION
