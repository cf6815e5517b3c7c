"""aioboto3 clients for the S3 and DynamoDB stores: session, retries, connections.

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
from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Generic, Literal, Protocol, Self, TypeVar, cast

import anyio

if TYPE_CHECKING:
    # aioboto3 ships no type information: to mypy its Session is Any.
    import aiohttp
    from aioboto3 import Session
    from botocore.config import Config


class AsyncClient(Protocol):
    """What the holder needs of an aiobotocore client: entering and leaving it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


_C = TypeVar("_C", bound=AsyncClient)

RetryMode = Literal["standard", "adaptive", "legacy"]
_RETRY_MODES: Mapping[str, RetryMode] = {
    "standard": "standard",
    "adaptive": "adaptive",
    "legacy": "legacy",
}

INSTALL_HINT = "pip install 'ttflow-async[aws]'"

#: Requests of one store call that may be in flight at once (and HTTP connections).
DEFAULT_REQUEST_CONCURRENCY = 32

#: botocore's "standard" retry mode retries throttling, 5xx answers and connection
#: errors with exponential backoff and jitter; 5 attempts ride out short outages.
DEFAULT_MAX_ATTEMPTS = 5


def load_aioboto3(store_kind: str) -> ModuleType:
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
    module: ModuleType = aioboto3
    return module


_DEFAULT_SESSION: list[Session] = []
_DEFAULT_SESSION_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
#: Services whose first client this process has built (see ``_first_build``).
_BUILT_SERVICES: set[str] = set()


def default_session(aioboto3: ModuleType) -> Session:
    """One ``aioboto3.Session`` per process for stores not given a session of their own.

    botocore parses its service models and endpoint data once per session, in C calls
    that hold the GIL for up to ~0.1 s: sharing the session makes that a once-per-process
    cost instead of a per-store one. Credentials are still resolved per client.
    """
    with _DEFAULT_SESSION_LOCK:
        if not _DEFAULT_SESSION:
            _DEFAULT_SESSION.append(aioboto3.Session())
        return _DEFAULT_SESSION[0]


def client_config(request_concurrency: int, retry_mode: str, max_attempts: int) -> Config:
    """The botocore ``Config`` every AWS client of the project uses.

    Raises:
        ValueError: an option is out of range.
    """
    from botocore.config import Config

    if request_concurrency < 1:
        raise ValueError(f"request_concurrency must be at least 1, got {request_concurrency!r}")
    mode = _RETRY_MODES.get(retry_mode)
    if mode is None:
        raise ValueError(
            f"retry_mode must be 'standard', 'adaptive' or 'legacy', got {retry_mode!r}"
        )
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")

    return Config(
        retries={"mode": mode, "total_max_attempts": max_attempts},
        max_pool_connections=request_concurrency,
        connect_timeout=10,
        read_timeout=30,
    )


class AwsClientHolder(Generic[_C]):
    """Opens one aioboto3 client on ``open()`` and lends it to every call.

    A call made while the holder is not open gets a client of its own for the length
    of that call, so every store method works with or without ``open()``.
    """

    def __init__(
        self,
        service: str,
        session: Session,
        config: Config,
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
        self._client: _C | None = None
        _load_data_ahead(session, service)

    def _new_client(self) -> object:
        kwargs: dict[str, object] = {"config": self._config}
        if self._endpoint_url is not None:
            kwargs["endpoint_url"] = self._endpoint_url
        if self._region_name is not None:
            kwargs["region_name"] = self._region_name
        context: object = self._session.client(self._service, **kwargs)
        return context

    def _build_in_thread(self) -> _C:
        """Build an (unentered) aiobotocore client on a private loop of this thread.

        botocore builds a client synchronously: it loads and parses the service
        model, resolves the endpoint and registers its handlers, 0.1-0.6 s the first
        time in a process and 10-20 ms after it. None of that needs the caller's loop.
        """

        async def build() -> object:
            context = self._new_client()
            coro = getattr(context, "_coro", None)
            if coro is None:  # an aioboto3 without aiobotocore's creator context
                return context
            built: object = await coro
            return built

        # botocore sessions are not safe to build clients from in several threads at
        # once, and the default session is shared: one build at a time per process.
        with _BUILD_LOCK, _first_build(self._service):
            # The session was asked for this holder's service: the client is one.
            client = cast(_C, asyncio.run(build()))
            if not hasattr(client, "__aenter__") or hasattr(client, "_coro"):
                return client
            _prepare_connections(client)
        return client

    async def _enter(self, stack: contextlib.AsyncExitStack) -> _C:
        """Build a client off the event loop (one session.client() call), then enter it
        (its HTTP session) here."""
        built = await anyio.to_thread.run_sync(self._build_in_thread)
        entered = await built.__aenter__()
        stack.push_async_exit(built)
        return entered

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
    async def client(self) -> AsyncIterator[_C]:
        """Lend the open client, or one that lives for this call only."""
        if self._client is not None:
            yield self._client
            return
        async with contextlib.AsyncExitStack() as stack:
            yield await self._enter(stack)


def _load_data_ahead(session: Session, service: str) -> None:
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


def _prepare_connections(client: object) -> None:
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

    def create_connector(proxy_url: str | None) -> aiohttp.BaseConnector:
        if proxy_url:
            connector: aiohttp.BaseConnector = original(proxy_url)
            return connector
        return aiohttp.TCPConnector(limit=limit, ssl=context or False, **http._connector_args)

    http._create_connector = create_connector
