"""The local file store: its files, bad files, and sharing between clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttflow_async import CorruptStateError, RunContext, setup
from ttflow_async._stores import BlobNotFound


def _flows(spec: str):  # type: ignore[no-untyped-def]
    client = setup(spec)

    @client.workflow()
    async def hello(c: RunContext) -> None:
        await c.set_state("greeted", True)

    return client


async def test_creates_missing_folders_and_keeps_siblings(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "er" / "state.json"
    client = _flows(f"local:{root}")
    await client.run("hello")
    assert root.exists()
    assert (tmp_path / "deep" / "er" / "state.json.d" / "blobs").is_dir()
    assert (tmp_path / "deep" / "er" / "state.json.d" / "inbox").is_dir()
    assert (tmp_path / "deep" / "er" / "state.json.lock").exists()
    stored = json.loads(root.read_text())
    assert stored["format"] == "ttflow-async"
    assert stored["lease"] is None


async def test_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    root = tmp_path / "state.json"
    root.write_bytes(b"")
    client = _flows(f"local:{root}")
    assert await client.get_state("greeted") is None
    await client.run("hello")
    assert await client.get_state("greeted") is True


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"greeted": true, "_ttflow_state": {}}',  # another program's JSON
        b'{"format": "ttflow-async", "v": 99}',  # a future format
        b"\x00\x01binary",
    ],
)
async def test_foreign_or_corrupt_file_is_refused_and_untouched(
    tmp_path: Path, content: bytes
) -> None:
    root = tmp_path / "state.json"
    root.write_bytes(content)
    client = _flows(f"local:{root}")
    with pytest.raises(CorruptStateError, match=r"state\.json"):
        await client.run("hello")
    with pytest.raises(CorruptStateError):
        await client.get_state("greeted")
    with pytest.raises(CorruptStateError):
        await client.set_state("greeted", False)
    assert root.read_bytes() == content


async def test_corrupt_blob_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "state.json"
    client = _flows(f"local:{root}")
    await client.run("hello")
    head_id = json.loads(root.read_text())["head"]
    (tmp_path / "state.json.d" / "blobs" / head_id).write_bytes(b"garbage")
    with pytest.raises(CorruptStateError, match="not valid JSON"):
        await client.get_state("greeted")


async def test_two_clients_share_one_file(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    first = _flows(spec)
    await first.run("hello")
    second = setup(spec)
    assert await second.get_state("greeted") is True


_WITHOUT_FCNTL = """
import sys
sys.modules["fcntl"] = None  # what a system without POSIX file locks (Windows) has
import anyio
import ttflow_async
from ttflow_async import StoreError, setup

async def main() -> None:
    client = setup("onmemory")  # the package and the other stores still work
    await client.run()
    try:
        setup(sys.argv[1])
    except StoreError as exc:
        print(exc)

anyio.run(main)
"""


def test_without_posix_file_locks_the_local_store_says_so_and_the_rest_works(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FCNTL, f"local:{tmp_path / 'state.json'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "the local store needs POSIX file locks" in done.stdout
    assert "WSL" in done.stdout
    assert not (tmp_path / "state.json").exists()


async def test_an_inbox_item_file_is_read_once_per_store_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Item files (formats 1 to 3) never change under their id: a pass lists the inbox up
    # to three times (the idle check, the pass, the drain before its commit), and reads
    # each file once.
    from ttflow_async._stores import _local

    store = _local.LocalFileStore(tmp_path / "state.json")
    other = _local.LocalFileStore(tmp_path / "state.json")
    await store.ensure()
    for name in "abcdef":
        (tmp_path / "state.json.d" / "inbox" / name).write_bytes(name.encode())
    reads: list[str] = []
    read_file = _local._read_file

    def counted(path: str) -> bytes:
        reads.append(os.path.basename(path))
        return read_file(path)

    monkeypatch.setattr(_local, "_read_file", counted)
    assert [i for i, _ in await store.inbox_list()] == list("abcdef")
    assert sorted(reads) == list("abcdef")
    reads.clear()
    assert await store.inbox_list() == [(n, n.encode()) for n in "abcdef"]
    assert reads == []
    # The listing stays the truth: what another runner deleted is gone.
    await other.inbox_delete(["b", "d"])
    assert await store.inbox_list() == [(n, n.encode()) for n in "acef"]
    assert reads == []


async def test_an_inbox_log_is_read_from_where_the_last_listing_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttflow_async._stores import _local, _local_inbox

    store = _local.LocalFileStore(tmp_path / "state.json")
    other = _local.LocalFileStore(tmp_path / "state.json")
    for name in "abcde":
        await store.inbox_put(name, name.encode())
    read_bytes: list[int] = []
    read_from = _local_inbox._read_from

    def counted(path: str, offset: int) -> bytes:
        data = read_from(path, offset)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(_local_inbox, "_read_from", counted)
    assert [i for i, _ in await store.inbox_list()] == list("abcde")
    first = sum(read_bytes)
    assert first > 0
    read_bytes.clear()
    assert await store.inbox_list() == [(n, n.encode()) for n in "abcde"]
    assert sum(read_bytes) == 0  # nothing appended since: nothing read again
    # The listing stays the truth: what another runner deleted is gone, what another
    # sender added is read.
    await other.inbox_delete(["b", "d"])
    await other.inbox_put("f", b"f")
    read_bytes.clear()
    assert await store.inbox_list() == [(n, n.encode()) for n in "acef"]
    assert 0 < sum(read_bytes) < first


def _count_flushes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every fsync and syncfs the local store makes, by what it flushed."""
    from ttflow_async._stores import _local

    flushes: list[str] = []
    fsync = os.fsync
    syncfs = _local._syncfs()

    def counted_fsync(fd: int) -> None:
        flushes.append("fsync")
        fsync(fd)

    def counted_syncfs(fd: int) -> int:
        flushes.append("syncfs")
        return syncfs(fd) if syncfs is not None else 0

    monkeypatch.setattr(_local.os, "fsync", counted_fsync)
    monkeypatch.setattr(_local, "_syncfs", lambda: counted_syncfs)
    return flushes


