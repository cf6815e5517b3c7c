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
``ensure()`` and at the first ``open()`` of each store object (three requests in two
waves, once): a conditional create of the existing probe and a write with a stale
``If-Match`` must both be refused. A server that accepts either is refused with a
:class:`StoreError`.

The ETag changes whenever the content does. Without a customer-managed KMS key it is
the MD5 of the body, so two roots with identical bytes share a version token; they are
the same state, so a CAS that succeeds on either is sound.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import anyio

from .._concurrency import gather_bounded
from .._errors import StoreError
from ._aws_errors import error_code, http_status
from ._aws_store import DEFAULT_MAX_ATTEMPTS, DEFAULT_REQUEST_CONCURRENCY, AwsStore, chunked
from ._protocol import BlobNotFound, RootConflict
from ._s3_objects import CONFLICT_CODES, delete_failed, get_object, prove_conditions

if TYPE_CHECKING:
    from aioboto3 import Session
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType
    from types_aiobotocore_s3.type_defs import CreateBucketRequestTypeDef, PutObjectRequestTypeDef

#: ``DeleteObjects`` takes at most 1000 keys per request.
_DELETE_BATCH = 1000

#: Metadata key of the per-write token of the root (see ``write_root``).
_WRITE_TOKEN = "ttflow-write"


def _bucket_missing(exc: BaseException) -> bool:
    """Whether a translated failure says the bucket does not exist."""
    cause = exc.__cause__
    return cause is not None and (
        error_code(cause) in ("NoSuchBucket", "404") or http_status(cause) == 404
    )


