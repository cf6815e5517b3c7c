"""The local store's inbox in append logs (format 4): one flush per queued item.

Making a new file durable costs an inode and a directory entry on disk: write, fsync,
rename and fsync of the folder took 0.76-0.98 ms of CPU per item on the benchmark
machine, against 0.07-0.10 ms for an append and ``fdatasync`` to a file already open.
So each store object appends the items it queues to a log of its own,
``<path>.d/inbox-logs/<writer>.log``:

- a log is created under a hidden name, locked with ``flock`` and renamed into place
  (then its folder is fsynced): it is never seen unlocked while its writer lives;
- an item is one record (a magic number, the id and body lengths, a CRC-32 of both, the
  id, the body), appended with one ``write`` and made durable with one ``fdatasync``
  before ``inbox_put`` returns;
- a reader takes the complete records in order; an incomplete one at the end is a write
  still under way, or the torn tail of a writer that crashed (never acknowledged). A
  writer whose write fails or is short never appends to that log again, so only the
  disk can put damaged bytes before a whole record: they are skipped with a warning;
- the records consumed are named in ``<writer>.gone`` (records with empty bodies),
  appended and fdatasynced by ``inbox_delete``; a listing leaves them out;
- a log whose every record is gone and whose writer is gone (its lock can be taken) is
  deleted, then its ``.gone``; a writer starts a new log once its log holds
  :data:`ROTATE_BYTES`.

A writer keeps its log open (and locked) for the life of its store object, across
``aclose()``: a client not entered with ``async with`` closes its store after every
call, and a new log per call would cost what a file per item did.

Items stored one file each in ``<path>.d/inbox/`` (formats 1 to 3) are still read and
deleted beside the logs (:class:`~._local.LocalFileStore`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Collection
from types import ModuleType

from .._ids import random_hex
from ._local_files import fsync_dir

logger = logging.getLogger("ttflow_async")

MAGIC = b"\xa7TFq"
_HEADER = struct.Struct(">4sHII")
"""A record's header: magic, id length, body length, CRC-32 of the id then the body."""

ROTATE_BYTES = 1 << 18
"""A writer starts a new log once its log holds this many bytes."""

LOG = ".log"
GONE = ".gone"


def encode_record(item_id: str, body: bytes) -> bytes:
    """One record: header, id, body."""
    raw_id = item_id.encode()
    crc = zlib.crc32(body, zlib.crc32(raw_id))
    return _HEADER.pack(MAGIC, len(raw_id), len(body), crc) + raw_id + body


def _record_at(data: bytes, pos: int) -> tuple[str, bytes, int] | None:
    """The record at ``pos`` and where it ends; None if incomplete or damaged."""
    size = _HEADER.size
    if pos + size > len(data):
        return None
    magic, id_length, body_length, crc = _HEADER.unpack_from(data, pos)
    body_start = pos + size + id_length
    end = body_start + body_length
    if magic != MAGIC or end > len(data):
        return None
    raw_id, body = data[pos + size : body_start], data[body_start:end]
    if zlib.crc32(body, zlib.crc32(raw_id)) != crc:
        return None
    try:
        return raw_id.decode(), body, end
    except UnicodeDecodeError:
        return None


def decode_records(data: bytes) -> tuple[list[tuple[str, bytes]], int, int]:
    """The complete records in ``data``: them, the bytes up to the end of the last one,
    and how many damaged bytes were skipped before it.

    An incomplete record at the end is a write still under way (or the torn tail of a
    writer that crashed, never acknowledged): it is left for the next read. Damaged
    bytes followed by a whole record (the disk's doing) are skipped, so that one damaged
    record hides nothing after it.
    """
    records: list[tuple[str, bytes]] = []
    pos = used = skipped = 0
    while pos < len(data):
        found = _record_at(data, pos)
        if found is None:
            pos = data.find(MAGIC, pos + 1)
            if pos < 0:
                break
            continue
        item_id, body, end = found
        records.append((item_id, body))
        skipped += pos - used
        pos = used = end
    return records, used, skipped


