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
import base64
import binascii
import contextlib
import json
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
from ._entry import external_name_problem, locked_sentence, short
from ._lambda_events import (
    ALB_RESPONSE_LIMIT,
    BODY_KEYS,
    CALLBACK_KEYS,
    CLAIMED,
    LAMBDA_RESPONSE_LIMIT,
    REASONS,
    capped,
    dumps,
    event_kind,
)

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


class BadRequest(Exception):
    """A request the handler cannot act on; its message is the reason given back."""


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


def _json_loads(text: str) -> Any:
    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in strict JSON")

    try:
        return json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


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


def _http_method_and_path(event: Mapping[str, Any]) -> tuple[str, str]:
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if isinstance(http, Mapping):
        return str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path"))
    return str(event.get("httpMethod", "")).upper(), str(event.get("path", ""))


def _http_body(event: Mapping[str, Any]) -> Any:
    """The decoded JSON body of an HTTP event; ``None`` when there is none."""
    body = event.get("body")
    if body is None or body == "":
        return None
    if not isinstance(body, str):
        raise BadRequest("The request body must be a string.")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The request body is marked base64 but is not valid base64.") from None
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The request body is not UTF-8 text.") from None
    if not body.strip():
        return None
    try:
        return _json_loads(body)
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None


def parse_request(payload: Any) -> tuple[str, str | None, Any, str | None]:
    """Validate a request payload; return ``(kind, name, args, key)``.

    ``kind`` is ``"resume"`` (no name), ``"trigger"`` or ``"event"``.

    Raises:
        BadRequest: the payload is not one of the accepted shapes (the reason says why).
    """
    if payload is None:
        return "resume", None, None, None
    if not isinstance(payload, Mapping):
        raise BadRequest(
            'The body must be a JSON object like {"trigger_name": "hello", "args": {}}, '
            f"not a JSON {type(payload).__name__}."
        )
    if "callback_id" in payload:
        return _parse_callback(payload)
    unknown = sorted(short(str(k), 30) for k in set(payload) - BODY_KEYS)
    if unknown:
        raise BadRequest(
            f"Unknown keys {', '.join(unknown[:5])}; "
            "the accepted keys are trigger_name, event, args and key."
        )
    has_trigger, has_event = "trigger_name" in payload, "event" in payload
    if has_trigger and has_event:
        raise BadRequest("Give either trigger_name or event, not both.")
    if not has_trigger and not has_event:
        if "args" in payload or "key" in payload:
            raise BadRequest(
                "Args or a key were given without a trigger_name or an event to receive them."
            )
        return "resume", None, None, None
    key = "trigger_name" if has_trigger else "event"
    name = payload[key]
    problem = external_name_problem(name, key)
    if problem is not None:
        raise BadRequest(problem)
    key_value = payload.get("key")
    if key_value is not None:
        problem = external_name_problem(key_value, "key")
        if problem is not None and "reserved" not in problem:
            raise BadRequest(problem)
    return ("trigger" if has_trigger else "event"), name, payload.get("args"), key_value


def _parse_callback(payload: Mapping[str, Any]) -> tuple[str, str | None, Any, str | None]:
    """``{"callback_id": ..., "result": ...}`` or ``{"callback_id": ..., "error": "..."}``."""
    unknown = sorted(short(str(k), 30) for k in set(payload) - CALLBACK_KEYS)
    if unknown:
        raise BadRequest(
            f"Unknown keys {', '.join(unknown[:5])} beside callback_id; "
            "a callback takes callback_id with result or error."
        )
    callback_id = payload["callback_id"]
    if not isinstance(callback_id, str) or not callback_id or len(callback_id) > 256:
        raise BadRequest("callback_id must be a non-empty string of at most 256 characters.")
    if "result" in payload and "error" in payload:
        raise BadRequest("Give either result or error with a callback_id, not both.")
    if "error" in payload:
        if not isinstance(payload["error"], str):
            raise BadRequest("A callback's error must be a string.")
        return "callback_fail", callback_id, payload["error"], None
    return "callback_complete", callback_id, payload.get("result"), None


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
        method, path = _http_method_and_path(event)
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
                payload = _http_body(event)
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
            self._log_invalid(source, str(exc))
            return 400, {"status": "invalid", "error": str(exc)}
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
            error = f"No open callback has the id {short(str(name))}; it may be finished."
            self._log_invalid(source, error)
            return 400, {"status": "invalid", "error": error}
        except UnknownTriggerError:
            error = f"No workflow listens to the trigger {short(str(name))}; check the name."
            self._log_invalid(source, error)
            return 400, {"status": "invalid", "error": error}
        except InvalidStateError as exc:
            self._log_invalid(source, str(exc))
            return 400, {"status": "invalid", "error": str(exc)[:1000]}
        except TtflowError as exc:
            logger.exception("the run failed in the store")
            return 500, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return 200, {"status": "done", "results": [r.model_dump(mode="json") for r in results]}

    @staticmethod
    def _log_invalid(source: str, reason: str) -> None:
        # An HTTP caller reads the 400; other sources discard it, so say it louder.
        level = logging.WARNING if source == "http" else logging.ERROR
        logger.log(level, "refused a %s request: %s", source, reason[:300])

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
                name, args = self._sqs_event(record)
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

    @staticmethod
    def _sqs_event(record: Mapping[str, Any]) -> tuple[str, Any]:
        body = record.get("body")
        if not isinstance(body, str):
            raise BadRequest("the message body is missing")
        try:
            payload = _json_loads(body)
        except ValueError as exc:
            raise BadRequest(f"the message body is not valid JSON: {exc}") from None
        kind, name, args, _key = parse_request(payload)
        if kind != "event" or name is None:
            raise BadRequest('an SQS message must be an event: {"event": "name", "args": ...}')
        return name, args
