"""The S3 requests of :class:`S3Store` that need more than one call: reading an
object whose body may break off, proving that the server honours conditional writes,
and the message of a failed ``DeleteObjects``.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING

from .._concurrency import gather
from .._errors import StoreError
from ._aws_errors import error_code, http_status

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ErrorTypeDef, PutObjectRequestTypeDef

#: Reads of one object when its body stops streaming half-way.
_BODY_ATTEMPTS = 3

#: The answers to a conditional write whose condition failed: another writer won.
CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


async def get_object(s3: S3Client, bucket: str, key: str) -> tuple[bytes, str] | None:
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
            response = await s3.get_object(Bucket=bucket, Key=key)
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


async def prove_conditions(s3: S3Client, bucket: str, key: str, description: str) -> None:
    """Refuse a server that ignores ``If-None-Match`` / ``If-Match`` on ``PutObject``.

    Writes the probe ``key``, then a conditional create of it and a write with a stale
    ``If-Match``, together (two request waves in all): both must be refused. On a server
    that keeps the conditions either answer may be ``412`` or, as the two race,
    ``409 ConditionalRequestConflict``; both are refusals. Request failures propagate
    untranslated.

    Raises:
        StoreError: the server accepted one of the two conditional writes.
    """
    endpoint = getattr(getattr(s3, "meta", None), "endpoint_url", None) or "the endpoint"
    await s3.put_object(Bucket=bucket, Key=key, Body=b"probe")
    create: PutObjectRequestTypeDef = {
        "Bucket": bucket,
        "Key": key,
        "Body": b"probe",
        "IfNoneMatch": "*",
    }
    stale: PutObjectRequestTypeDef = {
        "Bucket": bucket,
        "Key": key,
        "Body": b"probe",
        "IfMatch": f'"stale-{uuid.uuid4().hex}"',
    }
    checks = (
        (create, "a conditional create (If-None-Match: *) of an object that exists"),
        (stale, "a write with a stale If-Match"),
    )

    async def refused(request: PutObjectRequestTypeDef) -> bool:
        try:
            await s3.put_object(**request)
        except Exception as exc:
            if error_code(exc) in CONFLICT_CODES or http_status(exc) == 412:
                return True
            raise
        return False

    answers = await gather(*(functools.partial(refused, request) for request, _ in checks))
    for (_, what), was_refused in zip(checks, answers, strict=True):
        if not was_refused:
            raise StoreError(
                f"{description} at {endpoint} accepted {what} on the key "
                f"{key!r}: this S3 server ignores conditional writes, so "
                "two runners could both commit and lose work. Use AWS S3 or an "
                "S3-compatible server that implements If-Match and If-None-Match on "
                "PutObject (see docs/aws.md)."
            )


def delete_failed(description: str, count: int, first: ErrorTypeDef) -> StoreError:
    """The error for a ``DeleteObjects`` answer that lists keys it could not delete."""
    code = first.get("Code", "")
    hint = (
        "; grant the s3:DeleteObject permission (see docs/aws.md)" if code == "AccessDenied" else ""
    )
    return StoreError(
        f"{description}: DeleteObjects failed for {count} key(s), first "
        f"{first.get('Key')!r}: {code} {first.get('Message', '')}{hint}"
    )
