"""A store wrapper that fails on purpose: one StoreError at a chosen call, or a hook.

It wraps any real store (memory, local, S3, DynamoDB) and forwards every call; the
failure is injected between the engine and the real backend, so the backend itself
behaves exactly as in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping

from ttflow_async import Store, StoreError


class FaultyStore:
    """Forwards to ``inner``; raises StoreError at call number ``fail_at`` (0-based)."""

    def __init__(self, inner: Store, *, fail_at: int | None = None) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0
        self.failed_call: str | None = None
        self.fail_names: set[str] | None = None
        self.fail_blob_prefix: str | None = None
        self.after_put_blobs: Callable[[], Awaitable[None]] | None = None
        self.before_call: Callable[[str], Awaitable[None]] | None = None

    async def _tick(self, name: str) -> None:
        if self.before_call is not None:
            await self.before_call(name)
        if self.fail_names is not None and name not in self.fail_names:
            return
        index = self.calls
        self.calls += 1
        if self.fail_at is not None and index == self.fail_at:
            self.failed_call = name
            raise StoreError(f"injected failure of {name} (call {index})")

    @property
    def description(self) -> str:
        return self.inner.description

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def ensure(self) -> None:
        await self.inner.ensure()

    async def read_root(self) -> tuple[bytes, str] | None:
        await self._tick("read_root")
        return await self.inner.read_root()

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        await self._tick("write_root")
        return await self.inner.write_root(data, expected, durable=durable)

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        await self._tick("put_blobs")
        await self.inner.put_blobs(blobs)
        if self.after_put_blobs is not None and blobs:
            hook, self.after_put_blobs = self.after_put_blobs, None
            await hook()

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        if self.fail_blob_prefix is not None and any(
            i.startswith(self.fail_blob_prefix) for i in ids
        ):
            self.failed_call = "get_blobs"  # every such read fails until the prefix is cleared
            raise StoreError(f"injected failure of get_blobs({sorted(ids)})")
        await self._tick("get_blobs")
        return await self.inner.get_blobs(ids)

    async def delete_blobs(self, ids: Collection[str]) -> None:
        await self._tick("delete_blobs")
        await self.inner.delete_blobs(ids)

    async def list_blobs(self) -> list[str]:
        await self._tick("list_blobs")
        return await self.inner.list_blobs()

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        await self._tick("inbox_put")
        await self.inner.inbox_put(item_id, data)

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        await self._tick("inbox_list")
        return await self.inner.inbox_list()

    async def inbox_delete(self, ids: Collection[str]) -> None:
        await self._tick("inbox_delete")
        await self.inner.inbox_delete(ids)