async def test_a_commit_flushes_its_blobs_and_root_file_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pass commits its blobs and the new root's file with one syncfs, then the
    # folder of the renamed root: two flushes, where put_blobs + write_root made three.
    client = _flows(f"local:{tmp_path / 'state.json'}")
    await client.run("hello")  # the first commit creates the folders
    flushes = _count_flushes(monkeypatch)
    await client.run("hello")
    assert flushes == ["syncfs", "fsync"]
    assert await client.get_state("greeted") is True


async def test_a_one_step_commit_over_a_stale_version_changes_nothing(tmp_path: Path) -> None:
    from ttflow_async import RootConflict
    from ttflow_async._stores._local import LocalFileStore

    store = LocalFileStore(tmp_path / "state.json")
    first = await store.commit_root({"b-1": b"one"}, b'{"n": 1}', None)
    assert await store.read_root() == (b'{"n": 1}', first)
    assert await store.get_blobs(["b-1"]) == {"b-1": b"one"}
    with pytest.raises(RootConflict):
        await store.commit_root({"b-2": b"two"}, b'{"n": 2}', "not-the-version")
    assert await store.read_root() == (b'{"n": 1}', first)
    # Only the blobs may stay behind, as garbage; no temporary root file is left.
    assert sorted(os.listdir(tmp_path)) == [
        "state.json",
        "state.json.d",
        "state.json.lock",
    ]
    second = await store.commit_root({}, b'{"n": 2}', first)
    assert await store.read_root() == (b'{"n": 2}', second)


async def test_a_commit_of_many_blobs_writes_them_first_then_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the one-step bounds the blobs are written first, while the lease can still
    # be renewed, and the root after them: syncfs, then the root file and its folder.
    from ttflow_async import _lease

    monkeypatch.setattr(_lease, "ONE_STEP_COMMIT_BLOBS", 3)
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def waiter(c: RunContext, args: int) -> None:
        await c.wait_event("go")

    await client.run()
    flushes = _count_flushes(monkeypatch)
    await client.run("waiter", 1)  # its journal, wait shard, head, history, trace
    assert flushes == ["syncfs", "fsync", "fsync"]


@contextlib.contextmanager
def _executor_hops() -> Iterator[list[object]]:
    """The functions the running loop hands to its executor while the block runs."""
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    run_in_executor = loop.run_in_executor

    def counted(executor: object, func: object, *args: object) -> object:
        hops.append(func)
        return run_in_executor(executor, func, *args)  # type: ignore[arg-type]

    loop.run_in_executor = counted  # type: ignore[assignment,method-assign]
    try:
        yield hops
    finally:
        del loop.run_in_executor  # type: ignore[method-assign]


async def test_a_root_read_makes_no_worker_thread_hop(tmp_path: Path) -> None:
    # A worker-thread hop costs ~150 us of CPU on a small VM, the root's read ~10 us:
    # a queued run() reads the root in the event loop (0.61 -> 0.47 ms of CPU).
    from ttflow_async._stores._local import LocalFileStore

    store = LocalFileStore(tmp_path / "state.json")
    version = await store.write_root(b'{"format": "ttflow-async"}', None)
    with _executor_hops() as hops:
        assert await store.read_root() == (b'{"format": "ttflow-async"}', version)
    assert hops == []


async def test_small_blobs_are_read_without_a_worker_thread_hop_and_large_ones_with(
    tmp_path: Path,
) -> None:
    from ttflow_async._stores._local import INLINE_BYTES, LocalFileStore

    store = LocalFileStore(tmp_path / "state.json")
    small, large = b"s" * 1000, b"L" * (INLINE_BYTES + 1)
    await store.put_blobs({"small-1": small, "small-2": small, "large": large})
    with _executor_hops() as hops:
        assert await store.get_blobs(["small-1", "small-2"]) == {
            "small-1": small,
            "small-2": small,
        }
        assert hops == []  # the head and the shards a pass reads are this small
        found = await store.get_blobs(["small-1", "large", "small-2"])
        assert found == {"small-1": small, "large": large, "small-2": small}
        assert len(hops) == 1  # the large one, and what came after it
        with pytest.raises(BlobNotFound):
            await store.get_blobs(["small-1", "missing"])


async def test_an_inbox_listing_that_reads_little_makes_no_worker_thread_hop(
    tmp_path: Path,
) -> None:
    from ttflow_async._stores._local import INLINE_BYTES, LocalFileStore

    writer = LocalFileStore(tmp_path / "state.json")
    reader = LocalFileStore(tmp_path / "state.json")
    await writer.inbox_put("00000000000000000001-a", b"small")
    with _executor_hops() as hops:
        assert [i for i, _ in await reader.inbox_list()] == ["00000000000000000001-a"]
        assert hops == []
        await writer.inbox_put("00000000000000000002-b", b"x" * INLINE_BYTES)
        assert len(await reader.inbox_list()) == 2
        assert len(hops) == 1  # more than INLINE_BYTES appended since: read in a thread
        assert len(await reader.inbox_list()) == 2
        assert len(hops) == 1  # nothing new
        (tmp_path / "state.json.d" / "inbox" / "00000000000000000003-c").write_bytes(b"old")
        assert len(await reader.inbox_list()) == 3
        assert len(hops) == 2  # an item file of an older format: read in a thread
