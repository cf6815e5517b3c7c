"""The Amazon DynamoDB store (``"dynamodb:<table>"``).

One table, key schema ``pk`` (string, partition key) + ``sk`` (string, sort key)::

    pk="root"           sk="root"      data (B), v (S)      the root; ``v`` is its version
    pk="blobs"          sk=<blob id>   data (B), n (N)      a blob's first chunk
    pk="blob#<id>"      sk="0001"...   data (B)             the blob's further chunks
    pk="inbox"          sk=<item id>   data (B), n (N)      an inbox item's first chunk
    pk="inbox#<id>"     sk="0001"...   data (B)             the item's further chunks

The root CAS is a conditional ``PutItem`` (``attribute_not_exists(pk)`` for the first
root, ``v = :expected`` after it); each write stores a fresh random ``v``, so a version
token is never reused. A failed condition means another writer won (:class:`RootConflict`).

Items are limited to 400 KB, so a value is cut into chunks of at most
:data:`CHUNK_BYTES`. The first chunk lives in a shared partition (``blobs`` or
``inbox``), which makes listing one ``Query`` per 1 MB page and lets a batch of up to
100 first chunks come back from one ``BatchGetItem``; most values fit in one chunk, so
most reads and writes are one request per 100 (read) or 25 (write) values. Further
chunks are written *before* their first chunk and deleted *after* it: a first chunk
that exists always has all its chunks. A blob of several chunks first gets a
*placeholder* first chunk (its count ``n`` and no ``data``), then its further chunks,
then its real first chunk: a crash between them leaves a placeholder that
``list_blobs`` lists, so garbage collection finds and deletes the orphaned chunks; a
read treats a placeholder as a missing blob. Every read is strongly consistent.
"""

from __future__ import annotations

import random
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

import anyio

from .._concurrency import gather_bounded
from .._errors import CorruptStateError, StoreError
from ._aws import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_CONCURRENCY,
    AwsClientHolder,
    chunked,
    client_config,
    default_session,
    error_code,
    load_aioboto3,
    translated,
    translated_client,
)
from ._protocol import BlobNotFound, RootConflict

#: Bytes of value per item: DynamoDB's item limit is 400 KB, keys and names included.
CHUNK_BYTES = 350_000

_ROOT_KEY = {"pk": {"S": "root"}, "sk": {"S": "root"}}
_BATCH_WRITE = 25  # BatchWriteItem takes at most 25 items
_BODY_BYTES = 900_000  # keep request bodies under aiohttp's 1 MB (see _write_batches)
_BATCH_GET = 100  # BatchGetItem takes at most 100 keys
_COUNT_CACHE = 8192  # chunk counts of values this store object wrote or read
_UNPROCESSED_ROUNDS = 12  # retries of items DynamoDB left unprocessed (throttling)

KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]


def _chunk_sk(index: int) -> str:
    return f"{index:04d}"


