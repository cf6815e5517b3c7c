"""Small file helpers of the local store (:mod:`._local`, :mod:`._local_inbox`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from collections.abc import Callable


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` flushes one file system in one call (Linux only).

    Loaded at the first blob write, not at import: ctypes costs a fresh process
    several milliseconds that a pass which writes no blob need not pay.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        # The C library is already loaded into the interpreter: look it up there.
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


def _version_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_file(path: str, data: bytes, *, sync: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def fsync_dir(path: str) -> None:
    """Make a folder's entries durable (a file created, renamed or deleted in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
