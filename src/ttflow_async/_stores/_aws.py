"""What the S3 and DynamoDB stores share: aioboto3 clients, retries, concurrency, errors.

aioboto3 is imported only when an AWS store is built, so ``import ttflow_async`` never
pulls it in; a missing extra fails at ``setup()`` with the ``pip install`` to run.

Credentials, region and endpoint come from the standard AWS chain. botocore itself
honours ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL_DYNAMODB`` variables, so the stores pass an endpoint only when one
is given explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio

from .._errors import StoreError

_T = TypeVar("_T")

INSTALL_HINT = "pip install 'ttflow-async[aws]'"

#: Requests of one store call that may be in flight at once (and HTTP connections).
DEFAULT_REQUEST_CONCURRENCY = 32

#: botocore's "standard" retry mode retries throttling, 5xx answers and connection
#: errors with exponential backoff and jitter; 5 attempts ride out short outages.
DEFAULT_MAX_ATTEMPTS = 5


def load_aioboto3(store_kind: str) -> Any:
    """Import aioboto3, or fail with the ``pip install`` that provides it.

    Args:
        store_kind: The store that needs it, for the message (``"s3"``, ``"dynamodb"``).

    Raises:
        ImportError: aioboto3 is not installed.
    """
    try:
        import aioboto3
    except ImportError as exc:
        raise ImportError(
            f'the "{store_kind}:" store needs aioboto3, which is not installed; run: {INSTALL_HINT}'
        ) from exc
    if store_kind == "s3":
        # botocore imports these while it builds the first S3 client (boto3's transfer
        # helpers, multiprocessing, aiofiles: ~40 ms), in the worker thread where that
        # build runs, where the imports still keep the event loop waiting; importing
        # them here, when the store is made, keeps the first client's call short.
        import aioboto3.s3.inject
    return aioboto3


_DEFAULT_SESSION: list[Any] = []
_DEFAULT_SESSION_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
#: Services whose first client this process has built (see ``_first_build``).
_BUILT_SERVICES: set[str] = set()


def default_session(aioboto3: Any) -> Any:
    """One ``aioboto3.Session`` per process for stores not given a session of their own.

    botocore parses its service models and endpoint data once per session, in C calls
    that hold the GIL for up to ~0.1 s: sharing the session makes that a once-per-process
    cost instead of a per-store one. Credentials are still resolved per client.
    """
    with _DEFAULT_SESSION_LOCK:
        if not _DEFAULT_SESSION:
            _DEFAULT_SESSION.append(aioboto3.Session())
        return _DEFAULT_SESSION[0]


def client_config(request_concurrency: int, retry_mode: str, max_attempts: int) -> Any:
    """The botocore ``Config`` every AWS client of the project uses.

    Raises:
        ValueError: an option is out of range.
    """
    from botocore.config import Config

    if request_concurrency < 1:
        raise ValueError(f"request_concurrency must be at least 1, got {request_concurrency!r}")
    if retry_mode not in {"standard", "adaptive", "legacy"}:
        raise ValueError(
            f"retry_mode must be 'standard', 'adaptive' or 'legacy', got {retry_mode!r}"
        )
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")

    return Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        max_pool_connections=request_concurrency,
        connect_timeout=10,
        read_timeout=30,
    )


class AwsClientHolder:
    """Opens one aioboto3 client on ``open()`` and lends it to every call.

    A call made while the holder is not open gets a client of its own for the length
    of that call, so every store method works with or without ``open()``.
    """

    def __init__(
        self,
        service: str,
        session: Any,
        config: Any,
        *,
        endpoint_url: str | None,
        region_name: str | None,
    ) -> None:
        self._service = service
        self._session = session
        self._config = config
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        _load_data_ahead(session, service)

    def _new_client(self) -> Any:
        kwargs: dict[str, Any] = {"config": self._config}
        if self._endpoint_url is not None:
            kwargs["endpoint_url"] = self._endpoint_url
        if self._region_name is not None:
            kwargs["region_name"] = self._region_name
        return self._session.client(self._service, **kwargs)

    def _build_in_thread(self) -> Any:
        """Build an (unentered) aiobotocore client on a private loop of this thread.

        botocore builds a client synchronously: it loads and parses the service
        model, resolves the endpoint and registers its handlers, 0.1-0.6 s the first
        time in a process and 10-20 ms after it. None of that needs the caller's loop.
        """

        async def build() -> Any:
            context = self._new_client()
            coro = getattr(context, "_coro", None)
            if coro is None:  # an aioboto3 without aiobotocore's creator context
                return context
            return await coro

        # botocore sessions are not safe to build clients from in several threads at
        # once, and the default session is shared: one build at a time per process.
        with _BUILD_LOCK, _first_build(self._service):
            client = asyncio.run(build())
            if not hasattr(client, "__aenter__") or hasattr(client, "_coro"):
                return client
            _prepare_connections(client)
        return client

    async def _enter(self, stack: contextlib.AsyncExitStack) -> Any:
        """Build a client off the event loop (one session.client() call), then enter it
        (its HTTP session) here."""
        built = await anyio.to_thread.run_sync(self._build_in_thread)
        return await stack.enter_async_context(built)

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` entered a client that is still in use."""
        return self._client is not None

    async def open(self) -> None:
        """Enter the client once; calling it again while open does nothing."""
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await self._enter(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def aclose(self) -> None:
        """Close the client entered by ``open()``; safe to call when not open."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        """Lend the open client, or one that lives for this call only."""
        if self._client is not None:
            yield self._client
            return
        async with contextlib.AsyncExitStack() as stack:
            yield await self._enter(stack)


def _load_data_ahead(session: Any, service: str) -> None:
    """Parse botocore's data files for ``service`` now, when no event loop waits.

    botocore parses them while it builds the first client of a session: the endpoint
    table (1.2 MB of JSON, ~25 ms) and the service model (S3's: ~25 ms), each in one
    C call that holds the GIL, so even in a worker thread the event loop waits for
    them. A store is usually made at startup, before any loop runs; parsing there
    (into the session's own cache, which botocore reads them from) keeps the first
    call of its first client short. In a running loop nothing is done here: the
    build in the worker thread parses them as before.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return
    try:
        loader = session._session.get_component("data_loader")
        loader.load_data_with_path("endpoints")
        loader.load_data("sdk-default-configuration")
        loader.load_service_model(service, "service-2", api_version=None)
        loader.load_service_model(service, "endpoint-rule-set-1", api_version=None)
    except Exception:  # only an optimisation: the client build reports its own errors
        return


@contextlib.contextmanager
def _first_build(service: str) -> Iterator[None]:
    """Keep the garbage collector from pausing every thread over botocore's data.

    The first client of a service loads and parses its service model, endpoint rules
    and partitions: some 30 000 long-lived objects. A full collection walks all of
    them, 50-90 ms in which the worker thread holds the GIL and the event loop stands
    still; it runs during that first build, and again some builds later. So the first
    build runs with the collector off, and the objects alive after it are moved to
    the permanent generation (``gc.freeze()``), which later collections skip: a new
    client's first call then never stops the loop for a full collection. Frozen
    objects are still freed when their last reference goes; only reference cycles
    among them wait for ``gc.unfreeze()``.
    """
    if service in _BUILT_SERVICES:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        _BUILT_SERVICES.add(service)
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def _prepare_connections(client: Any) -> None:
    """Build the client's TLS context now, in this worker thread, not on the loop.

    aiobotocore makes its aiohttp connector on the first request, on the event loop,
    and loading the CA bundle into a new TLS context takes 50-100 ms there. The
    context is built here instead and the connector made with it. A transport that
    does not look as expected is left alone (it then builds its context itself).
    """
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    needed = ("_create_connector", "_verify", "_get_ssl_context", "_connector_args")
    if http is None or not all(hasattr(http, name) for name in needed):
        return
    import aiohttp
    from botocore.httpsession import get_cert_path

    context = None
    if bool(http._verify):
        context = http._get_ssl_context()
        cert_file = getattr(http, "_cert_file", None)
        if cert_file:
            context.load_cert_chain(cert_file, getattr(http, "_key_file", None))
        ca_certs = get_cert_path(http._verify)
        if ca_certs:
            context.load_verify_locations(ca_certs, None, None)
    original = http._create_connector
    limit = getattr(http, "_max_pool_connections", DEFAULT_REQUEST_CONCURRENCY)

    def create_connector(proxy_url: Any) -> Any:
        if proxy_url:
            return original(proxy_url)
        return aiohttp.TCPConnector(limit=limit, ssl=context or False, **http._connector_args)

    http._create_connector = create_connector


@contextlib.asynccontextmanager
async def translated_client(
    holder: AwsClientHolder, translate: Callable[[], contextlib.AbstractContextManager[None]]
) -> AsyncIterator[Any]:
    """``holder.client()``, with a failure to build or connect it translated as well."""
    async with contextlib.AsyncExitStack() as stack:
        with translate():
            client = await stack.enter_async_context(holder.client())
        yield client


def chunked(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """Split ``items`` into consecutive batches of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "")
        return str(code)
    return ""


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 when unknown)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status)
    return 0


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
