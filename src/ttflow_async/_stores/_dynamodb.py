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

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from .._errors import StoreError
from ._aws_errors import error_code, error_item
from ._aws_store import DEFAULT_MAX_ATTEMPTS, DEFAULT_REQUEST_CONCURRENCY
from ._dynamodb_chunks import CHUNK_BYTES, ChunkedTable
from ._protocol import BlobNotFound, RootConflict

if TYPE_CHECKING:
    from aioboto3 import Session
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        AttributeValueTypeDef,
        KeySchemaElementTypeDef,
        PutItemInputTypeDef,
        TableDescriptionTypeDef,
    )

__all__ = ["CHUNK_BYTES", "DynamoDBStore"]

_ROOT_KEY: dict[str, AttributeValueTypeDef] = {"pk": {"S": "root"}, "sk": {"S": "root"}}

KEY_SCHEMA: Sequence[KeySchemaElementTypeDef] = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS: Sequence[AttributeDefinitionTypeDef] = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]


class DynamoDBStore(ChunkedTable):
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
        session: Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        retry_mode: str = "standard",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not table:
            raise ValueError("DynamoDBStore needs a table name")
        super().__init__(
            table,
            session=session,
            endpoint_url=endpoint_url,
            region_name=region_name,
            request_concurrency=request_concurrency,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
        )

    @property
    def description(self) -> str:
        return f"dynamodb://{self.table}"

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

    def _check_schema(self, description: TableDescriptionTypeDef) -> None:
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
        request: PutItemInputTypeDef = {
            "TableName": self.table,
            "Item": {**_ROOT_KEY, "data": {"B": data}, "v": {"S": version}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if expected is None:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            request["ConditionExpression"] = "#v = :expected"
            request["ExpressionAttributeNames"] = {"#v": "v"}
            request["ExpressionAttributeValues"] = {":expected": {"S": expected}}
        async with self._client() as db:
            with self._translated("dynamodb:PutItem"):
                try:
                    await db.put_item(**request)
                except Exception as exc:
                    if error_code(exc) != "ConditionalCheckFailedException":
                        raise
                    current = error_item(exc)
                    found = current.get("v")
                    if isinstance(found, dict) and found.get("S") == version:
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

    async def _root_version(self, db: DynamoDBClient) -> str | None:
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
