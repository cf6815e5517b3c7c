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

What it accepts:

* **HTTP**: API Gateway REST (v1) and HTTP (v2) APIs, Lambda function URLs and
  Application Load Balancer targets, with a JSON body
  ``{"trigger_name": ..., "args": ...}`` (fire a trigger and run),
  ``{"event": ..., "args": ...}`` (send an event and run) or no body (resume what is
  ready); base64 bodies too. Responses: 200 with the results, 202 when another runner
  holds the lock (the trigger or event is queued and fires in a later pass), 400 with
  the reason for a bad body or an unknown trigger, 500 when the store fails.
* **Scheduled events** (EventBridge / CloudWatch Events): a plain resume ``run()``. An
  EventBridge event whose ``detail`` has ``trigger_name`` or ``event`` is handled like
  a direct invocation with that detail.
* **Direct invocations** with the same JSON as the HTTP body (or ``{}`` to resume).
  The response is the HTTP body as a dict, with ``statusCode`` added.
* **SQS**: every record's body is an event ``{"event": ..., "args": ...}``; each is
  sent with ``send_event``, then one ``run()`` delivers them. Records that cannot be
  stored are reported in ``batchItemFailures`` (enable ``ReportBatchItemFailures``
  on the event source mapping) so that SQS redelivers only those.

The handler never raises for bad input; store failures of an HTTP or direct
request become a 500 response, logged on the ``ttflow_async.aws_lambda`` logger.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import Client, InvalidStateError, StateLockedError, TtflowError, UnknownTriggerError

__all__ = ["LambdaHandler", "lambda_handler"]

logger = logging.getLogger("ttflow_async.aws_lambda")

_BODY_KEYS = frozenset({"trigger_name", "event", "args"})


class BadRequest(Exception):
    """A request the handler cannot act on; its message is the reason given back."""


def lambda_handler(client: Client, *, lock_timeout: float | None = None) -> LambdaHandler:
    """Build a Lambda handler ``handler(event, context)`` for ``client``.

    Args:
        client: the client whose workflows the function runs.
        lock_timeout: how long a ``run()`` waits for another runner's lock before the
            request is answered 202 (queued); ``None`` answers at once.
    """
    return LambdaHandler(client, lock_timeout=lock_timeout)


def _json_loads(text: str) -> Any:
    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in strict JSON")

    return json.loads(text, parse_constant=reject_constant)


def _is_http(event: Mapping[str, Any]) -> bool:
    return "requestContext" in event and (
        "httpMethod" in event or "routeKey" in event or event.get("version") == "2.0"
    )


