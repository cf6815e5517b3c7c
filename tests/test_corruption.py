"""Corrupt or missing data gives a CorruptStateError naming the object, never a raw error.

Every blob of a small but complete store (head, state, wait and timer shards, journals,
log segments) is replaced in turn by each of several kinds of damage; then every client
call is made. Each must either work or raise a TtflowError, and no pass may commit a
failed run because of the damage.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ttflow_async import CorruptStateError, RunContext, TtflowError, setup
from ttflow_async._stores._memory import MemoryStore

DAMAGE = [
    b"",
    b"not json",
    b"null",
    b"42",
    b'"text"',
    b"[]",
    b"{}",
    b'{"entries": 5}',
    b"[" * 5000 + b"]" * 5000,
    b'{"states": null, "waits": 7}',
]


async def _populated() -> tuple[MemoryStore, list[str]]:
    store = MemoryStore()
    client = setup(store)

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.set_state("s", {"v": 1})
        await c.log("hello")
        await c.wait_event("go", timeout=3600)
        await c.sleep(10)

    @client.workflow()
    async def pauser(c: RunContext) -> None:
        await c.pause_once()

    await client.run("wf")
    await client.run("pauser")
    return store, sorted(await store.list_blobs())


async def _every_call(store: MemoryStore) -> None:
    client = setup(store)

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.set_state("s", {"v": 2})

    calls = [
        lambda: client.run(),
        lambda: client.run("go"),
        lambda: client.paused_runs(),
        lambda: client.run_history(),
        lambda: client.event_log(),
        lambda: client.traces(),
        lambda: client.get_state("s"),
        lambda: client.set_state("s", 3),
        lambda: client.next_wakeup(),
        lambda: client.is_locked(),
        lambda: client.collect_garbage(),
    ]
    for call in calls:
        try:
            results = await call()
        except TtflowError:
            continue
        if isinstance(results, list):
            for result in results:
                status = getattr(result, "status", None)
                message = getattr(result, "error_message", None) or ""
                assert status != "failed" or "Corrupt" not in message, result


@pytest.mark.parametrize("damage", DAMAGE, ids=[f"damage{i}" for i in range(len(DAMAGE))])
async def test_damaged_blobs_raise_ttflow_errors_only(damage: bytes) -> None:
    _, blob_ids = await _populated()
    assert len(blob_ids) >= 6
    for blob_id in blob_ids:
        store, _ = await _populated_copy(blob_ids, blob_id, damage)
        await _every_call(store)


async def _populated_copy(
    blob_ids: list[str], target: str, damage: bytes
) -> tuple[MemoryStore, str]:
    store, ids = await _populated()
    # Blob ids are fresh in each store: damage the blob of the same kind and rank.
    kind = target.split("-")[0]
    same_kind = [i for i in ids if i.split("-")[0] == kind]
    rank = [i for i in blob_ids if i.split("-")[0] == kind].index(target)
    victim = same_kind[min(rank, len(same_kind) - 1)]
    store._blobs[victim] = damage
    return store, victim


async def test_a_missing_blob_is_a_corrupt_state_error_naming_it() -> None:
    store, blob_ids = await _populated()
    head = next(i for i in blob_ids if i.startswith("hd-"))
    del store._blobs[head]
    client = setup(store)
    with pytest.raises(CorruptStateError, match=head):
        await client.paused_runs()
    with pytest.raises(CorruptStateError, match=head):
        await client.run()
    assert not await client.is_locked()


async def test_a_corrupt_state_shard_aborts_the_pass_and_fails_no_run() -> None:
    store, blob_ids = await _populated()
    shard = next(i for i in blob_ids if i.startswith("st-"))
    store._blobs[shard] = b"not json"
    client = setup(store)

    @client.workflow()
    async def reader(c: RunContext) -> None:
        await c.get_state("s")

    with pytest.raises(CorruptStateError, match=shard):
        await client.run("reader")
    assert not await client.is_locked()
    assert [h.workflow_name for h in await client.run_history()] == []


_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys, anyio
    from ttflow_async import RunContext, StoreError, setup

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    client = setup(sys.argv[1])

    @client.workflow()
    async def big(c: RunContext) -> None:
        await c.set_state("big", "x" * 100_000)

    async def main() -> None:
        await client.set_state("small", 1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        for call in (lambda: client.send_event("e", {"pad": "y" * 50_000}),
                     lambda: client.run("big")):
            try:
                await call()
            except StoreError as exc:
                print("StoreError", exc)
            else:
                print("no error")
        print("locked", await client.is_locked())

    anyio.run(main)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as a full disk is Linux's")
def test_a_full_disk_fails_cleanly_leaving_no_file_and_no_lease(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("StoreError"), lines
    assert lines[1].startswith("StoreError"), lines
    assert lines[2] == "locked False"
    inbox = tmp_path / "state.json.d" / "inbox"
    assert [p.name for p in inbox.iterdir()] == []  # no hidden .tmp left behind