class _Deletion:
    """The inbox items one ``inbox_delete`` call is deleting, and whether it succeeded."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.ok = False


class S3Store(AwsStore["S3Client"]):
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
        session: Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        retry_mode: str = "standard",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not bucket:
            raise ValueError("S3Store needs a bucket name")
        super().__init__(
            "s3",
            what=f"S3 bucket {bucket!r}",
            kind="bucket",
            session=session,
            endpoint_url=endpoint_url,
            region_name=region_name,
            request_concurrency=request_concurrency,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        base = f"{self.prefix}/" if self.prefix else ""
        self._root_key = f"{base}root.json"
        self._blob_prefix = f"{base}blobs/"
        self._inbox_prefix = f"{base}inbox/"
        #: Inbox ids this store object is deleting now (see ``inbox_list``).
        self._deleting: dict[str, _Deletion] = {}
        #: Inbox ids this store object deleted: gone for good (ids are never reused),
        #: though a listing the server answered before the delete may still name them.
        self._deleted: set[str] = set()
        #: Bodies of the items of the last inbox listing: an item never changes under
        #: its id, so a pass that lists the inbox again reads only what is new.
        self._bodies: dict[str, bytes] = {}
        self._probe_key = f"{base}conditions-probe"
        self._conditions_proven = False

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    async def open(self) -> None:
        await super().open()
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

    async def _prove_conditions(self, s3: S3Client) -> None:
        """Refuse a server that ignores conditional writes (see the module docstring)."""
        if self._conditions_proven:
            return
        with self._translated("s3:PutObject"):
            await prove_conditions(s3, self.bucket, self._probe_key, self.description)
        self._conditions_proven = True

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
            create: CreateBucketRequestTypeDef = {"Bucket": self.bucket}
            region = self._region_name or s3.meta.region_name
            if region and region != "us-east-1":
                # The stubs list AWS's regions; botocore sends any name as it is.
                location = cast("BucketLocationConstraintType", region)
                create["CreateBucketConfiguration"] = {"LocationConstraint": location}
            with self._translated("s3:CreateBucket"):
                try:
                    await s3.create_bucket(**create)
                except Exception as exc:
                    # Another process created it between our check and our create.
                    if error_code(exc) != "BucketAlreadyOwnedByYou":
                        raise
            await self._prove_conditions(s3)

    async def read_root(self) -> tuple[bytes, str] | None:
        async with self._client() as s3:
            with self._translated("s3:GetObject"):
                return await get_object(s3, self.bucket, self._root_key)

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        # A token unique to this call, kept in the object's metadata: if the answer to
        # the write is lost and the request is sent again (by botocore, or by aiohttp,
        # which silently resends a PUT whose kept-alive connection died), the second
        # attempt meets the first one's write; the token tells it apart from a rival's.
        token = uuid.uuid4().hex
        request: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": self._root_key,
            "Body": data,
            "Metadata": {_WRITE_TOKEN: token},
        }
        if expected is None:
            request["IfNoneMatch"] = "*"
        else:
            request["IfMatch"] = expected
        async with self._client() as s3:
            await self._prove_conditions(s3)  # once per store (open may have found no bucket)
            with self._translated("s3:PutObject"):
                try:
                    response = await s3.put_object(**request)
                except Exception as exc:
                    code = error_code(exc)
                    # IfMatch on a root that was deleted (clear) answers 404.
                    if code in CONFLICT_CODES or (expected is not None and code == "NoSuchKey"):
                        landed = await self._written_by(s3, token)
                        if landed is not None:
                            return landed
                        raise RootConflict(
                            f"the root of {self.description} changed (expected version "
                            f"{expected}): another runner committed first"
                        ) from None
                    raise
        return str(response["ETag"])

    async def _written_by(self, s3: S3Client, token: str) -> str | None:
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

            def put(key: str, data: bytes) -> Callable[[], Awaitable[object]]:
                return lambda: s3.put_object(Bucket=self.bucket, Key=key, Body=data)

            with self._translated("s3:PutObject"):
                await gather_bounded(
                    [put(self._blob_key(i), data) for i, data in blobs.items()], self._limit
                )

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        async with self._client() as s3:

            def get(blob_id: str) -> Callable[[], Awaitable[bytes]]:
                async def fetch() -> bytes:
                    found = await get_object(s3, self.bucket, self._blob_key(blob_id))
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

            def delete(batch: Sequence[str]) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    response = await s3.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                    )
                    errors = response.get("Errors") or []
                    if errors:
                        first = errors[0]
                        raise delete_failed(self.description, len(errors), first)

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
        # An entered client deletes the items a commit consumed alongside its next call,
        # so this listing may name items this object is deleting. Waiting for that one
        # request beats a GET per item: what it deleted is left out, and if it failed,
        # the items are read as any others (the head still names them consumed).
        deleting = {i: d for i in ids if (d := self._deleting.get(i)) is not None}
        for deletion in set(deleting.values()):
            await deletion.done.wait()
        ids = [i for i in ids if i not in deleting or not deleting[i].ok]
        # Those deleted already are left out too; what a listing no longer names, no
        # later listing will, so it need not be remembered.
        self._deleted &= set(ids)
        ids = [i for i in ids if i not in self._deleted]
        known = {i: body for i in ids if (body := self._bodies.get(i)) is not None}
        missing = [i for i in ids if i not in known]
        if missing:
            known.update(await self._inbox_get(missing))
        self._bodies = known  # what the listing no longer names is forgotten
        return [(i, known[i]) for i in ids if i in known]

    async def _inbox_get(self, ids: list[str]) -> dict[str, bytes]:
        """The bodies of inbox items; an item deleted since the listing is left out."""
        async with self._client() as s3:

            def get(item_id: str) -> Callable[[], Awaitable[bytes | None]]:
                async def fetch() -> bytes | None:
                    found = await get_object(s3, self.bucket, f"{self._inbox_prefix}{item_id}")
                    # None: consumed and deleted by a runner since the listing.
                    return None if found is None else found[0]

                return fetch

            with self._translated("s3:GetObject"):
                found = await gather_bounded([get(i) for i in ids], self._limit)
        return {i: data for i, data in zip(ids, found, strict=True) if data is not None}

    async def inbox_delete(self, ids: Collection[str]) -> None:
        unique = list(dict.fromkeys(ids))
        deletion = _Deletion()
        self._deleting.update(dict.fromkeys(unique, deletion))
        try:
            await self._delete_keys([f"{self._inbox_prefix}{i}" for i in unique])
            deletion.ok = True
            self._deleted.update(unique)
            for item_id in unique:
                self._bodies.pop(item_id, None)
        finally:
            deletion.done.set()
            for item_id in unique:
                if self._deleting.get(item_id) is deletion:
                    del self._deleting[item_id]
