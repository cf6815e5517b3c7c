"""Which kind of AWS event reached the Lambda handler (the table in docs/lambda.md), and
the size cap of what it answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ALB_RESPONSE_LIMIT",
    "BODY_KEYS",
    "CALLBACK_KEYS",
    "CLAIMED",
    "LAMBDA_RESPONSE_LIMIT",
    "REASONS",
    "capped",
    "dumps",
    "event_kind",
]

BODY_KEYS = frozenset({"trigger_name", "event", "args", "key"})
CALLBACK_KEYS = frozenset({"callback_id", "result", "error"})

# Lambda's synchronous response limit is 6 MB (6,291,456 bytes) and ALB's body limit
# 1 MB; the handler stays below both with room for the envelope.
LAMBDA_RESPONSE_LIMIT = 6_000_000
ALB_RESPONSE_LIMIT = 1_000_000
CLAIMED = frozenset({"sqs", "http", "alb", "schedule", "eventbridge", "direct"})


def _records_source(event: Mapping[str, Any]) -> str | None:
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], Mapping):
        return None
    first = records[0]
    if "cf" in first:
        return "cloudfront"
    source = first.get("eventSource") or first.get("EventSource")
    return str(source).removeprefix("aws:") if source else "records"


_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("triggerSource", "cognito-user-pool"),
    ("awslogs", "cloudwatch-logs"),
    ("CodePipeline.job", "codepipeline"),
    ("RequestType", "cloudformation-custom-resource"),
    ("configRuleName", "config-rule"),
    ("alarmData", "cloudwatch-alarm"),
    ("widgetContext", "cloudwatch-dashboard"),
    ("deliveryStreamArn", "firehose"),
    ("getObjectContext", "s3-object-lambda"),
    ("tasks", "s3-batch"),
    ("bootstrapServers", "kafka"),
    ("rmqMessagesByQueue", "rabbitmq"),
    ("messages", "activemq"),
    ("DeploymentId", "codedeploy-hook"),
    ("SecretId", "secrets-manager-rotation"),
    ("bot", "lex"),
    ("agent", "bedrock-agent"),
    ("Details", "connect"),
    ("session", "alexa-skill"),
    ("directive", "alexa-smart-home"),
    ("header", "alexa-smart-home"),
    ("arguments", "appsync"),
    ("isAuthorized", "appsync-authorizer-response"),
    ("datasetRecords", "cognito-sync"),
    ("labelingJobArn", "sagemaker-ground-truth"),
    ("flowDirection", "workmail"),
    ("applicationArn", "kinesis-analytics"),
    ("invocationId", "firehose"),
)


def event_kind(event: Any) -> str:
    """The kind of an incoming event, as listed in docs/lambda.md.

    The handler serves ``sqs``, ``http``, ``alb``, ``schedule``, ``eventbridge`` (with
    a ``detail`` that carries a trigger or event) and ``direct``; every other kind is
    refused with :class:`UnsupportedEventError`.
    """
    if (
        isinstance(event, list)
        and event
        and all(isinstance(item, Mapping) and "arguments" in item for item in event)
    ):
        return "appsync-batch"
    if not isinstance(event, Mapping):
        return "direct"
    if not event or set(event) & (BODY_KEYS | CALLBACK_KEYS):
        return "direct"
    if event.get("type") in ("TOKEN", "REQUEST") and ("methodArn" in event or "routeArn" in event):
        return "api-gateway-authorizer"
    source = _records_source(event)
    if source is not None:
        return source
    context = event.get("requestContext")
    if isinstance(context, Mapping):
        if "elb" in context:
            return "alb"
        if "serviceNetworkArn" in context:
            return "vpc-lattice"
        if "authorizationToken" in event:
            return "appsync-authorizer"
        if "httpMethod" in event or "routeKey" in event or event.get("version") == "2.0":
            return "http"
    if "raw_path" in event:
        return "vpc-lattice"
    if "detail-type" in event and "source" in event:
        if event["detail-type"] == "Scheduled Event":
            return "schedule"
        return "eventbridge"
    for key, kind in _SIGNATURES:
        if key in event:
            return kind
    return "unknown"


def dumps(value: Any) -> str:
    """Compact ASCII JSON: what the runtime sends back, measured in bytes by ``len``."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def capped(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """``body``, with its results summarised (and cut) when it exceeds ``limit`` bytes."""
    if len(dumps(body)) <= limit or "results" not in body:
        return body
    keep = ("workflow_name", "run_id", "status", "error_message", "triggered_by")
    summaries: list[dict[str, Any]] = []
    used = 200
    for result in body["results"]:
        summary = {k: result.get(k) for k in keep}
        if summary["error_message"] is not None:
            summary["error_message"] = summary["error_message"][:500]
        size = len(dumps(summary)) + 1
        if used + size > limit:
            break
        summaries.append(summary)
        used += size
    return {
        **body,
        "results": summaries,
        "truncated": True,
        "runs": len(body["results"]),
        "note": (
            f"The full results exceed {limit} bytes, so logs and values are left out"
            + ("." if len(summaries) == len(body["results"]) else " and the list is cut.")
            + " Read them with run_history() or run_logs()."
        ),
    }


REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}
