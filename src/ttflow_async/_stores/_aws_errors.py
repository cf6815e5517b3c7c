"""AWS request failures turned into :class:`StoreError` messages that say what to do.

botocore and aiohttp are imported inside the functions, so importing this module
never pulls them in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .._errors import StoreError


def _response(exc: BaseException) -> dict[str, object] | None:
    """The parsed error answer a botocore ``ClientError`` carries, if ``exc`` has one."""
    response: object = getattr(exc, "response", None)
    return response if isinstance(response, dict) else None


def _section(response: dict[str, object] | None, name: str) -> dict[str, object]:
    """One part of an error answer (``Error``, ``ResponseMetadata``), ``{}`` if absent."""
    part = None if response is None else response.get(name)
    return part if isinstance(part, dict) else {}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = _response(exc)
    if response is None:
        return ""
    return str(_section(response, "Error").get("Code", ""))


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 when unknown)."""
    response = _response(exc)
    if response is None:
        return 0
    status = _section(response, "ResponseMetadata").get("HTTPStatusCode", 0)
    return status if isinstance(status, int) else int(str(status))


def error_item(exc: BaseException) -> dict[str, object]:
    """The item a failed DynamoDB condition answered with (``ALL_OLD``), ``{}`` if none."""
    return _section(_response(exc), "Item")


_ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
}


def translate_error(exc: Exception, *, what: str, action: str, missing_hint: str) -> StoreError:
    """Turn a botocore/aiohttp failure into a :class:`StoreError` that says what to do.

    Args:
        exc: The original error (kept as ``__cause__`` by the caller's ``raise ... from``).
        what: The resource, e.g. ``"S3 bucket 'b'"`` or ``"DynamoDB table 't'"``.
        action: The IAM action of the failed request, e.g. ``"s3:PutObject"``.
        missing_hint: What to do when the resource does not exist.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _ACCESS_DENIED or http_status(exc) == 403:
            return StoreError(
                f"{what}: access denied for {action} ({code}: {message}); grant the "
                f"credentials in use the {action} permission (see docs/aws.md for the "
                "full IAM policy)"
            )
        if code in {"NoSuchBucket", "ResourceNotFoundException"}:
            return StoreError(f"{what} does not exist ({code} on {action}); {missing_hint}")
        return StoreError(f"{what}: {action} failed with {code or 'an error'}: {message}")
    if isinstance(exc, NoCredentialsError):
        return StoreError(
            f"{what}: no AWS credentials found for {action}; configure the standard AWS "
            "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role)"
        )
    if isinstance(exc, NoRegionError):
        return StoreError(
            f"{what}: no AWS region configured for {action}; set AWS_REGION or "
            "AWS_DEFAULT_REGION (or region in the AWS config file)"
        )
    if isinstance(exc, EndpointConnectionError):
        return StoreError(
            f"{what}: could not connect to the endpoint for {action} ({exc}); check the "
            "network and AWS_ENDPOINT_URL if it is set"
        )
    if isinstance(exc, BotoCoreError):
        return StoreError(f"{what}: {action} failed: {exc}")
    return StoreError(f"{what}: {action} failed: {type(exc).__name__}: {exc}")


def is_translatable(exc: BaseException) -> bool:
    """Whether ``exc`` is a request failure :func:`translate_error` should handle."""
    from aiohttp import ClientError as HttpClientError
    from botocore.exceptions import BotoCoreError, ClientError

    # botocore maps most transport failures to its own errors; what it lets through
    # (a body cut short while streaming, a timeout) is aiohttp's or the OS's.
    return isinstance(exc, ClientError | BotoCoreError | HttpClientError | OSError | TimeoutError)


@contextlib.contextmanager
def translated(
    *, what: str, action: str, missing_hint: str, passthrough: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Re-raise request failures inside the block as :class:`StoreError` (cause chained).

    Exceptions listed in ``passthrough`` (the protocol's own ``BlobNotFound`` and
    ``RootConflict``) and anything that is not a request failure propagate unchanged.
    """
    try:
        yield
    except passthrough:
        raise
    except Exception as exc:
        if is_translatable(exc):
            raise translate_error(exc, what=what, action=action, missing_hint=missing_hint) from exc
        raise