class DynamoDBStore:
    """A store in one DynamoDB table.

    Args:
        table: The table name.
        session: An ``aioboto3.Session`` to use instead of a default one.
        endpoint_url: An explicit endpoint; by default the AWS chain decides
            (``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` included).
        region_name: An explicit region; by default the AWS chain decides.
        request_concurrency: Requests of one call in flight at once (and pooled
            connections); named so because ``setup()``'s ``max_concurrency`` is the
            number of runs executing at once.
        retry_mode: botocore retry mode, ``"standard"`` (default) or ``"adaptive"``.
        max_attempts: Attempts per request, the first one included.

    Raises:
        ImportError: aioboto3 is not installed (``pip install 'ttflow-async[aws]'``).
    """

    def __init__(
        self,
        table: str,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        retry_mode: str = "standard",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not table:
            raise ValueError("DynamoDBStore needs a table name")
        aioboto3 = load_aioboto3("dynamodb")
        self.table = table
        self._limit = request_concurrency
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._holder = AwsClientHolder(
            "dynamodb",
            session if session is not None else default_session(aioboto3),
            client_config(request_concurrency, retry_mode, max_attempts),
            endpoint_url=endpoint_url,
            region_name=region_name,
        )

    @property
    def description(self) -> str:
        return f"dynamodb://{self.table}"

    def _translated(self, action: str) -> Any:
        return translated(
            what=f"DynamoDB table {self.table!r}",
            action=action,
            missing_hint=(
                "create it with `ttflow-async init` or `await client.ensure_store()`, "
                "or check the table name and region"
            ),
            passthrough=(BlobNotFound, RootConflict, StoreError),
        )

    def _corrupt(self, what: str) -> CorruptStateError:
        return CorruptStateError(
            f"DynamoDB table {self.table!r} holds {what}, which this engine did not write; "
            "nothing was changed. Point the store at a table of its own."
        )

    def _client(self) -> Any:
        """The store's client, a failure to build or connect it a StoreError."""
        return translated_client(self._holder, lambda: self._translated("connect"))

    async def open(self) -> None:
        with self._translated("connect"):
            await self._holder.open()

    async def aclose(self) -> None:
        with self._translated("close"):
            await self._holder.aclose()

    async def ensure(self) -> None:
        async with self._client() as db:
            with self._translated("dynamodb:DescribeTable"):
                try:
                    description = (await db.describe_table(TableName=self.table))["Table"]
                except Exception as exc:
                    if error_code(exc) != "ResourceNotFoundException":
                        raise
                    description = None
            if description is not None:
                self._check_schema(description)
                if description.get("TableStatus") == "ACTIVE":
                    return
            else:
                with self._translated("dynamodb:CreateTable"):
                    try:
                        await db.create_table(
                            TableName=self.table,
                            KeySchema=KEY_SCHEMA,
                            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
                            BillingMode="PAY_PER_REQUEST",
                        )
                    except Exception as exc:
                        # Another process created it between our check and our create.
                        if error_code(exc) != "ResourceInUseException":
                            raise
            with self._translated("dynamodb:DescribeTable"):
                waiter = db.get_waiter("table_exists")
                await waiter.wait(
                    TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
                )

    def _check_schema(self, description: Mapping[str, Any]) -> None:
        schema = {k["AttributeName"]: k["KeyType"] for k in description.get("KeySchema", [])}
        types = {
            a["AttributeName"]: a["AttributeType"]
            for a in description.get("AttributeDefinitions", [])
        }
        if (
            schema != {"pk": "HASH", "sk": "RANGE"}
            or types.get("pk") != "S"
            or (types.get("sk") != "S")
        ):
            raise StoreError(
                f"DynamoDB table {self.table!r} exists with key schema {schema} ({types}); "
                "ttflow-async needs partition key 'pk' (S) and sort key 'sk' (S). "
                "Use another table name or create the table as docs/aws.md shows."
            )

    async def read_root(self) -> tuple[bytes, str] | None:
        async with self._client() as db:
            with self._translated("dynamodb:GetItem"):
                response = await db.get_item(
                    TableName=self.table, Key=_ROOT_KEY, ConsistentRead=True
                )
        item = response.get("Item")
        if item is None:
            return None
        try:
            return bytes(item["data"]["B"]), str(item["v"]["S"])
        except (KeyError, TypeError):
            raise self._corrupt("a root item without its data or version") from None

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        if len(data) > CHUNK_BYTES:
            raise StoreError(
                f"the root record is {len(data)} bytes, over the {CHUNK_BYTES} bytes a "
                f"DynamoDB item of table {self.table!r} can hold"
            )
        version = uuid.uuid4().hex
        condition: dict[str, Any]
        if expected is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "v"},
                "ExpressionAttributeValues": {":expected": {"S": expected}},
            }
        item = {**_ROOT_KEY, "data": {"B": data}, "v": {"S": version}}
        async with self._client() as db:
            with self._translated("dynamodb:PutItem"):
                try:
                    await db.put_item(
                        TableName=self.table,
                        Item=item,
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                        **condition,
                    )
                except Exception as exc:
                    if error_code(exc) != "ConditionalCheckFailedException":
                        raise
                    current = getattr(exc, "response", {}).get("Item") or {}
                    if current.get("v", {}).get("S") == version:
                        # An earlier attempt of this very call succeeded but its answer
                        # was lost; the retry then met our own write. ``version`` is
                        # fresh for each call, so only this call can have written it.
                        return version
                    # Servers that ignore ReturnValuesOnConditionCheckFailure (and
                    # answers that lost the item) return nothing: read the root.
                    if not current and await self._root_version(db) == version:
                        return version
                    raise RootConflict(
                        f"the root of {self.description} changed (expected version "
                        f"{expected}): another runner committed first"
                    ) from None
        return version

    async def _root_version(self, db: Any) -> str | None:
        """The current root's version token (strongly consistent), or ``None``."""
        response = await db.get_item(
            TableName=self.table,
            Key=_ROOT_KEY,
            ConsistentRead=True,
            ProjectionExpression="#v",
            ExpressionAttributeNames={"#v": "v"},
        )
        found = response.get("Item", {}).get("v", {}).get("S")
        return None if found is None else str(found)

    # -- chunked values (blobs and inbox items) ---------------------------------------

    async def _batch_write(self, db: Any, requests: Sequence[Mapping[str, Any]]) -> None:
        """Run write requests in batches of 25, concurrently, until all are processed."""

        async def write_batch(batch: Sequence[Mapping[str, Any]]) -> None:
            pending: Any = {self.table: list(batch)}
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
        self, db: Any, keys: Sequence[Mapping[str, Any]], projection: str | None = None
    ) -> list[dict[str, Any]]:
        """Fetch items by key in batches of 100, concurrently; missing items are absent."""

        async def get_batch(batch: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            request: dict[str, Any] = {"Keys": list(batch), "ConsistentRead": True}
            if projection is not None:
                request["ProjectionExpression"] = projection
                request["ExpressionAttributeNames"] = {"#pk": "pk", "#sk": "sk", "#n": "n"}
            found: list[dict[str, Any]] = []
            pending: Any = {self.table: request}
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

    async def _query_all(self, db: Any, pk: str, projection: str | None = None) -> list[Any]:
        """Every item of one partition, in sort-key order (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if projection is not None:
            request["ProjectionExpression"] = projection
        items: list[Any] = []
        paginator = db.get_paginator("query")
        async for page in paginator.paginate(**request):
            items.extend(page.get("Items", []))
        return items

    def _head_count(self, item: Mapping[str, Any]) -> int:
        try:
            return int(item["n"]["N"])
        except (KeyError, TypeError, ValueError):
            raise self._corrupt(f"an item {item.get('sk')} without its chunk count") from None

    async def _put_chunked(self, head_pk: str, items: Mapping[str, bytes]) -> None:
        heads: list[dict[str, Any]] = []
        extras: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for item_id, data in items.items():
            parts = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
            parts = parts or [b""]
            counts[item_id] = len(parts)
            head = _put(head_pk, item_id, parts[0])
            head["PutRequest"]["Item"]["n"] = {"N": str(len(parts))}
            heads.append(head)
            extras.extend(
                _put(f"{head_pk}#{item_id}", _chunk_sk(index), part)
                for index, part in enumerate(parts[1:], start=1)
            )
        placeholders = [
            {"PutRequest": {"Item": {**_without_data(h["PutRequest"]["Item"])}}}
            for h in heads
            if counts[str(h["PutRequest"]["Item"]["sk"]["S"])] > 1
        ]
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
        db: Any,
        head_pk: str,
        heads: Sequence[Mapping[str, Any]],
        *,
        skip_incomplete: bool = False,
    ) -> dict[str, bytes]:
        """Join each first chunk with its further chunks (fetched concurrently).

        With ``skip_incomplete``, a value whose further chunks are (partly) gone is left
        out: a concurrent delete removes them before the first chunk.
        """
        # A placeholder (no data) is a value whose writer has not finished or crashed.
        heads = [h for h in heads if "data" in h]
        values = {str(h["sk"]["S"]): bytes(h["data"]["B"]) for h in heads}
        long_ids = [str(h["sk"]["S"]) for h in heads if self._head_count(h) > 1]
        counts = {str(h["sk"]["S"]): self._head_count(h) for h in heads}
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
                rest.sort(key=lambda chunk: int(chunk["sk"]["S"]))
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
        unknown = [{"pk": {"S": head_pk}, "sk": {"S": i}} for i in unique if i not in counts]
        async with self._client() as db:
            if unknown:
                with self._translated("dynamodb:BatchGetItem"):
                    heads = await self._batch_get(db, unknown, projection="#pk, #sk, #n")
                counts.update((str(h["sk"]["S"]), self._head_count(h)) for h in heads)
            extras = [
                {
                    "DeleteRequest": {
                        "Key": {"pk": {"S": f"{head_pk}#{i}"}, "sk": {"S": _chunk_sk(index)}}
                    }
                }
                for i, count in counts.items()
                for index in range(1, count)
            ]
            with self._translated("dynamodb:BatchWriteItem"):
                if extras:
                    await self._batch_write(db, extras)
                await self._batch_write(
                    db,
                    [
                        {"DeleteRequest": {"Key": {"pk": {"S": head_pk}, "sk": {"S": i}}}}
                        for i in counts
                    ],
                )
        for i in counts:
            self._counts.pop(f"{head_pk}/{i}", None)

    # -- blobs -------------------------------------------------------------------------

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        if blobs:
            await self._put_chunked("blobs", blobs)

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        keys = [{"pk": {"S": "blobs"}, "sk": {"S": i}} for i in unique]
        async with self._client() as db:
            with self._translated("dynamodb:BatchGetItem"):
                heads = await self._batch_get(db, keys)
            found = await self._read_chunked(db, "blobs", heads)
        for blob_id in unique:
            if blob_id not in found:
                raise BlobNotFound(blob_id)
        return {blob_id: found[blob_id] for blob_id in unique}

    async def delete_blobs(self, ids: Collection[str]) -> None:
        await self._delete_chunked("blobs", ids)

    async def list_blobs(self) -> list[str]:
        async with self._client() as db:
            with self._translated("dynamodb:Query"):
                items = await self._query_all(db, "blobs", projection="sk")
        return [str(item["sk"]["S"]) for item in items]

    # -- inbox -------------------------------------------------------------------------

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        await self._put_chunked("inbox", {item_id: data})

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        async with self._client() as db:
            with self._translated("dynamodb:Query"):
                heads = await self._query_all(db, "inbox")
            # An item with missing chunks is being deleted by a runner that consumed it.
            found = await self._read_chunked(db, "inbox", heads, skip_incomplete=True)
        return sorted(found.items())

    async def inbox_delete(self, ids: Collection[str]) -> None:
        await self._delete_chunked("inbox", ids)


def _put(pk: str, sk: str, data: bytes) -> dict[str, Any]:
    """A ``PutRequest`` of one chunk for ``BatchWriteItem``."""
    return {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"S": sk}, "data": {"B": data}}}}


def _without_data(item: Mapping[str, Any]) -> dict[str, Any]:
    """A first chunk's item as a placeholder: keys and count, no data."""
    return {name: value for name, value in item.items() if name != "data"}


def _request_bytes(request: Mapping[str, Any]) -> int:
    """About how many bytes one write request adds to a BatchWriteItem body."""
    body = request.get("PutRequest", {}).get("Item", {}).get("data", {}).get("B", b"")
    return len(body) * 4 // 3 + 256  # base64 in the JSON body, plus keys and names


def _write_batches(requests: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Group write requests: at most 25 per batch and a body under aiohttp's 1 MB.

    aiohttp sends a bytes body above 1 MB in one blocking write (and warns); keeping
    each request body under it keeps the event loop free. Small values still go 25
    to a request; only large chunks travel one or two at a time.
    """
    batches: list[list[Mapping[str, Any]]] = []
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