def _read_from(path: str, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


class _Log:
    """What this store object has read of one log and of its ``.gone`` (a plain class:
    a dataclass would cost ~0.5 ms to build in every fresh process)."""

    __slots__ = ("gone", "gone_offset", "items", "offset")

    def __init__(self) -> None:
        self.offset = 0
        self.items: dict[str, bytes] = {}
        self.gone_offset = 0
        self.gone: set[str] = set()


class _Writer:
    """The log this store object appends to (closed when the object is collected)."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.size = 0
        self.pid = os.getpid()
        self._closer = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._closer()


class InboxLogs:
    """The append logs of one local store's inbox. Blocking: call it in a worker thread."""

    def __init__(self, folder: str, fcntl: ModuleType) -> None:
        self.folder = folder
        self._fcntl = fcntl
        self._lock = threading.Lock()  # around appends to this object's own log
        self._read_lock = threading.Lock()  # around what this object read of the logs
        self._writer: _Writer | None = None
        self._logs: dict[str, _Log] = {}

    def _path(self, key: str, suffix: str) -> str:
        return os.path.join(self.folder, key + suffix)

    # -- writing -------------------------------------------------------------------------

    def put(self, item_id: str, body: bytes) -> None:
        """Append one item and make it durable (one ``fdatasync``)."""
        record = encode_record(item_id, body)
        with self._lock:
            writer = self._writable()
            try:
                if os.write(writer.fd, record) != len(record):
                    raise OSError(28, "short write to the inbox log (is the disk full?)")
                os.fdatasync(writer.fd)
            except BaseException:
                self._retire()  # never append after a failed or short write
                # The record may be on disk: mark it gone, so that an item whose put
                # failed is not delivered (best effort: the disk is failing).
                with contextlib.suppress(OSError):
                    self._mark_gone(writer.name, [item_id])
                raise
            writer.size += len(record)
            if writer.size >= ROTATE_BYTES:
                self._retire()

    def _writable(self) -> _Writer:
        writer = self._writer
        if writer is not None and writer.pid == os.getpid():
            return writer
        self._writer = None  # a forked child writes a log of its own
        key = random_hex()
        tmp = os.path.join(self.folder, f".{key}{LOG}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX)  # held while this writer appends
            os.replace(tmp, self._path(key, LOG))
            fsync_dir(self.folder)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._writer = _Writer(fd, key)
        return self._writer

    def _retire(self) -> None:
        """Stop appending to the current log (its lock goes, so it can be collected)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            if writer.pid == os.getpid():
                writer.close()

    # -- reading -------------------------------------------------------------------------

    def items(self, budget: int | None = None) -> dict[str, bytes] | None:
        """Every item of every log that is not gone, by id; None (nothing read) if that
        would read more than ``budget`` bytes appended since the last listing."""
        with self._read_lock:
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                return {}
            if budget is not None and self._unread(names) > budget:
                return None
            return self._items(names)

    def _unread(self, names: list[str]) -> int:
        """How many bytes the logs and ``.gone`` files in ``names`` hold past what was read."""
        total = 0
        for name in names:
            if name.startswith(".") or not name.endswith((LOG, GONE)):
                continue
            key, suffix = name.rsplit(".", 1)
            log = self._logs.get(key)
            read = 0 if log is None else (log.offset if suffix == "log" else log.gone_offset)
            with contextlib.suppress(FileNotFoundError):
                total += max(0, os.stat(os.path.join(self.folder, name)).st_size - read)
        return total

    def _items(self, names: list[str]) -> dict[str, bytes]:
        keys = {n[: -len(LOG)] for n in names if n.endswith(LOG) and not n.startswith(".")}
        for key in [k for k in self._logs if k not in keys]:
            del self._logs[key]  # collected
        found: dict[str, bytes] = {}
        for key in keys:
            log = self._logs.setdefault(key, _Log())
            try:
                self._refresh(key, log)
            except FileNotFoundError:  # collected since the listing
                del self._logs[key]
                continue
            found.update(log.items)
        return found

    def _refresh(self, key: str, log: _Log) -> None:
        """Read what was appended to the log and to its ``.gone`` since the last read."""
        records, used, skipped = decode_records(_read_from(self._path(key, LOG), log.offset))
        if skipped:
            logger.warning(
                "the inbox log %s holds %d damaged bytes after offset %d; the records "
                "around them are read, whatever they held is lost",
                self._path(key, LOG),
                skipped,
                log.offset,
            )
        log.offset += used
        for item_id, body in records:
            if item_id not in log.gone:
                log.items[item_id] = body
        try:
            marks, used, _ = decode_records(_read_from(self._path(key, GONE), log.gone_offset))
        except FileNotFoundError:
            # No item of the log was deleted yet, or the log was collected between the
            # two reads (its .gone goes last): then every item read is gone.
            if not os.path.exists(self._path(key, LOG)):
                raise
            return
        log.gone_offset += used
        for item_id, _ in marks:
            log.gone.add(item_id)
            log.items.pop(item_id, None)

    # -- deleting ------------------------------------------------------------------------

    def delete(self, ids: Collection[str]) -> set[str]:
        """Mark the named items gone; returns those found in a log (the rest are files)."""
        with self._read_lock:
            return self._delete(ids)

    def _delete(self, ids: Collection[str]) -> set[str]:
        if any(not self._holder(i) for i in ids):
            with contextlib.suppress(FileNotFoundError):
                self._items(
                    os.listdir(self.folder)
                )  # an id this object has not read yet: read the logs again
        by_log: dict[str, list[str]] = {}
        for item_id in ids:
            key = self._holder(item_id)
            if key is not None:
                by_log.setdefault(key, []).append(item_id)
        for key, gone in by_log.items():
            self._mark_gone(key, gone)
            log = self._logs[key]
            log.gone.update(gone)
            for item_id in gone:
                log.items.pop(item_id, None)
        for key in [k for k, log in self._logs.items() if not log.items]:
            self._collect(key)
        return {i for found in by_log.values() for i in found}

    def _holder(self, item_id: str) -> str | None:
        for key, log in self._logs.items():
            if item_id in log.items:
                return key
        return None

    def _mark_gone(self, key: str, ids: list[str]) -> None:
        path = self._path(key, GONE)
        created = not os.path.exists(path)
        data = b"".join(encode_record(i, b"") for i in ids)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.folder)

    def _collect(self, key: str) -> None:
        """Delete a log whose records are all gone, once its writer is gone too."""
        if self._writer is not None and self._writer.name == key:
            return
        path = self._path(key, LOG)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._logs.pop(key, None)
            return
        try:
            try:
                self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
            except OSError:
                return  # its writer still appends to it
            # Decided on the whole log and .gone as they are now, under the lock.
            records, _, _ = decode_records(_read_from(path, 0))
            try:
                marks, _, _ = decode_records(_read_from(self._path(key, GONE), 0))
            except FileNotFoundError:
                marks = []
            gone = {i for i, _ in marks}
            if any(i not in gone for i, _ in records):
                return
            os.unlink(path)
            fsync_dir(self.folder)  # the log is gone for good before its .gone goes
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key, GONE))
        finally:
            os.close(fd)
        self._logs.pop(key, None)
