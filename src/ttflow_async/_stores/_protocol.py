"""The store protocol: a blob store, one compare-and-swap root, and an inbox.

Every backend (memory, local file, S3, DynamoDB) implements only this. The engine
encodes everything itself; a backend never parses what it stores.

- The **root** is one small byte string with an opaque version token. ``write_root``
  replaces it only if the caller's ``expected`` token is still current (``None``
  means "only if there is no root yet"); otherwise it raises :class:`RootConflict`.
  The lease lives inside the root, so the commit CAS is also the fence.
- **Blobs** are immutable byte strings under unique ids chosen by the engine
  (``<kind>-<hex time>-<random>``). Backends may split large blobs into chunks.
  ``put_blobs`` must make the blobs durable before it returns: the engine writes the
  root that references them only afterwards.
- The **inbox** holds items written without the lease. Ids are chosen by the engine
  and sort in arrival order; ``inbox_list`` returns items sorted by id.

All methods that take several ids issue their requests concurrently.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from .._errors import BlobNotFound as BlobNotFound
from .._errors import RootConflict as RootConflict


@runtime_checkable
class Store(Protocol):
    """What the engine needs from a storage backend."""

    @property
    def description(self) -> str:
        """A short human-readable name for messages, e.g. ``s3://bucket/prefix``."""
        ...

    async def open(self) -> None:
        """Open connections; called once per ``async with client`` (or per call)."""
        ...

    async def aclose(self) -> None:
        """Close what ``open`` opened. Safe to call when not open."""
        ...

    async def ensure(self) -> None:
        """Create the bucket/table/folder if missing. Idempotent."""
        ...

    async def read_root(self) -> tuple[bytes, str] | None:
        """Return ``(root bytes, version token)``, or ``None`` if there is no root."""
        ...

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        """Replace the root if its version is ``expected``; return the new version.

        ``durable=False`` allows a backend to skip flushing to stable storage (used for
        lease-only updates, which are harmless to lose). Raises :class:`RootConflict`.
        """
        ...

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        """Store every blob durably (concurrently); ids are fresh and never reused."""
        ...

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        """Fetch blobs by id (concurrently). Raises :class:`BlobNotFound`."""
        ...

    async def delete_blobs(self, ids: Collection[str]) -> None:
        """Delete blobs (concurrently); ids that do not exist are ignored."""
        ...

    async def list_blobs(self) -> list[str]:
        """Every blob id in the store (for garbage collection and ``clear``)."""
        ...

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        """Store one inbox item durably, without any lock."""
        ...

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        """Every inbox item as ``(id, data)``, sorted by id."""
        ...

    async def inbox_delete(self, ids: Collection[str]) -> None:
        """Delete inbox items; ids that do not exist are ignored."""
        ...


@runtime_checkable
class CommitStore(Protocol):
    """A store that writes a commit's blobs and its root in one step (optional).

    ``commit_root(blobs, data, expected)`` must do what ``put_blobs(blobs)`` followed by
    ``write_root(data, expected)`` does: every blob durable before the root that refers
    to them is, the root replaced only if ``expected`` is current (else
    :class:`RootConflict`, the blobs left behind as garbage), the new version returned.
    A store implements it where doing both together is cheaper (the local store flushes
    the blobs and the new root's file with one ``syncfs``); the engine uses it for
    commits of a few small blobs and calls the two methods otherwise.
    """

    async def commit_root(
        self, blobs: Mapping[str, bytes], data: bytes, expected: str | None
    ) -> str:
        """Write ``blobs`` durably, then replace the root if its version is ``expected``."""
        ...
