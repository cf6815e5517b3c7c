"""The in-process memory store (``"onmemory"``): for tests and throwaway scripts."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ._protocol import BlobNotFound, RootConflict


class MemoryStore:
    """Keeps the root, blobs and inbox in dictionaries of this process."""

    def __init__(self) -> None:
        self._root: bytes | None = None
        self._version = 0
        self._blobs: dict[str, bytes] = {}
        self._inbox: dict[str, bytes] = {}

    @property
    def description(self) -> str:
        return "onmemory"

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def ensure(self) -> None:
        return None

    async def read_root(self) -> tuple[bytes, str] | None:
        if self._root is None:
            return None
        return self._root, str(self._version)

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        current = None if self._root is None else str(self._version)
        if current != expected:
            raise RootConflict(f"expected root version {expected}, found {current}")
        self._root = bytes(data)
        self._version += 1
        return str(self._version)

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        self._blobs.update(blobs)

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for blob_id in ids:
            try:
                found[blob_id] = self._blobs[blob_id]
            except KeyError:
                raise BlobNotFound(blob_id) from None
        return found

    async def delete_blobs(self, ids: Collection[str]) -> None:
        for blob_id in ids:
            self._blobs.pop(blob_id, None)

    async def list_blobs(self) -> list[str]:
        return list(self._blobs)

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        self._inbox[item_id] = bytes(data)

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        return sorted(self._inbox.items())

    async def inbox_delete(self, ids: Collection[str]) -> None:
        for item_id in ids:
            self._inbox.pop(item_id, None)
