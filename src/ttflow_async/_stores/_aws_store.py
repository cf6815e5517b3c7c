"""``AwsStore``: what the S3 and DynamoDB stores share.

One client holder per store object, the options every AWS store takes, request
failures translated into :class:`StoreError` naming the resource, and ``open()`` /
``aclose()``. A subclass adds its layout and requests; it is generic in its
aiobotocore client type (``S3Client``, ``DynamoDBClient``), which only mypy sees.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from .._errors import StoreError
from ._aws import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_CONCURRENCY,
    AsyncClient,
    AwsClientHolder,
    client_config,
    default_session,
    load_aioboto3,
)
from ._aws_errors import translated

if TYPE_CHECKING:
    from aioboto3 import Session

_C = TypeVar("_C", bound=AsyncClient)
_T = TypeVar("_T")

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DEFAULT_REQUEST_CONCURRENCY", "AwsStore", "chunked"]


def chunked(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """Split ``items`` into consecutive batches of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


class AwsStore(ABC, Generic[_C]):
    """The base of the AWS stores: a client holder and error translation.

    Args:
        service: The botocore service name (``"s3"``, ``"dynamodb"``).
        what: The resource for messages, e.g. ``"S3 bucket 'b'"``.
        kind: Its kind for the "does not exist" hint (``"bucket"``, ``"table"``).
        session, endpoint_url, region_name, request_concurrency, retry_mode,
        max_attempts: As the subclasses document them.

    Raises:
        ImportError: aioboto3 is not installed (``pip install 'ttflow-async[aws]'``).
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        service: str,
        *,
        what: str,
        kind: str,
        session: Session | None,
        endpoint_url: str | None,
        region_name: str | None,
        request_concurrency: int,
        retry_mode: str,
        max_attempts: int,
    ) -> None:
        aioboto3 = load_aioboto3(service)
        self._what = what
        self._missing_hint = (
            "create it with `ttflow-async init` or `await client.ensure_store()`, "
            f"or check the {kind} name and region"
        )
        self._limit = request_concurrency
        self._region_name = region_name
        self._holder: AwsClientHolder[_C] = AwsClientHolder(
            service,
            session if session is not None else default_session(aioboto3),
            client_config(request_concurrency, retry_mode, max_attempts),
            endpoint_url=endpoint_url,
            region_name=region_name,
        )

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the store lives, as a URL (``s3://bucket/prefix``)."""

    def _translated(self, action: str) -> contextlib.AbstractContextManager[None]:
        """Translate request failures of ``action`` (an IAM action) in the block."""
        return translated(
            what=self._what,
            action=action,
            missing_hint=self._missing_hint,
            passthrough=(StoreError,),  # RootConflict and BlobNotFound included
        )

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[_C]:
        """The store's client, a failure to build or connect it a StoreError."""
        async with contextlib.AsyncExitStack() as stack:
            with self._translated("connect"):
                client = await stack.enter_async_context(self._holder.client())
            yield client

    async def open(self) -> None:
        with self._translated("connect"):
            await self._holder.open()

    async def aclose(self) -> None:
        with self._translated("close"):
            await self._holder.aclose()
