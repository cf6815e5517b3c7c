"""Values cut into DynamoDB items: the chunked blobs and inbox items of the store.

A value is stored as a first chunk in a shared partition (``blobs`` or ``inbox``,
sort key = its id, with its chunk count ``n``) and, when it is over
:data:`CHUNK_BYTES`, further chunks in a partition of its own (``blob#<id>`` /
``inbox#<id>``, sort keys ``0001``...). The ordering rules that keep a crash from
leaving a value without its chunks are in the docstring of ``_dynamodb``.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio

from .._concurrency import gather_bounded
from .._errors import CorruptStateError, StoreError
from ._aws_store import AwsStore, chunked

if TYPE_CHECKING:
    from aioboto3 import Session
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        KeysAndAttributesUnionTypeDef,
        QueryInputPaginateTypeDef,
        UniversalAttributeValueTypeDef,
        WriteRequestTypeDef,
        WriteRequestUnionTypeDef,
    )

    #: An item as DynamoDB answers it, attribute name to typed value.
    Item = dict[str, AttributeValueTypeDef]
    #: A key or item as the store sends it.
    Key = Mapping[str, UniversalAttributeValueTypeDef]

#: Bytes of value per item: DynamoDB's item limit is 400 KB, keys and names included.
CHUNK_BYTES = 350_000

_BATCH_WRITE = 25  # BatchWriteItem takes at most 25 items
_BODY_BYTES = 900_000  # keep request bodies under aiohttp's 1 MB (see _write_batches)
_BATCH_GET = 100  # BatchGetItem takes at most 100 keys
_COUNT_CACHE = 8192  # chunk counts of values this store object wrote or read
_UNPROCESSED_ROUNDS = 12  # retries of items DynamoDB left unprocessed (throttling)


def _chunk_sk(index: int) -> str:
    return f"{index:04d}"


def _key(pk: str, sk: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _sk(item: Item) -> str:
    return str(item["sk"]["S"])


class ChunkedTable(AwsStore["DynamoDBClient"]):
    """A DynamoDB table holding chunked values; :class:`DynamoDBStore` adds the root.

    Args:
        table: The table name.
        session, endpoint_url, region_name, request_concurrency, retry_mode,
        max_attempts: As :class:`DynamoDBStore` documents them.
    """

    def __init__(
        self,
        table: str,
        *,
        session: Session | None,
        endpoint_url: str | None,
        region_name: str | None,
        request_concurrency: int,
        retry_mode: str,
        max_attempts: int,
    ) -> None:
        super().__init__(
            "dynamodb",
            what=f"DynamoDB table {table!r}",
            kind="table",
            session=session,
            endpoint_url=endpoint_url,
            region_name=region_name,
            request_concurrency=request_concurrency,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
        )
        self.table = table
        self._counts: OrderedDict[str, int] = OrderedDict()

    def _corrupt(self, what: str) -> CorruptStateError:
        return CorruptStateError(
            f"DynamoDB table {self.table!r} holds {what}, which this engine did not write; "
            "nothing was changed. Point the store at a table of its own."
        )

    async def _batch_write(
        self, db: DynamoDBClient, requests: Sequence[WriteRequestTypeDef]
    ) -> None:
        """Run write requests in batches of 25, concurrently, until all are processed."""

        async def write_batch(batch: Sequence[WriteRequestTypeDef]) -> None:
            pending: Mapping[str, Sequence[WriteRequestUnionTypeDef]] = {self.table: batch}
            for attempt in range(_UNPROCESSED_ROUNDS):
                response = await db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    return
                await anyio.sleep(_backoff(attempt))
            raise StoreError(
                f"DynamoDB table {self.table!r} kept leaving writes unprocessed "
                "(throttled); retry later or raise the table's capacity"
            )

        await gather_bounded(
            [partial(write_batch, b) for b in _write_batches(requests)], self._limit
        )

    async def _batch_get(
        self, db: DynamoDBClient, keys: Sequence[Key], projection: str | None = None
    ) -> list[Item]:
        """Fetch items by key in batches of 100, concurrently; missing items are absent."""

        async def get_batch(batch: Sequence[Key]) -> list[Item]:
            request: KeysAndAttributesTypeDef = {"Keys": list(batch), "ConsistentRead": True}
            if projection is not None:
                request["ProjectionExpression"] = projection
                request["ExpressionAttributeNames"] = {"#pk": "pk", "#sk": "sk", "#n": "n"}
            found: list[Item] = []
            pending: Mapping[str, KeysAndAttributesUnionTypeDef] = {self.table: request}
            for attempt in range(_UNPROCESSED_ROUNDS):
                response = await db.batch_get_item(RequestItems=pending)
                found.extend(response.get("Responses", {}).get(self.table, []))
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    return found
                await anyio.sleep(_backoff(attempt))
            raise StoreError(
                f"DynamoDB table {self.table!r} kept leaving reads unprocessed "
                "(throttled or over 16 MB); retry later"
            )

        batches = await gather_bounded(
            [partial(get_batch, b) for b in chunked(keys, _BATCH_GET)], self._limit
        )
        return [item for batch in batches for item in batch]

    async def _query_all(
        self, db: DynamoDBClient, pk: str, projection: str | None = None
    ) -> list[Item]:
        """Every item of one partition, in sort-key order (strongly consistent)."""
        request: QueryInputPaginateTypeDef = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if projection is not None:
            request["ProjectionExpression"] = projection
        items: list[Item] = []
        paginator = db.get_paginator("query")
        async for page in paginator.paginate(**request):
            items.extend(page.get("Items", []))
        return items

    def _head_count(self, item: Item) -> int:
        try:
            return int(item["n"]["N"])
        except (KeyError, TypeError, ValueError):
            raise self._corrupt(f"an item {item.get('sk')} without its chunk count") from None

    async def _put_chunked(self, head_pk: str, items: Mapping[str, bytes]) -> None:
        heads: list[WriteRequestTypeDef] = []
        placeholders: list[WriteRequestTypeDef] = []
        extras: list[WriteRequestTypeDef] = []
        counts: dict[str, int] = {}
        for item_id, data in items.items():
            parts = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
            parts = parts or [b""]
            counts[item_id] = len(parts)
            head: dict[str, AttributeValueTypeDef] = {
                **_key(head_pk, item_id),
                "data": {"B": parts[0]},
                "n": {"N": str(len(parts))},
            }
            heads.append({"PutRequest": {"Item": head}})
            if len(parts) > 1:
                # A placeholder first chunk: keys and count, no data.
                placeholder = {name: value for name, value in head.items() if name != "data"}
                placeholders.append({"PutRequest": {"Item": placeholder}})
            extras.extend(
                _put(f"{head_pk}#{item_id}", _chunk_sk(index), part)
                for index, part in enumerate(parts[1:], start=1)
            )
        async with self._client() as db:
            with self._translated("dynamodb:BatchWriteItem"):
                if extras:
                    if head_pk == "blobs":
                        await self._batch_write(db, placeholders)
                    await self._batch_write(db, extras)
                await self._batch_write(db, heads)
        for item_id, count in counts.items():
            self._remember(head_pk, item_id, count)

    async def _read_chunked(
        self,
        db: DynamoDBClient,
        head_pk: str,
        heads: Sequence[Item],
        *,
        skip_incomplete: bool = False,
    ) -> dict[str, bytes]:
        """Join each first chunk with its further chunks (fetched concurrently).

        With ``skip_incomplete``, a value whose further chunks are (partly) gone is left
        out: a concurrent delete removes them before the first chunk.
        """
        # A placeholder (no data) is a value whose writer has not finished or crashed.
        heads = [h for h in heads if "data" in h]
        values = {_sk(h): bytes(h["data"]["B"]) for h in heads}
        long_ids = [_sk(h) for h in heads if self._head_count(h) > 1]
        counts = {_sk(h): self._head_count(h) for h in heads}
        for item_id, count in counts.items():
            self._remember(head_pk, item_id, count)
        if long_ids:
            with self._translated("dynamodb:Query"):
                rests = await gather_bounded(
                    [partial(self._query_all, db, f"{head_pk}#{i}") for i in long_ids],
                    self._limit,
                )
            for item_id, rest in zip(long_ids, rests, strict=True):
                if len(rest) != counts[item_id] - 1:
                    if skip_incomplete:
                        del values[item_id]
                        continue
                    raise self._corrupt(
                        f"{len(rest) + 1} of the {counts[item_id]} chunks of {item_id!r}"
                    )
                rest.sort(key=lambda chunk: int(_sk(chunk)))
                values[item_id] += b"".join(bytes(chunk["data"]["B"]) for chunk in rest)
        return values

    def _remember(self, head_pk: str, item_id: str, count: int) -> None:
        key = f"{head_pk}/{item_id}"
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > _COUNT_CACHE:
            self._counts.popitem(last=False)

    async def _delete_chunked(self, head_pk: str, ids: Collection[str]) -> None:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        # Chunk counts this store object wrote or read are known (ids are never reused);
        # only the others are looked up, so deleting what a pass read is one wave.
        counts = {
            i: self._counts[f"{head_pk}/{i}"] for i in unique if f"{head_pk}/{i}" in self._counts
        }
        unknown = [_key(head_pk, i) for i in unique if i not in counts]
        async with self._client() as db:
            if unknown:
                with self._translated("dynamodb:BatchGetItem"):
                    heads = await self._batch_get(db, unknown, projection="#pk, #sk, #n")
                counts.update((_sk(h), self._head_count(h)) for h in heads)
            extras: list[WriteRequestTypeDef] = [
                {"DeleteRequest": {"Key": _key(f"{head_pk}#{i}", _chunk_sk(index))}}
                for i, count in counts.items()
                for index in range(1, count)
            ]
            with self._translated("dynamodb:BatchWriteItem"):
                if extras:
                    await self._batch_write(db, extras)
                await self._batch_write(
                    db, [{"DeleteRequest": {"Key": _key(head_pk, i)}} for i in counts]
                )
        for i in counts:
            self._counts.pop(f"{head_pk}/{i}", None)


def _put(pk: str, sk: str, data: bytes) -> WriteRequestTypeDef:
    """A ``PutRequest`` of one chunk for ``BatchWriteItem``."""
    return {"PutRequest": {"Item": {**_key(pk, sk), "data": {"B": data}}}}


def _request_bytes(request: WriteRequestTypeDef) -> int:
    """About how many bytes one write request adds to a BatchWriteItem body."""
    put = request.get("PutRequest")
    value = None if put is None else put["Item"].get("data")
    body = value.get("B", b"") if isinstance(value, dict) else b""
    return len(body) * 4 // 3 + 256  # base64 in the JSON body, plus keys and names


def _write_batches(requests: Sequence[WriteRequestTypeDef]) -> list[list[WriteRequestTypeDef]]:
    """Group write requests: at most 25 per batch and a body under aiohttp's 1 MB.

    aiohttp sends a bytes body above 1 MB in one blocking write (and warns); keeping
    each request body under it keeps the event loop free. Small values still go 25
    to a request; only large chunks travel one or two at a time.
    """
    batches: list[list[WriteRequestTypeDef]] = []
    size = 0
    for request in requests:
        cost = _request_bytes(request)
        if not batches or len(batches[-1]) >= _BATCH_WRITE or size + cost > _BODY_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(request)
        size += cost
    return batches


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter for items DynamoDB left unprocessed."""
    return random.uniform(0, min(2.0, 0.05 * 2**attempt))
