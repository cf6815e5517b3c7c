"""An AWS Lambda handler for a ttflow-async client.

::

    from ttflow_async import setup
    from ttflow_async.aws_lambda import lambda_handler

    client = setup("s3:my-bucket/flows")
    # ... workflows ...
    handler = lambda_handler(client)

Lambda's Python runtime calls a handler synchronously, so the handler keeps one event
loop for the life of the execution environment and keeps the client entered
(``async with client``) across warm invocations: store connections are opened on the
first invocation and reused by the next ones.

It serves HTTP ``POST`` requests (API Gateway, function URLs, ALB), scheduled events,
SQS batches and direct invocations, and refuses every other event kind loudly: logged
at ERROR and raised as :class:`UnsupportedEventError`, so that asynchronous and stream
sources retry and dead-letter it. docs/lambda.md has the table of every event kind,
the bodies, the responses and their size caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from . import (
    Client,
    InvalidStateError,
    StateLockedError,
    TtflowError,
    UnknownCallbackError,
    UnknownTriggerError,
)
from ._entry import locked_sentence, short
from ._lambda_events import (
    ALB_RESPONSE_LIMIT,
    CLAIMED,
    LAMBDA_RESPONSE_LIMIT,
    REASONS,
    capped,
    dumps,
    event_kind,
)
from ._lambda_requests import BadRequest, http_body, http_method_and_path, parse_request, sqs_event

__all__ = [
    "ALB_RESPONSE_LIMIT",
    "LAMBDA_RESPONSE_LIMIT",
    "LambdaHandler",
    "UnsupportedEventError",
    "event_kind",
    "lambda_handler",
]

logger = logging.getLogger("ttflow_async.aws_lambda")


class UnsupportedEventError(TtflowError):
    """Raised by the handler for an event it does not take (authorizers, S3, SNS, ...)."""


def lambda_handler(
    client: Client, *, lock_timeout: float | None = None, path: str | None = None
) -> LambdaHandler:
    """Build a Lambda handler ``handler(event, context)`` for ``client``.

    Args:
        client: the client whose workflows the function runs.
        lock_timeout: how long a ``run()`` waits for another runner's lock before the
            request is answered 202; ``None`` answers at once.
        path: the only HTTP path that is served (others get 404); ``None`` serves any.
    """
    return LambdaHandler(client, lock_timeout=lock_timeout, path=path)


def _refuse(kind: str, event: Mapping[str, Any] | Any) -> UnsupportedEventError:
    keys = sorted(str(k) for k in event)[:8] if isinstance(event, Mapping) else []
    if kind == "api-gateway-authorizer":
        message = (
            "An API Gateway Lambda authorizer event reached the ttflow-async handler; "
            "it runs no pass and returns no policy, so configure another function as "
            "the authorizer."
        )
    elif kind == "eventbridge":
        message = (
            f"An EventBridge event from {short(str(event.get('source')))} has no detail "
            "with trigger_name or event, so it was refused without a pass; narrow the "
            "rule's pattern or put the trigger in the target's input."
        )
    else:
        message = (
            f"A {kind} event (keys {keys}) is not one the ttflow-async handler takes; "
            "send HTTP requests, schedules, SQS messages or direct invocations."
        )
    logger.error("refused event of kind %s: %s", kind, message)
    return UnsupportedEventError(message)


class LambdaHandler:
    """A synchronous Lambda handler that drives a client on a long-lived event loop.

    Call it as ``handler(event, context)``. ``close()`` leaves the client and closes
    the loop (Lambda itself never needs it; tests and local scripts may).
    """

    def __init__(
        self, client: Client, *, lock_timeout: float | None = None, path: str | None = None
    ) -> None:
        self.client = client
        self.lock_timeout = lock_timeout
        self.path = None if path is None else "/" + path.strip("/")
        self._runner: asyncio.Runner | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Handle one invocation (see the module docstring for the accepted events)."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.handle(event))

    def close(self) -> None:
        """Leave the client (closing its store connections) and close the event loop."""
        if self._runner is None:
            return
        if self._stack is not None:
            self._runner.run(self._stack.aclose())
            self._stack = None
        self._runner.close()
        self._runner = None

    async def _entered_client(self) -> Client:
        if self._stack is None:
            stack = contextlib.AsyncExitStack()
            await stack.enter_async_context(self.client)
            self._stack = stack
        return self.client

    async def handle(self, event: Any) -> dict[str, Any]:
        """Handle one event on the running loop; the coroutine behind ``__call__``.

        Raises:
            UnsupportedEventError: the event is of a kind the handler does not take.
        """
        kind = event_kind(event)
        if kind not in CLAIMED:
            raise _refuse(kind, event)
        if kind == "sqs":
            return await self._handle_sqs(event["Records"])
        if kind in ("http", "alb"):
            return await self._handle_http(event, alb=kind == "alb")
        if kind == "eventbridge":
            detail = event.get("detail")
            if not isinstance(detail, Mapping) or not set(detail) & {"trigger_name", "event"}:
                raise _refuse(kind, event)
            status, body = await self._answer(detail, source=kind)
        elif kind == "schedule":
            status, body = await self._answer(None, source=kind)
        else:
            status, body = await self._answer(event if event != {} else None, source=kind)
        return {"statusCode": status, **capped(body, LAMBDA_RESPONSE_LIMIT)}

    async def _handle_http(self, event: Mapping[str, Any], *, alb: bool) -> dict[str, Any]:
        method, path = http_method_and_path(event)
        extra: dict[str, str] = {}
        if method != "POST":
            status, body = (
                405,
                {
                    "status": "invalid",
                    "error": f"Method {short(method, 10)} is not allowed; send a POST.",
                },
            )
            extra["Allow"] = "POST"
        elif self.path is not None and "/" + path.strip("/") != self.path:
            status, body = (
                404,
                {
                    "status": "invalid",
                    "error": f"Nothing is served at {short(path)}; POST to {self.path}.",
                },
            )
        else:
            try:
                payload = http_body(event)
            except BadRequest as exc:
                status, body = 400, {"status": "invalid", "error": str(exc)}
            else:
                status, body = await self._answer(payload, source="http")
        limit = ALB_RESPONSE_LIMIT if alb else LAMBDA_RESPONSE_LIMIT
        headers = {"Content-Type": "application/json", **extra}
        response: dict[str, Any] = {
            "statusCode": status,
            "body": dumps(capped(body, limit)),
            "isBase64Encoded": False,
        }
        if alb:
            response["statusDescription"] = f"{status} {REASONS.get(status, '')}".strip()
        if alb and "multiValueHeaders" in event:
            response["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        else:
            response["headers"] = headers
        return response

    async def _answer(self, payload: Any, *, source: str) -> tuple[int, dict[str, Any]]:
        try:
            kind, name, args, key = parse_request(payload)
        except BadRequest as exc:
            return self._invalid(source, str(exc))
        what = {"event": "the event", "trigger": "the trigger"}.get(kind, "the callback's answer")
        try:
            client = await self._entered_client()
            if kind == "event" and name is not None:
                await client.send_event(name, args, key=key)
                results = await client.run(lock_timeout=self.lock_timeout)
            elif kind in ("callback_complete", "callback_fail") and name is not None:
                if kind == "callback_complete":
                    await client.complete_callback(name, args)
                else:
                    await client.fail_callback(name, args)
                results = await client.run(lock_timeout=self.lock_timeout)
            else:
                results = await client.run(name, args, lock_timeout=self.lock_timeout, key=key)
        except StateLockedError as exc:
            queued = exc.queued or kind in ("event", "callback_complete", "callback_fail")
            return 202, {
                "status": "queued" if queued else "locked",
                "queued": queued,
                "message": locked_sentence(
                    queued=queued,
                    what=what,
                    otherwise="the runner holding it runs what is due",
                ),
            }
        except UnknownCallbackError:
            return self._invalid(
                source, f"No open callback has the id {short(str(name))}; it may be finished."
            )
        except UnknownTriggerError:
            return self._invalid(
                source, f"No workflow listens to the trigger {short(str(name))}; check the name."
            )
        except InvalidStateError as exc:
            return self._invalid(source, str(exc)[:1000])
        except TtflowError as exc:
            logger.exception("the run failed in the store")
            return 500, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return 200, {"status": "done", "results": [r.model_dump(mode="json") for r in results]}

    @staticmethod
    def _invalid(source: str, reason: str) -> tuple[int, dict[str, Any]]:
        """The 400 answer to a request that cannot be acted on, logged."""
        # An HTTP caller reads the 400; other sources discard it, so say it louder.
        level = logging.WARNING if source == "http" else logging.ERROR
        logger.log(level, "refused a %s request: %s", source, reason[:300])
        return 400, {"status": "invalid", "error": reason}

    async def _handle_sqs(self, records: list[Mapping[str, Any]]) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        fifo = any(
            str(r.get("eventSourceARN", "")).endswith(".fifo")
            or "MessageGroupId" in (r.get("attributes") or {})
            for r in records
        )
        client: Client | None = None
        try:
            client = await self._entered_client()
        except TtflowError:
            logger.exception("could not open the store for an SQS batch")
        sent = 0
        for record in records:
            message_id = str(record.get("messageId", ""))
            if client is None or (fifo and failures):
                failures.append({"itemIdentifier": message_id})
                continue
            try:
                name, args = sqs_event(record)
                await client.send_event(name, args, key=f"sqs:{message_id}")
                sent += 1
            except (BadRequest, InvalidStateError) as exc:
                logger.error("SQS message %s is not a usable event: %s", message_id, exc)
                failures.append({"itemIdentifier": message_id})
            except TtflowError:
                logger.exception("SQS message %s could not be stored", message_id)
                failures.append({"itemIdentifier": message_id})
        if client is not None and sent:
            # The events are in the inbox now: a locked or failed run loses none of them,
            # so their records are not failed (a redelivery would only repeat the send).
            try:
                results = await client.run(lock_timeout=self.lock_timeout)
                logger.info("ran %d workflow runs for %d SQS messages", len(results), sent)
            except StateLockedError:
                logger.info("the store is locked: its runner or the next run delivers the events")
            except TtflowError:
                logger.exception("the run after an SQS batch failed; the events stay queued")
        return {"batchItemFailures": failures}
