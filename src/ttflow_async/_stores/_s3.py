"""The Amazon S3 store (``"s3:<bucket>"`` or ``"s3:<bucket>/<prefix>"``).

Layout under the prefix::

    <prefix>/root.json       the root; its ETag is the version token
    <prefix>/blobs/<id>      one object per immutable blob (S3 needs no chunking)
    <prefix>/inbox/<id>      one object per inbox item
    <prefix>/conditions-probe  written at ensure() and first open (see below)

The root CAS is a conditional ``PutObject``: ``IfNoneMatch="*"`` when no root may
exist yet, ``IfMatch=<etag>`` otherwise. S3 answers ``412 PreconditionFailed`` when the
condition does not hold and ``409 ConditionalRequestConflict`` when two conditional
writes race; both mean another writer won (:class:`RootConflict`). S3 reads are
strongly consistent, so a root read right after a write sees it.

Many S3-compatible servers (and AWS S3 before August 2024) ignore ``If-Match`` and
``If-None-Match`` on ``PutObject``: every write succeeds, and two runners could both
commit. So the store proves the conditions on its probe key before it is used, at
``ensure()`` and at the first ``open()`` of each store object (three requests, once):
a conditional create of the existing probe and a write with a stale ``If-Match`` must
both be refused. A server that accepts either is refused with a :class:`StoreError`.

The ETag changes whenever the content does. Without a customer-managed KMS key it is
the MD5 of the body, so two roots with identical bytes share a version token; they are
the same state, so a CAS that succeeds on either is sound.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from .._concurrency import gather_bounded
from .._errors import StoreError
from ._aws import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_CONCURRENCY,
    AwsClientHolder,
    chunked,
    client_config,
    default_session,
    error_code,
    http_status,
    load_aioboto3,
    translated,
    translated_client,
)
from ._protocol import BlobNotFound, RootConflict

#: ``DeleteObjects`` takes at most 1000 keys per request.
_DELETE_BATCH = 1000

#: Reads of one object when its body stops streaming half-way.
_BODY_ATTEMPTS = 3

#: Metadata key of the per-write token of the root (see ``write_root``).
_WRITE_TOKEN = "ttflow-write"

_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


def _bucket_missing(exc: BaseException) -> bool:
    """Whether a translated failure says the bucket does not exist."""
    cause = exc.__cause__
    return cause is not None and (
        error_code(cause) in ("NoSuchBucket", "404") or http_status(cause) == 404
    )


class S3Store:
    """A store in one S3 bucket, under an optional key prefix.

    Args:
        bucket: The bucket name.
        prefix: Key prefix (without slashes at either end); ``""`` for the bucket root.
        session: An ``aioboto3.Session`` to use instead of a default one.
        endpoint_url: An explicit endpoint; by default the AWS chain decides
            (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` included).
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
        bucket: str,
        prefix: str = "",
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        retry_mode: str = "standard",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not bucket:
            raise ValueError("S3Store needs a bucket name")
        aioboto3 = load_aioboto3("s3")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        base = f"{self.prefix}/" if self.prefix else ""
        self._root_key = f"{base}root.json"
        self._blob_prefix = f"{base}blobs/"
        self._inbox_prefix = f"{base}inbox/"
        self._probe_key = f"{base}conditions-probe"
        self._conditions_proven = False
        self._limit = request_concurrency
        self._region_name = region_name
        self._holder = AwsClientHolder(
            "s3",
            session if session is not None else default_session(aioboto3),
            client_config(request_concurrency, retry_mode, max_attempts),
            endpoint_url=endpoint_url,
            region_name=region_name,
        )

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _translated(self, action: str) -> Any:
        return translated(
            what=f"S3 bucket {self.bucket!r}",
            action=action,
            missing_hint=(
                "create it with `ttflow-async init` or `await client.ensure_store()`, "
                "or check the bucket name and region"
            ),
            passthrough=(StoreError,),  # RootConflict and BlobNotFound included
        )

    def _client(self) -> Any:
        """The store's client, a failure to build or connect it a StoreError."""
        return translated_client(self._holder, lambda: self._translated("connect"))

    async def open(self) -> None:
        with self._translated("connect"):
            await self._holder.open()
        if not self._conditions_proven:
            try:
                async with self._client() as s3:
                    await self._prove_conditions(s3)
            except StoreError as exc:
                if _bucket_missing(exc):
                    return  # ensure() creates it and proves it; a write proves it first
                await self.aclose()  # a refused store is not left open
                raise
            except BaseException:
                await self.aclose()  # a refused store is not left open
                raise

    async def _prove_conditions(self, s3: Any) -> None:
        """Refuse a server that ignores conditional writes (see the module docstring)."""
        if self._conditions_proven:
            return
        endpoint = getattr(getattr(s3, "meta", None), "endpoint_url", None) or "the endpoint"
        with self._translated("s3:PutObject"):
            await s3.put_object(Bucket=self.bucket, Key=self._probe_key, Body=b"probe")
            checks = (
                (
                    {"IfNoneMatch": "*"},
                    "a conditional create (If-None-Match: *) of an object that exists",
                ),
                ({"IfMatch": f'"stale-{uuid.uuid4().hex}"'}, "a write with a stale If-Match"),
            )
            for condition, what in checks:
                try:
                    await s3.put_object(
                        Bucket=self.bucket, Key=self._probe_key, Body=b"probe", **condition
                    )
                except Exception as exc:
                    if error_code(exc) in _CONFLICT_CODES or http_status(exc) == 412:
                        continue
                    raise
                raise StoreError(
                    f"{self.description} at {endpoint} accepted {what} on the key "
                    f"{self._probe_key!r}: this S3 server ignores conditional writes, so "
                    "two runners could both commit and lose work. Use AWS S3 or an "
                    "S3-compatible server that implements If-Match and If-None-Match on "
                    "PutObject (see docs/aws.md)."
                )
        self._conditions_proven = True

    async def aclose(self) -> None:
        with self._translated("close"):
            await self._holder.aclose()

    async def ensure(self) -> None:
        async with self._client() as s3:
            with self._translated("s3:ListBucket"):
                try:
                    await s3.head_bucket(Bucket=self.bucket)
                    exists = True
                except Exception as exc:
                    if http_status(exc) != 404:
                        raise
                    exists = False
            if exists:
                await self._prove_conditions(s3)
                return
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            region = self._region_name or s3.meta.region_name
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            with self._translated("s3:CreateBucket"):
                try:
                    await s3.create_bucket(**kwargs)
                except Exception as exc:
                    # Another process created it between our check and our create.
                    if error_code(exc) != "BucketAlreadyOwnedByYou":
                        raise
            await self._prove_conditions(s3)

    async def _get(self, s3: Any, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or ``None`` if it does not exist.

        botocore retries a request, but not the reading of the body that follows it:
        a connection that breaks while the body streams is retried here.
        """
        from aiohttp import ClientPayloadError
        from botocore.exceptions import (
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        for attempt in range(_BODY_ATTEMPTS):
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if error_code(exc) == "NoSuchKey":
                    return None
                raise
            try:
                async with response["Body"] as body:
                    data: bytes = await body.read()
            except (
                ClientPayloadError,
                ResponseStreamingError,
                ReadTimeoutError,
                IncompleteReadError,
            ):
                if attempt + 1 == _BODY_ATTEMPTS:
                    raise
                continue
            return data, str(response["ETag"])
        raise AssertionError("unreachable")

    async def read_root(self) -> tuple[bytes, str] | None:
        async with self._client() as s3:
            with self._translated("s3:GetObject"):
                return await self._get(s3, self._root_key)

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        # A token unique to this call, kept in the object's metadata: if the answer to
        # the write is lost and the request is sent again (by botocore, or by aiohttp,
        # which silently resends a PUT whose kept-alive connection died), the second
        # attempt meets the first one's write; the token tells it apart from a rival's.
        token = uuid.uuid4().hex
        async with self._client() as s3:
            await self._prove_conditions(s3)  # once per store (open may have found no bucket)
            with self._translated("s3:PutObject"):
                try:
                    response = await s3.put_object(
                        Bucket=self.bucket,
                        Key=self._root_key,
                        Body=data,
                        Metadata={_WRITE_TOKEN: token},
                        **condition,
                    )
                except Exception as exc:
                    code = error_code(exc)
                    # IfMatch on a root that was deleted (clear) answers 404.
                    if code in _CONFLICT_CODES or (expected is not None and code == "NoSuchKey"):
                        landed = await self._written_by(s3, token)
                        if landed is not None:
                            return landed
                        raise RootConflict(
                            f"the root of {self.description} changed (expected version "
                            f"{expected}): another runner committed first"
                        ) from None
                    raise
        return str(response["ETag"])

    async def _written_by(self, s3: Any, token: str) -> str | None:
        """The root's version if the write carrying ``token`` is the current root."""
        try:
            response = await s3.head_object(Bucket=self.bucket, Key=self._root_key)
        except Exception as exc:
            if http_status(exc) == 404:
                return None
            raise
        if response.get("Metadata", {}).get(_WRITE_TOKEN) == token:
            return str(response["ETag"])
        return None

    def _blob_key(self, blob_id: str) -> str:
        return f"{self._blob_prefix}{blob_id}"

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        if not blobs:
            return
        async with self._client() as s3:

            def put(key: str, data: bytes) -> Any:
                return lambda: s3.put_object(Bucket=self.bucket, Key=key, Body=data)

            with self._translated("s3:PutObject"):
                await gather_bounded(
                    [put(self._blob_key(i), data) for i, data in blobs.items()], self._limit
                )

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        async with self._client() as s3:

            def get(blob_id: str) -> Any:
                async def fetch() -> bytes:
                    found = await self._get(s3, self._blob_key(blob_id))
                    if found is None:
                        raise BlobNotFound(blob_id)
                    return found[0]

                return fetch

            unique = list(dict.fromkeys(ids))
            with self._translated("s3:GetObject"):
                found = await gather_bounded([get(i) for i in unique], self._limit)
        return dict(zip(unique, found, strict=True))

    async def _delete_keys(self, keys: list[str]) -> None:
        if not keys:
            return
        async with self._client() as s3:

            def delete(batch: Any) -> Any:
                async def run() -> None:
                    response = await s3.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                    )
                    errors = response.get("Errors") or []
                    if errors:
                        first = errors[0]
                        raise _delete_failed(self.description, len(errors), first)

                return run

            with self._translated("s3:DeleteObject"):
                await gather_bounded([delete(b) for b in chunked(keys, _DELETE_BATCH)], self._limit)

    async def delete_blobs(self, ids: Collection[str]) -> None:
        await self._delete_keys([self._blob_key(i) for i in dict.fromkeys(ids)])

    async def _list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        async with self._client() as s3:
            paginator = s3.get_paginator("list_objects_v2")
            with self._translated("s3:ListBucket"):
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                    keys.extend(entry["Key"] for entry in page.get("Contents", []))
        return [key[len(prefix) :] for key in keys]

    async def list_blobs(self) -> list[str]:
        return await self._list_keys(self._blob_prefix)

    async def inbox_put(self, item_id: str, data: bytes) -> None:
        async with self._client() as s3:
            with self._translated("s3:PutObject"):
                await s3.put_object(
                    Bucket=self.bucket, Key=f"{self._inbox_prefix}{item_id}", Body=data
                )

    async def inbox_list(self) -> list[tuple[str, bytes]]:
        ids = sorted(await self._list_keys(self._inbox_prefix))
        if not ids:
            return []
        async with self._client() as s3:

            def get(item_id: str) -> Any:
                async def fetch() -> bytes | None:
                    found = await self._get(s3, f"{self._inbox_prefix}{item_id}")
                    # None: consumed and deleted by a runner since the listing.
                    return None if found is None else found[0]

                return fetch

            with self._translated("s3:GetObject"):
                found = await gather_bounded([get(i) for i in ids], self._limit)
        return [(i, data) for i, data in zip(ids, found, strict=True) if data is not None]

    async def inbox_delete(self, ids: Collection[str]) -> None:
        await self._delete_keys([f"{self._inbox_prefix}{i}" for i in dict.fromkeys(ids)])


def _delete_failed(description: str, count: int, first: Mapping[str, Any]) -> Exception:
    code = first.get("Code", "")
    hint = (
        "; grant the s3:DeleteObject permission (see docs/aws.md)" if code == "AccessDenied" else ""
    )
    return StoreError(
        f"{description}: DeleteObjects failed for {count} key(s), first "
        f"{first.get('Key')!r}: {code} {first.get('Message', '')}{hint}"
    )
