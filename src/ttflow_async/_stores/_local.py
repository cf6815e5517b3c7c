"""The local file store (``"local:<path>"``), the embedded default.

Layout, for ``local:state.json``::

    state.json            the root: small JSON, replaced by write-temp + fsync + rename
    state.json.lock       an empty file locked with flock() around every root CAS
    state.json.d/blobs/   one file per immutable blob
    state.json.d/inbox-logs/  the inbox: an append log per writer (see ._local_inbox)
    state.json.d/inbox/   inbox items of formats 1 to 3, one file each (still read)

The root's version token is a hash of its bytes, so a CAS compares content, like an
S3 ETag. All blocking file work runs in a worker thread, one hop per operation: writes
through anyio (a cancelled caller waits for the write to finish, so it never lands
behind the caller's back), reads through asyncio's executor (a read has no effect to
wait for, and an idle pass of a fresh process then never loads anyio's backend), except
the root and small blobs, read in the event loop: from the page cache that takes
microseconds, where a worker-thread hop costs ~150 us of CPU on a small VM.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from types import ModuleType
from typing import TypeVar, overload

import anyio.to_thread

from .._errors import StoreError
from .._ids import random_hex
from ._local_files import _read_file, _syncfs, _unlink, _version_of, _write_file, fsync_dir
from ._local_inbox import InboxLogs
from ._protocol import BlobNotFound, RootConflict

_T = TypeVar("_T")
_Listing = tuple[dict[str, bytes], dict[str, bytes]]
"""An inbox listing: the item files' bodies and the logs' items, by id."""

INLINE_BYTES = 64 * 1024
"""What a ``get_blobs`` call or an inbox listing reads in the event loop, in bytes at
most (beyond that, a worker thread reads it)."""


def _posix_locks() -> ModuleType | None:
    """``fcntl``, which only POSIX systems have (the store's CAS needs flock)."""
    try:
        return importlib.import_module("fcntl")
    except ImportError:
        return None


_FCNTL = _posix_locks()

#: What a local store says on a system without POSIX file locks (Windows).
NOT_POSIX = (
    "the local store needs POSIX file locks (fcntl.flock), which this system does not "
    "have: run on Linux or macOS (on Windows, inside WSL), or use the 'onmemory', "
    "'s3:' or 'dynamodb:' store"
)


class LocalFileStore:
    """A store in local files: atomic renames for the root, flock for the CAS.

    POSIX only: on a system without ``fcntl`` (Windows) it raises ``StoreError``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if _FCNTL is None:
            raise StoreError(NOT_POSIX)
        self._fcntl: ModuleType = _FCNTL
        # Paths are plain strings: importing pathlib would cost a fresh process ~4 ms.
        root_path = os.fspath(path)
        if os.path.islink(root_path):
            # Follow a symlinked state file: replacing the root renames a file next to
            # the target, never over the link (which would cut it from its siblings).
            root_path = os.path.realpath(root_path)
        self.root_path = root_path
        self.folder = os.path.dirname(root_path) or "."
        self.lock_path = root_path + ".lock"
        self.data_dir = root_path + ".d"
        self.blob_dir = os.path.join(self.data_dir, "blobs")
        self.inbox_dir = os.path.join(self.data_dir, "inbox")
        self.log_dir = os.path.join(self.data_dir, "inbox-logs")
        self._logs = InboxLogs(self.log_dir, self._fcntl)
        self._ready = False
        #: Bodies of the items of the last inbox listing: an item never changes under
        #: its id, so a pass that lists the inbox again reads only the new files.
        self._bodies: dict[str, bytes] = {}

    @property
    def description(self) -> str:
        return f"local:{self.root_path}"

    async def _in_thread(self, func: Callable[[], _T]) -> _T:
        """Run a write in a worker thread; a cancelled caller waits for it to finish."""
        try:
            return await anyio.to_thread.run_sync(func)
        except (BlobNotFound, RootConflict):
            raise
        except OSError as exc:
            raise self._failed(exc) from exc

    async def _read_in_thread(self, func: Callable[[], _T]) -> _T:
        """Run a read in a worker thread of asyncio's executor."""
        import asyncio  # here: importing the store must not import asyncio

        try:
            return await asyncio.get_running_loop().run_in_executor(None, func)
        except (BlobNotFound, RootConflict):
            raise
        except OSError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: OSError) -> StoreError:
        return StoreError(
            f"the local store at {self.root_path} failed: {exc}; check that the folder "
            "exists, is writable, and the disk is not full"
        )

    def _make_dirs(self) -> None:
        if not self._ready:
            for folder in (self.folder, self.blob_dir, self.inbox_dir, self.log_dir):
                os.makedirs(folder, exist_ok=True)
            self._ready = True

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        self._make_dirs()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def ensure(self) -> None:
        await self._in_thread(self._make_dirs)

    def _read_root_sync(self) -> tuple[bytes, str] | None:
        try:
            data = _read_file(self.root_path)
        except FileNotFoundError:
            return None
        if not data:
            return None
        return data, _version_of(data)

    async def read_root(self) -> tuple[bytes, str] | None:
        """Read in the event loop: the root is a few hundred bytes, read from the page
        cache in ~10 us, where a worker-thread hop costs ~150 us of CPU on a small VM
        (a queued ``run()`` is two hops: 0.61 -> 0.47 ms of CPU without this one)."""
        try:
            return self._read_root_sync()
        except OSError as exc:
            raise self._failed(exc) from exc

    def _root_tmp(self) -> str:
        name = os.path.basename(self.root_path)
        return os.path.join(self.folder, f".{name}.{random_hex()}.tmp")

    def _swap_root(self, tmp: str, data: bytes, expected: str | None, durable: bool) -> str:
        """Under the lock: rename the written ``tmp`` over the root if ``expected`` is current."""
        with self._flock():
            current = self._read_root_sync()
            current_version = None if current is None else current[1]
            if current_version != expected:
                raise RootConflict(f"expected root version {expected}, found {current_version}")
            os.replace(tmp, self.root_path)
        if durable:
            fsync_dir(self.folder)
        return _version_of(data)

    def _write_root_sync(self, data: bytes, expected: str | None, durable: bool) -> str:
        tmp = self._root_tmp()
        try:
            self._make_dirs()
            _write_file(tmp, data, sync=durable)
            return self._swap_root(tmp, data, expected, durable)
        except BaseException:
            _unlink(tmp)
            raise

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        return await self._in_thread(lambda: self._write_root_sync(data, expected, durable))

    def _write_durably(self, files: Mapping[str, bytes]) -> None:
        """Write every file, then make them all durable: one ``syncfs`` where there is one.

        ``syncfs`` flushes them together: cheaper than an fsync each already for two
        files (measured), and far cheaper for hundreds (Linux only). Elsewhere each file
        is fsynced, then the folders that hold them.
        """
        syncfs = _syncfs()
        for path, data in files.items():
            _write_file(path, data, sync=syncfs is None)
        folders = {os.path.dirname(path) for path in files}
        if syncfs is None:
            for folder in folders:
                fsync_dir(folder)
            return
        # One syncfs per file system (the folders are on one, unless one is a mount).
        for folder in {os.stat(folder).st_dev: folder for folder in folders}.values():
            fd = os.open(folder, os.O_RDONLY)
            try:
                if syncfs(fd) != 0:
                    import ctypes  # loaded already: _syncfs() found syncfs through it

                    raise OSError(ctypes.get_errno(), "syncfs failed")
            finally:
                os.close(fd)

    def _put_blobs_sync(self, blobs: Mapping[str, bytes]) -> None:
        self._make_dirs()
        blob_dir = self.blob_dir
        self._write_durably({os.path.join(blob_dir, i): data for i, data in blobs.items()})

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        if blobs:
            await self._in_thread(lambda: self._put_blobs_sync(blobs))

    def _commit_root_sync(
        self, blobs: Mapping[str, bytes], data: bytes, expected: str | None
    ) -> str:
        tmp = self._root_tmp()
        try:
            self._make_dirs()
            files = {os.path.join(self.blob_dir, i): body for i, body in blobs.items()}
            self._write_durably({**files, tmp: data})
            return self._swap_root(tmp, data, expected, durable=True)
        except BaseException:
            _unlink(tmp)  # a full disk must not leave a hidden file behind
            raise

    async def commit_root(
        self, blobs: Mapping[str, bytes], data: bytes, expected: str | None
    ) -> str:
        """The blobs and the new root's file flushed together, then the root swapped.

        One worker-thread hop and one flush fewer than ``put_blobs`` then ``write_root``.
        """
        return await self._in_thread(lambda: self._commit_root_sync(blobs, data, expected))

    def _get_blobs_sync(self, ids: Collection[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for blob_id in ids:
            try:
                found[blob_id] = _read_file(os.path.join(self.blob_dir, blob_id))
            except FileNotFoundError:
                raise BlobNotFound(blob_id) from None
        return found

    def _get_small_sync(self, ids: Collection[str]) -> tuple[dict[str, bytes], list[str]]:
        """The blobs read at once while they fit in :data:`INLINE_BYTES`; the rest's ids."""
        found: dict[str, bytes] = {}
        budget = INLINE_BYTES
        wanted = list(ids)
        for n, blob_id in enumerate(wanted):
            try:
                f = open(os.path.join(self.blob_dir, blob_id), "rb")  # noqa: SIM115
            except FileNotFoundError:
                raise BlobNotFound(blob_id) from None
            with f:
                size = os.fstat(f.fileno()).st_size
                if size > budget:
                    return found, wanted[n:]
                found[blob_id] = f.read()
                budget -= size
        return found, []

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        """Small blobs are read in the event loop, the rest in a worker thread.

        A read of up to :data:`INLINE_BYTES` from the page cache takes tens of
        microseconds, where a worker-thread hop costs ~150 us of CPU on a small VM; the
        head and the shards a pass reads are that small.
        """
        if not ids:
            return {}
        try:
            found, rest = self._get_small_sync(ids)
        except OSError as exc:
            raise self._failed(exc) from exc
        if rest:
            found.update(await self._read_in_thread(lambda: self._get_blobs_sync(rest)))
        return found

    def _delete_sync(self, folder: str, ids: Collection[str]) -> None:
        for item_id in ids:
            _unlink(os.path.join(folder, item_id))

    async def delete_blobs(self, ids: Collection[str]) -> None:
        if ids:
            await self._in_thread(lambda: self._delete_sync(self.blob_dir, ids))

    def _list_sync(self, folder: str) -> list[str]:
        try:
            return sorted(name for name in os.listdir(folder) if not name.startswith("."))
        except FileNotFoundError:
            return []

    async def list_blobs(self) -> list[str]:
        return await self._read_in_thread(lambda: self._list_sync(self.blob_dir))

    def _inbox_put_sync(self, item_id: str, data: bytes) -> None:
        self._make_dirs()
        self._logs.put(item_id, data)

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        await self._in_thread(lambda: self._inbox_put_sync(item_id, data))

    @overload
    def _list_sync_within(self, known: Mapping[str, bytes], budget: None) -> _Listing: ...

    @overload
    def _list_sync_within(self, known: Mapping[str, bytes], budget: int) -> _Listing | None: ...

    def _list_sync_within(self, known: Mapping[str, bytes], budget: int | None) -> _Listing | None:
        """The item files (formats 1 to 3, read once per store object) and the logs' items;
        None, having read nothing, if that would read a new item file or more than
        ``budget`` bytes of the logs (with a budget)."""
        names = self._list_sync(self.inbox_dir)
        if budget is not None and any(name not in known for name in names):
            return None
        logged = self._logs.items(budget)
        if logged is None:
            return None
        files: dict[str, bytes] = {}
        for name in names:
            body = known.get(name)
            if body is None:
                try:
                    body = _read_file(os.path.join(self.inbox_dir, name))
                except FileNotFoundError:
                    continue  # consumed and deleted by a runner since the listing
            files[name] = body
        return files, logged

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        """Listed in the event loop when little was appended since the last listing (an
        idle pass of a fresh process then starts no worker thread), else in a thread."""
        known = self._bodies
        try:
            listed = self._list_sync_within(known, INLINE_BYTES)
        except OSError as exc:
            raise self._failed(exc) from exc
        if listed is None:
            listed = await self._read_in_thread(lambda: self._list_sync_within(known, None))
        files, logged = listed
        # What the listing no longer names is forgotten.
        self._bodies = files
        return sorted({**files, **logged}.items())

    def _inbox_delete_sync(self, ids: Collection[str]) -> None:
        in_logs = self._logs.delete(ids)
        self._delete_sync(self.inbox_dir, [i for i in ids if i not in in_logs])

    async def inbox_delete(self, ids: Collection[str]) -> None:
        if ids:
            await self._in_thread(lambda: self._inbox_delete_sync(ids))
            gone = set(ids)
            self._bodies = {i: b for i, b in self._bodies.items() if i not in gone}
