"""The local store's inbox in append logs: one flush per item, nothing lost, nothing kept.

Each store object appends the items it queues to a log of its own (format 4); these
tests prove what that must keep: an item acknowledged is listed by every reader until it
is deleted, a torn or failed write is never delivered, a log goes once all of its items
are gone and its writer is gone, and a queued trigger costs one flush.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
from pathlib import Path

import pytest

from tests.workers.forkserver import forkserver
from tests.workers.inbox_writer import item_id, writer_process
from ttflow_async import RunContext, StateLockedError, StoreError, setup
from ttflow_async._lease import Lease
from ttflow_async._stores import _local_inbox
from ttflow_async._stores._local import LocalFileStore
from ttflow_async._view import StoreView


def _logs(tmp_path: Path) -> list[str]:
    folder = tmp_path / "state.json.d" / "inbox-logs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _entries(tmp_path: Path) -> dict[str, int]:
    """Every file and folder under ``tmp_path``, with its modification time."""
    return {str(p): p.stat().st_mtime_ns for p in tmp_path.rglob("*")}


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _count_flushes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    flushes: list[str] = []
    fsync, fdatasync = os.fsync, os.fdatasync

    def counted_fsync(fd: int) -> None:
        flushes.append("fsync")
        fsync(fd)

    def counted_fdatasync(fd: int) -> None:
        flushes.append("fdatasync")
        fdatasync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    monkeypatch.setattr(os, "fdatasync", counted_fdatasync)
    return flushes


async def test_a_queued_item_costs_one_flush_and_no_new_file_after_its_writers_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFileStore(tmp_path / "state.json")
    await store.inbox_put(item_id(0), b"first")
    entries = sorted(_entries(tmp_path))
    flushes = _count_flushes(monkeypatch)
    for n in range(1, 11):
        await store.inbox_put(item_id(n), b"next")
    assert flushes == ["fdatasync"] * 10  # was two fsyncs each (the item, its folder)
    assert sorted(_entries(tmp_path)) == entries
    assert [i for i, _ in await store.inbox_list()] == [item_id(n) for n in range(11)]


async def test_every_reader_lists_every_writers_items_in_id_order_until_deleted(
    tmp_path: Path,
) -> None:
    writers = [LocalFileStore(tmp_path / "state.json") for _ in range(3)]
    for n in range(12):
        await writers[n % 3].inbox_put(item_id(n), f"body {n}".encode())
    reader, deleter = LocalFileStore(tmp_path / "state.json"), writers[1]
    expected = [(item_id(n), f"body {n}".encode()) for n in range(12)]
    assert await reader.inbox_list() == expected
    await deleter.inbox_delete([item_id(n) for n in (0, 4, 8, 11)])
    left = [e for n, e in enumerate(expected) if n not in (0, 4, 8, 11)]
    for store in [reader, *writers]:
        assert await store.inbox_list() == left
    assert len(_logs(tmp_path)) == 3 + 3  # each writer's log and its .gone


async def test_a_log_stays_while_its_writer_lives_and_goes_once_it_is_gone_and_consumed(
    tmp_path: Path,
) -> None:
    writer = LocalFileStore(tmp_path / "state.json")
    reader = LocalFileStore(tmp_path / "state.json")
    await writer.inbox_put(item_id(0), b"a")
    await writer.inbox_put(item_id(1), b"b")
    assert [i for i, _ in await reader.inbox_list()] == [item_id(0), item_id(1)]
    await reader.inbox_delete([item_id(0), item_id(1)])
    (gone, log) = _logs(tmp_path)  # every item gone, but its writer may append again
    assert gone.endswith(".gone")
    assert log.endswith(".log")
    await writer.inbox_put(item_id(2), b"c")  # and does
    assert await reader.inbox_list() == [(item_id(2), b"c")]
    del writer
    gc.collect()  # the writer's store object is gone: its log is closed and unlocked
    await reader.inbox_delete([item_id(2)])
    assert _logs(tmp_path) == []
    assert await reader.inbox_list() == []


async def test_a_sender_killed_mid_stream_loses_no_item_it_acknowledged(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "state.json")
    context = forkserver()
    reader_end, writer_end = context.Pipe(duplex=False)
    process = context.Process(target=writer_process, args=(path, 100_000, writer_end))
    process.start()
    writer_end.close()
    acknowledged = [reader_end.recv() for _ in range(300)]
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    while reader_end.poll():
        try:
            acknowledged.append(reader_end.recv())
        except EOFError:
            break
    store = LocalFileStore(path)
    listed = [i for i, _ in await store.inbox_list()]
    assert listed[: len(acknowledged)] == [item_id(n) for n in acknowledged]
    assert len(listed) - len(acknowledged) <= 1  # the one in flight, stored or not
    await store.inbox_delete(listed)
    assert _logs(tmp_path) == []  # its writer died: the consumed log went
    assert await LocalFileStore(path).inbox_list() == []


async def test_a_torn_record_is_never_delivered_and_the_records_before_it_are(
    tmp_path: Path,
) -> None:
    writer = LocalFileStore(tmp_path / "state.json")
    for n in range(3):
        await writer.inbox_put(item_id(n), b"whole")
    del writer
    gc.collect()
    (log,) = _logs(tmp_path)
    torn = _local_inbox.encode_record(item_id(3), b"never acknowledged")
    # A crash in the middle of the write:
    _append(tmp_path / "state.json.d" / "inbox-logs" / log, torn[: len(torn) // 2])
    reader = LocalFileStore(tmp_path / "state.json")
    assert await reader.inbox_list() == [(item_id(n), b"whole") for n in range(3)]
    await reader.inbox_delete([item_id(n) for n in range(3)])
    assert _logs(tmp_path) == []


async def test_a_record_the_disk_damaged_hides_no_record_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LocalFileStore(tmp_path / "state.json")
    for n in range(3):
        await writer.inbox_put(item_id(n), b"body %d" % n)
    (log,) = _logs(tmp_path)
    path = tmp_path / "state.json.d" / "inbox-logs" / log
    data = bytearray(_read(path))
    second = len(_local_inbox.encode_record(item_id(0), b"body 0"))
    data[second + 30] ^= 0xFF  # a flipped byte in the id of the second record
    _write(path, bytes(data))
    reader = LocalFileStore(tmp_path / "state.json")
    assert await reader.inbox_list() == [(item_id(0), b"body 0"), (item_id(2), b"body 2")]
    assert "damaged bytes" in caplog.text


async def test_an_append_that_fails_is_not_delivered_and_the_next_goes_to_a_new_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFileStore(tmp_path / "state.json")
    await store.inbox_put(item_id(0), b"kept")
    fdatasync = os.fdatasync
    failures = [OSError(errno.EIO, "Input/output error")]

    def failing(fd: int) -> None:
        if failures:
            raise failures.pop()
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StoreError, match="Input/output error"):
        await store.inbox_put(item_id(1), b"failed")
    await store.inbox_put(item_id(2), b"after")
    reader = LocalFileStore(tmp_path / "state.json")
    assert await reader.inbox_list() == [(item_id(0), b"kept"), (item_id(2), b"after")]
    assert len([n for n in _logs(tmp_path) if n.endswith(".log")]) == 2


async def test_a_writer_starts_a_new_log_once_its_log_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_local_inbox, "ROTATE_BYTES", 150)
    store = LocalFileStore(tmp_path / "state.json")
    for n in range(6):
        await store.inbox_put(item_id(n), b"x" * 40)  # two items fill a log
    assert len(_logs(tmp_path)) == 3
    listed = [i for i, _ in await store.inbox_list()]
    assert listed == [item_id(n) for n in range(6)]
    await store.inbox_delete(listed)
    assert _logs(tmp_path) == []  # the full logs were retired, so they could go
    await store.inbox_put(item_id(6), b"y")
    assert await store.inbox_list() == [(item_id(6), b"y")]


async def test_triggers_queued_behind_the_lease_run_once_and_then_the_pass_is_idle(
    tmp_path: Path,
) -> None:
    client = setup(f"local:{tmp_path / 'state.json'}")
    ran: list[int] = []

    @client.workflow(trigger="hit")
    async def hit(c: RunContext, args: int) -> None:
        ran.append(args)

    async with client:
        await client.run()
        lease = Lease(client.store, 3600)
        assert await lease.try_acquire(await StoreView.read(client.store))
        for n in range(20):
            with pytest.raises(StateLockedError) as locked:
                await client.run("hit", n)
            assert locked.value.queued
        await lease.release()
        assert len(await client.run()) == 20
    assert sorted(ran) == list(range(20))
    await client.run()  # not entered: what a pass leaves to delete is deleted in it
    before = _entries(tmp_path)
    assert await client.run() == []
    assert _entries(tmp_path) == before
    assert sorted(ran) == list(range(20))


async def test_a_log_collected_between_a_readers_two_reads_lists_none_of_its_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = LocalFileStore(tmp_path / "state.json")
    await writer.inbox_put(item_id(0), b"consumed")
    deleter = LocalFileStore(tmp_path / "state.json")
    assert [i for i, _ in await deleter.inbox_list()] == [item_id(0)]
    del writer
    gc.collect()  # its writer is gone: the log can be collected once its item is
    read_from = _local_inbox._read_from
    collected: list[bool] = []

    def racing(path: str, offset: int) -> bytes:
        if path.endswith(".gone") and not collected:
            collected.append(True)  # the reader has read the log, not yet its .gone
            assert deleter._logs.delete([item_id(0)]) == {item_id(0)}
            assert _logs(tmp_path) == []
        return read_from(path, offset)

    monkeypatch.setattr(_local_inbox, "_read_from", racing)
    reader = LocalFileStore(tmp_path / "state.json")
    assert await reader.inbox_list() == []
    assert collected == [True]
