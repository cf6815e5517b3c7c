"""How the dashboard answers: a pass, a held lock, and the library's errors as HTTP codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from .. import (
    CorruptStateError,
    InvalidStateError,
    StoreError,
    TtflowError,
    UnknownCallbackError,
    UnknownRunError,
    UnknownTriggerError,
)
from .._entry import locked_sentence
from ._models import LockedOut, PassOut, RunResultOut

__all__ = ["install_error_handlers", "locked_response", "pass_out"]


def pass_out(results: Iterable[Any]) -> PassOut:
    """The answer of a pass that ran."""
    return PassOut(
        queued=False,
        results=[RunResultOut.model_validate(r, from_attributes=True) for r in results],
    )


def locked_response(*, queued: bool, what: str) -> JSONResponse:
    """202 with ``queued`` when the item waits in the inbox, else 409."""
    message = locked_sentence(
        queued=queued, what=what, otherwise="the runner holding it runs what is due"
    )
    if queued:
        body: PassOut | LockedOut = PassOut(queued=True, message=message, results=[])
        code = status.HTTP_202_ACCEPTED
    else:
        body = LockedOut(detail=message, queued=False)
        code = status.HTTP_409_CONFLICT
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    """Map the library's errors to HTTP codes (never a 500 for bad input)."""

    def error(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handler

    app.add_exception_handler(UnknownTriggerError, error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(UnknownRunError, error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(UnknownCallbackError, error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(InvalidStateError, error(status.HTTP_400_BAD_REQUEST))
    app.add_exception_handler(CorruptStateError, error(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(StoreError, error(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(TtflowError, error(status.HTTP_500_INTERNAL_SERVER_ERROR))