def _is_sqs(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def _is_eventbridge(event: Mapping[str, Any]) -> bool:
    return "detail-type" in event and "source" in event


def _http_body(event: Mapping[str, Any]) -> Any:
    """The decoded JSON body of an HTTP event; ``None`` when there is none."""
    body = event.get("body")
    if body is None or body == "":
        return None
    if not isinstance(body, str):
        raise BadRequest("the request body must be a string")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the request body is marked base64 but is not valid base64") from None
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the request body is not UTF-8 text") from None
    if not body.strip():
        return None
    try:
        return _json_loads(body)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def parse_request(payload: Any) -> tuple[str, str | None, Any]:
    """Validate a request payload; return ``(kind, name, args)``.

    ``kind`` is ``"resume"`` (no name), ``"trigger"`` or ``"event"``.

    Raises:
        BadRequest: the payload is not one of the accepted shapes (the reason says why).
    """
    if payload is None:
        return "resume", None, None
    if not isinstance(payload, Mapping):
        raise BadRequest(
            'the body must be a JSON object like {"trigger_name": "hello", "args": {}} or '
            f'{{"event": "approved", "args": {{}}}}, not a JSON {type(payload).__name__}'
        )
    unknown = sorted(set(payload) - _BODY_KEYS)
    if unknown:
        raise BadRequest(
            f"unknown keys {unknown}; the accepted keys are trigger_name, event and args"
        )
    has_trigger, has_event = "trigger_name" in payload, "event" in payload
    if has_trigger and has_event:
        raise BadRequest("give either trigger_name or event, not both")
    if not has_trigger and not has_event:
        if "args" in payload:
            raise BadRequest("args were given without a trigger_name or an event to receive them")
        return "resume", None, None
    key = "trigger_name" if has_trigger else "event"
    name = payload[key]
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{key} must be a non-empty string")
    return ("trigger" if has_trigger else "event"), name, payload.get("args")


def _results_json(results: list[Any]) -> list[Any]:
    return [result.model_dump(mode="json") for result in results]


class LambdaHandler:
    """A synchronous Lambda handler that drives a client on a long-lived event loop.

    Call it as ``handler(event, context)``. ``close()`` leaves the client and closes
    the loop (Lambda itself never needs it; tests and local scripts may).
    """

    def __init__(self, client: Client, *, lock_timeout: float | None = None) -> None:
        self.client = client
        self.lock_timeout = lock_timeout
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
        """Handle one event on the running loop; the coroutine behind ``__call__``."""
        if isinstance(event, Mapping) and _is_sqs(event):
            return await self._handle_sqs(event["Records"])
        if isinstance(event, Mapping) and _is_http(event):
            status, body = await self._handle_request(lambda: _http_body(event))
            return {
                "statusCode": status,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(body, ensure_ascii=False),
                "isBase64Encoded": False,
            }
        if isinstance(event, Mapping) and _is_eventbridge(event):
            detail = event.get("detail")
            if isinstance(detail, Mapping) and ("trigger_name" in detail or "event" in detail):
                status, body = await self._handle_request(lambda: detail)
            else:
                status, body = await self._handle_request(lambda: None)
            return {"statusCode": status, **body}
        status, body = await self._handle_request(lambda: event if event != {} else None)
        return {"statusCode": status, **body}

    async def _handle_request(self, read_payload: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
        try:
            kind, name, args = parse_request(read_payload())
        except BadRequest as exc:
            return 400, {"status": "invalid", "error": str(exc)}
        try:
            client = await self._entered_client()
            if kind == "event" and name is not None:
                await client.send_event(name, args)
                results = await client.run(lock_timeout=self.lock_timeout)
            else:
                results = await client.run(name, args, lock_timeout=self.lock_timeout)
        except StateLockedError as exc:
            queued = exc.queued or kind == "event"
            return 202, {
                "status": "queued" if queued else "locked",
                "queued": queued,
                "message": (
                    f"{exc} It fires exactly once, in a later pass."
                    if queued
                    else f"{exc} Nothing was queued: the runner holding the lock runs what is due."
                ),
            }
        except (UnknownTriggerError, InvalidStateError) as exc:
            return 400, {"status": "invalid", "error": str(exc)}
        except TtflowError as exc:
            logger.exception("the run failed in the store")
            return 500, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return 200, {"status": "done", "results": _results_json(results)}

    async def _handle_sqs(self, records: list[Mapping[str, Any]]) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        client: Client | None = None
        try:
            client = await self._entered_client()
        except TtflowError:
            logger.exception("could not open the store for an SQS batch")
        for record in records:
            message_id = str(record.get("messageId", ""))
            if client is None:
                failures.append({"itemIdentifier": message_id})
                continue
            try:
                name, args = self._sqs_event(record)
                await client.send_event(name, args)
            except BadRequest as exc:
                logger.error("SQS message %s is not an event: %s", message_id, exc)
                failures.append({"itemIdentifier": message_id})
            except TtflowError:
                logger.exception("SQS message %s could not be stored", message_id)
                failures.append({"itemIdentifier": message_id})
        if client is not None and len(failures) < len(records):
            # The events are in the inbox now: a locked or failed run loses none of them,
            # so the batch is not failed (a redelivery would send them twice).
            try:
                results = await client.run(lock_timeout=self.lock_timeout)
                logger.info("ran %d workflow runs for %d SQS messages", len(results), len(records))
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
        kind, name, args = parse_request(payload)
        if kind != "event" or name is None:
            raise BadRequest('an SQS message must be an event: {"event": "name", "args": ...}')
        return name, args
