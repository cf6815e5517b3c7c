"""What a request to the Lambda handler asks for: the HTTP body, the payload's shape
(trigger, event, callback answer or resume) and an SQS message's event."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ._entry import external_name_problem, short, strict_json_loads
from ._lambda_events import BODY_KEYS, CALLBACK_KEYS

__all__ = ["BadRequest", "http_body", "http_method_and_path", "parse_request", "sqs_event"]


class BadRequest(Exception):
    """A request the handler cannot act on; its message is the reason given back."""


def http_method_and_path(event: Mapping[str, Any]) -> tuple[str, str]:
    """The upper-case method and the path of an HTTP event (payload format 1.0 or 2.0)."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if isinstance(http, Mapping):
        return str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path"))
    return str(event.get("httpMethod", "")).upper(), str(event.get("path", ""))


def http_body(event: Mapping[str, Any]) -> Any:
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
        return strict_json_loads(body)
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


def sqs_event(record: Mapping[str, Any]) -> tuple[str, Any]:
    """The ``(name, args)`` of the event an SQS message carries.

    Raises:
        BadRequest: the body is missing, not JSON, or not an event.
    """
    body = record.get("body")
    if not isinstance(body, str):
        raise BadRequest("the message body is missing")
    try:
        payload = strict_json_loads(body)
    except ValueError as exc:
        raise BadRequest(f"the message body is not valid JSON: {exc}") from None
    kind, name, args, _key = parse_request(payload)
    if kind != "event" or name is None:
        raise BadRequest('an SQS message must be an event: {"event": "name", "args": ...}')
    return name, args
