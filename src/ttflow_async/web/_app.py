"""The dashboard application: JSON endpoints over the public client API, and the page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.staticfiles import StaticFiles

from .. import (
    StateLockedError,
)
from .._entry import external_name_problem
from ._answers import install_error_handlers, locked_response, pass_out
from ._flow import build_flow, unknown_parents
from ._models import (
    CallbackErrorIn,
    CallbackResultIn,
    CancelIn,
    CancelledOut,
    ErrorOut,
    EventIn,
    EventLogEntryOut,
    FlowOut,
    HistoryEntryOut,
    LockedOut,
    PassOut,
    RunLogsOut,
    StatusOut,
    SuspendedRunOut,
    TraceOut,
    TriggerIn,
    WorkflowOut,
)
from ._security import (
    LOOPBACK_HOST_NAMES,
    MAX_BODY_BYTES,
    SecurityMiddleware,
    WriteGuardMiddleware,
    token_matches,
)

if TYPE_CHECKING:
    from .. import Client

logger = logging.getLogger("ttflow_async.web")

STATIC_DIR = Path(__file__).parent / "static"

WRITES_DISABLED_MESSAGE = (
    "Write actions are disabled: start the dashboard with a token "
    "(--token or the TTFLOW_ASYNC_DASHBOARD_TOKEN environment variable)."
)
MISSING_TOKEN_MESSAGE = "Missing or wrong token: send 'Authorization: Bearer <token>'."

_bearer = HTTPBearer(
    auto_error=False,
    description="The token given to the dashboard (--token); needed by write actions.",
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {"model": ErrorOut, "description": "Bad input; nothing changed"},
    status.HTTP_401_UNAUTHORIZED: {"model": ErrorOut, "description": "Missing or wrong token"},
    status.HTTP_403_FORBIDDEN: {"model": ErrorOut, "description": "No token configured"},
}
_LIMIT = Annotated[
    int | None, Query(ge=1, le=1000, description="only the most recent entries (oldest first)")
]


def _last(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[-limit:]


def create_app(
    client: Client,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOST_NAMES,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the dashboard for ``client``.

    The read-only endpoints are always available. The write endpoints (fire a
    trigger, send an event, resume) need ``Authorization: Bearer <token>`` and are
    disabled (403) when ``token`` is ``None`` or empty. The token and the body-size
    cap are checked before any of a write request's body is read.

    Args:
        client: The workflow client; the app enters ``async with client`` for its
            lifetime, so the store's connections are opened once.
        token: The secret that enables write actions; ``None`` or ``""`` disables them.
        allowed_hosts: Host names the app answers to (``Host`` header, without
            port). By default only ``localhost``, ``127.0.0.1`` and ``::1``, which
            stops DNS rebinding; list your public names when the app is served
            beyond this machine, or pass ``None`` to answer any (behind a proxy that
            checks the host itself).
        max_body: the largest write-request body, in bytes; larger ones get 413.

    Returns:
        A FastAPI application; its OpenAPI schema is served at ``/api/openapi.json``.
    """
    if not token:
        token = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client:
            yield

    app = FastAPI(
        title="ttflow-async dashboard",
        summary="See and steer durable workflows.",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        WriteGuardMiddleware,
        token=token,
        disabled=WRITES_DISABLED_MESSAGE,
        unauthorized=MISSING_TOKEN_MESSAGE,
        max_body=max_body,
    )
    app.add_middleware(SecurityMiddleware, allowed_hosts=allowed_hosts)
    install_error_handlers(app)

    def denial(authorization: str | None) -> HTTPException | None:
        """Why a write request must be refused, or None when its token is right."""
        if token is None:
            return HTTPException(status.HTTP_403_FORBIDDEN, WRITES_DISABLED_MESSAGE)
        scheme, presented = get_authorization_scheme_param(authorization)
        if scheme.lower() != "bearer" or not token_matches(presented, token):
            return HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                MISSING_TOKEN_MESSAGE,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    async def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # ``credentials`` documents the scheme in OpenAPI; ``denial`` reads the header.
        refusal = denial(request.headers.get("authorization"))
        if refusal is not None:
            raise refusal

    async def refuse_before_validating(request: Request, exc: Exception) -> Response:
        # FastAPI decodes a JSON body before it runs dependencies: check the token
        # first, so that an unauthorised caller learns nothing from the body's errors.
        if request.method == "POST":
            refusal = denial(request.headers.get("authorization"))
            if refusal is not None:
                return await http_exception_handler(request, refusal)
        if not isinstance(exc, RequestValidationError):
            raise exc
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, refuse_before_validating)

    def workflows() -> list[WorkflowOut]:
        return [WorkflowOut.model_validate(w, from_attributes=True) for w in client.workflows]

    @app.get("/api/workflows", tags=["read"])
    async def list_workflows() -> list[WorkflowOut]:
        """The registered workflows with their description and trigger."""
        return workflows()

    @app.get("/api/runs/suspended", tags=["read"])
    async def list_suspended_runs() -> list[SuspendedRunOut]:
        """Suspended runs: what each waits for, and since when."""
        return [
            SuspendedRunOut.model_validate(r, from_attributes=True)
            for r in await client.paused_runs()
        ]

    @app.get("/api/runs/history", tags=["read"])
    async def list_run_history(limit: _LIMIT = None) -> list[HistoryEntryOut]:
        """Finished runs, oldest first."""
        history = await client.run_history()
        return [
            HistoryEntryOut.model_validate(r, from_attributes=True) for r in _last(history, limit)
        ]

    @app.get("/api/runs/{run_id}/logs", tags=["read"])
    async def get_run_logs(run_id: str) -> RunLogsOut:
        """A run's log lines; empty for a run id the store does not know."""
        return RunLogsOut(run_id=run_id, lines=list(await client.run_logs(run_id)))

    @app.get("/api/events", tags=["read"])
    async def list_events(limit: _LIMIT = None) -> list[EventLogEntryOut]:
        """Delivered events, oldest first."""
        events = await client.event_log()
        return [
            EventLogEntryOut.model_validate(e, from_attributes=True) for e in _last(events, limit)
        ]

    @app.get("/api/traces", tags=["read"])
    async def list_traces(limit: _LIMIT = None) -> list[TraceOut]:
        """Execution traces (one per pass), oldest first."""
        traces = await client.traces()
        return [TraceOut.model_validate(t, from_attributes=True) for t in _last(traces, limit)]

    @app.get("/api/flow", tags=["read"])
    async def get_flow() -> FlowOut:
        """The event → workflow flow, parent → child invocations, state producers/consumers."""
        traces = [TraceOut.model_validate(t, from_attributes=True) for t in await client.traces()]
        missing = unknown_parents(traces)
        run_workflows: dict[str, str] = {}
        if missing:
            # Parents whose traces left the capped log: still suspended, or in the history.
            for entry in await client.run_history():
                if entry.run_id in missing:
                    run_workflows[entry.run_id] = entry.workflow_name
            for paused in await client.paused_runs():
                if paused.run_id in missing:
                    run_workflows[paused.run_id] = paused.workflow_name
        return build_flow(workflows(), traces, run_workflows)

    @app.get("/api/status", tags=["read"])
    async def get_status() -> StatusOut:
        """Whether the store is locked, the next wakeup, and whether writes are enabled."""
        return StatusOut(
            locked=await client.is_locked(),
            next_wakeup=await client.next_wakeup(),
            writes_enabled=token is not None,
        )

    write_responses: dict[int | str, dict[str, Any]] = {
        **_ERRORS,
        status.HTTP_202_ACCEPTED: {"model": PassOut, "description": "Queued: the lock was held"},
    }

    @app.post(
        "/api/trigger",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=PassOut,
        responses={
            **write_responses,
            status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "Unknown trigger"},
        },
    )
    async def fire_trigger(body: TriggerIn) -> PassOut | JSONResponse:
        """Fire a trigger with JSON args and run a pass (``client.run(name, args)``)."""
        problem = external_name_problem(body.name, "The trigger name")
        if problem is not None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, problem)
        try:
            results = await client.run(body.name, body.args)
        except StateLockedError as exc:
            return locked_response(queued=exc.queued, what="the trigger")
        logger.info("dashboard fired trigger %r", body.name)
        return pass_out(results)

    @app.post(
        "/api/events",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=PassOut,
        responses=write_responses,
    )
    async def send_event(body: EventIn) -> PassOut | JSONResponse:
        """Store an event durably, then (unless ``run`` is false) run a pass."""
        problem = external_name_problem(body.name, "The event name")
        if problem is not None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, problem)
        await client.send_event(body.name, body.args)
        logger.info("dashboard sent event %r", body.name)
        if not body.run:
            return JSONResponse(
                PassOut(queued=True, message="Delivered by the next pass.", results=[]).model_dump(
                    mode="json"
                ),
                status_code=status.HTTP_202_ACCEPTED,
            )
        try:
            results = await client.run()
        except StateLockedError:
            return locked_response(queued=True, what="the event")
        return pass_out(results)

    @app.post(
        "/api/resume",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=PassOut,
        responses={
            **_ERRORS,
            status.HTTP_409_CONFLICT: {"model": LockedOut, "description": "The lock is held"},
        },
    )
    async def resume() -> PassOut | JSONResponse:
        """Run a plain pass: resume what is ready (``client.run()``)."""
        try:
            results = await client.run()
        except StateLockedError:
            return locked_response(queued=False, what="the resume")
        return pass_out(results)

    @app.post(
        "/api/runs/{run_id}/cancel",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=CancelledOut,
        responses={
            **_ERRORS,
            status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "Not suspended"},
            status.HTTP_409_CONFLICT: {"model": LockedOut, "description": "The lock is held"},
        },
    )
    async def cancel_run(run_id: str, body: CancelIn | None = None) -> CancelledOut | JSONResponse:
        """End a suspended or blocked run with status cancelled (``client.cancel``).

        The optional body's ``reason`` becomes the run's error message in the history.
        """
        reason = body.reason if body is not None and body.reason else None
        try:
            await client.cancel(run_id, reason or "cancelled from the dashboard")
        except StateLockedError:
            return locked_response(queued=False, what="the cancellation")
        logger.info("dashboard cancelled run %r", run_id)
        return CancelledOut(run_id=run_id)

    callback_responses: dict[int | str, dict[str, Any]] = {
        **write_responses,
        status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "No such open callback"},
    }

    @app.post(
        "/api/callbacks/{callback_id}/complete",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=PassOut,
        responses=callback_responses,
    )
    async def complete_callback(callback_id: str, body: CallbackResultIn) -> PassOut | JSONResponse:
        """Complete a callback with a JSON result, then run a pass."""
        await client.complete_callback(callback_id, body.result)
        return await _run_after_answer()

    @app.post(
        "/api/callbacks/{callback_id}/fail",
        tags=["write"],
        dependencies=[Depends(require_token)],
        response_model=PassOut,
        responses=callback_responses,
    )
    async def fail_callback(callback_id: str, body: CallbackErrorIn) -> PassOut | JSONResponse:
        """Fail a callback (its run's ``result()`` raises CallbackFailed), then run a pass."""
        await client.fail_callback(callback_id, body.error)
        return await _run_after_answer()

    async def _run_after_answer() -> PassOut | JSONResponse:
        try:
            results = await client.run()
        except StateLockedError:
            return locked_response(queued=True, what="the callback's answer")
        return pass_out(results)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
