"""The Lambda handler fed every real AWS event fixture, and misused on purpose.

The fixtures live in ``../shared/fixtures/aws-events/`` beside the repository (CI has a
copy of ``shared/`` next to the clone); SOURCES.md there says where each comes from.
The SAM files are ``sam local generate-event`` templates, rendered here with each tag's
default from ``event-mapping.json`` as SAM CLI does. Every fixture must get the outcome
that docs/lambda.md's table gives for its kind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ttflow_async import Client, RunContext, event_trigger, setup, state_trigger
from ttflow_async.aws_lambda import (
    ALB_RESPONSE_LIMIT,
    LambdaHandler,
    UnsupportedEventError,
    event_kind,
    lambda_handler,
)

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / ".." / "shared" / "fixtures" / "aws-events"
DOC = ROOT / "docs" / "lambda.md"

pytestmark = pytest.mark.skipif(not EVENTS.is_dir(), reason="../shared/fixtures is not beside")


def render_sam(path: Path) -> Any:
    """A SAM ``generate-event`` template with every tag set to its default."""
    mapping = json.loads((EVENTS / "sam" / "event-mapping.json").read_text())
    service, _, name = path.stem.partition("__")
    tags: dict[str, Any] = {}
    for event in mapping.get(service, {}).values():
        if event["filename"] == name:
            tags = event.get("tags", {})

    def value(match: re.Match[str]) -> str:
        tag = match.group(1)
        spec = tags.get(tag) or tags.get(tag.replace("_", "-")) or {}
        default = spec.get("default", "")
        if isinstance(default, dict | list):
            return json.dumps(default)
        text = str(default)
        if spec.get("encoding") == "base64":
            text = base64.b64encode(text.encode()).decode()
        elif spec.get("encoding") == "url":
            text = urllib.parse.quote(text)
        return json.dumps(text)[1:-1]

    return json.loads(re.sub(r"\{\{\{\s*([^}\s]+)\s*\}\}\}", value, path.read_text()))


def load_fixtures() -> list[tuple[str, Any]]:
    if not EVENTS.is_dir():
        return []
    found = [(p.name, json.loads(p.read_text())) for p in sorted(EVENTS.glob("powertools/*.json"))]
    found += [(p.name, render_sam(p)) for p in sorted(EVENTS.glob("sam/*__*.json"))]
    return found


FIXTURES = load_fixtures()


def documented_outcomes() -> dict[str, str]:
    """``kind -> outcome`` from the event-kind table of docs/lambda.md."""
    table: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        row = re.match(r"\| `([a-z0-9-]+)` \| \*\*(\w+)\*\*", line)
        if row:
            table[row.group(1)] = row.group(2)
    return table


def make_client(spec: str) -> Client:
    client = setup(spec)

    @client.workflow()
    async def hello(c: RunContext, args: Any) -> None:
        await c.log(f"hello {args}")

    @client.workflow(trigger=event_trigger("order_placed"))
    async def confirm_order(c: RunContext, order: Any) -> None:
        await c.log(f"order {order} confirmed")

    @client.workflow(trigger=state_trigger("door"))
    async def alarm(c: RunContext, value: Any) -> None:
        await c.log(f"door {value}")

    @client.workflow(trigger=event_trigger("big"))
    async def big(c: RunContext, n: Any) -> None:
        await c.log("x" * 16_000)

    return client


@pytest.fixture
def spec(tmp_path: Path) -> str:
    return f"local:{tmp_path / 'state.json'}"


@pytest.fixture
def handler(spec: str) -> Iterator[LambdaHandler]:
    built = lambda_handler(make_client(spec))
    yield built
    built.close()


def history(spec: str) -> list[str]:
    async def go() -> list[str]:
        return [h.workflow_name for h in await make_client(spec).run_history()]

    return asyncio.run(go())


def http_event(body: str | None, *, method: str = "POST", path: str = "/flows") -> dict[str, Any]:
    """An HTTP API (payload 2.0) request as API Gateway sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "203.0.113.5"},
            "stage": "$default",
        },
        **({} if body is None else {"body": body}),
        "isBase64Encoded": False,
    }


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


# -- every fixture --------------------------------------------------------------------


def test_the_fixtures_are_there() -> None:
    assert len(FIXTURES) > 150


def test_docs_table_lists_every_kind_of_the_fixtures() -> None:
    table = documented_outcomes()
    kinds = {event_kind(event) for _, event in FIXTURES}
    assert kinds <= set(table), f"not in docs/lambda.md: {sorted(kinds - set(table))}"
    assert set(table.values()) <= {"served", "refused"}


@pytest.mark.parametrize(("name", "event"), FIXTURES, ids=[n for n, _ in FIXTURES])
def test_every_fixture_gets_its_documented_outcome(
    handler: LambdaHandler,
    spec: str,
    name: str,
    event: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind = event_kind(event)
    outcome = documented_outcomes()[kind]
    if outcome == "refused":
        with (
            caplog.at_level(logging.ERROR, "ttflow_async.aws_lambda"),
            pytest.raises(UnsupportedEventError),
        ):
            handler(event, None)
        assert any(kind in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        assert history(spec) == []
        return
    response = handler(event, None)
    if kind == "sqs":
        ids = [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
        assert response == {"batchItemFailures": ids}  # none of their bodies is an event
    elif kind == "schedule":
        assert response == {"statusCode": 200, "status": "done", "results": []}
    else:
        method = (event.get("requestContext", {}).get("http") or {}).get("method") or event.get(
            "httpMethod"
        )
        expected = {405} if method != "POST" else {200, 400}
        assert response["statusCode"] in expected
        assert body_of(response)["status"] in {"done", "invalid"}
        if kind == "alb" and "multiValueHeaders" in event:
            assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
            assert "headers" not in response
        else:
            assert response["headers"]["Content-Type"] == "application/json"
    assert history(spec) == []


# -- HTTP: methods, paths, names --------------------------------------------------------


def test_alb_multi_value_request_gets_a_multi_value_response(handler: LambdaHandler) -> None:
    event = json.loads((EVENTS / "powertools" / "albMultiValueHeadersEvent.json").read_text())
    event = {**event, "httpMethod": "POST", "body": '{"trigger_name": "hello", "args": 1}'}
    response = handler(event, None)
    assert response["statusCode"] == 200
    assert response["statusDescription"] == "200 OK"
    assert response["multiValueHeaders"] == {"Content-Type": ["application/json"]}
    assert body_of(response)["results"][0]["logs"] == ["hello 1"]


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PUT", "HEAD"])
def test_other_methods_get_405_and_run_no_pass(
    handler: LambdaHandler, spec: str, method: str
) -> None:
    response = handler(http_event(None, method=method, path="/favicon.ico"), None)
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "POST"
    assert history(spec) == []


def test_a_configured_path_answers_404_elsewhere(spec: str) -> None:
    handler = lambda_handler(make_client(spec), path="/flows")
    try:
        missed = handler(http_event('{"trigger_name": "hello"}', path="/other"), None)
        assert missed["statusCode"] == 404
        assert history(spec) == []
        hit = handler(http_event('{"trigger_name": "hello"}', path="/flows/"), None)
        assert hit["statusCode"] == 200
    finally:
        handler.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "state_changed_door", "args": "forged"},
        {"trigger_name": "state_changed_door"},
        {"event": "workflows_changed"},
        {"event": "_every"},
    ],
)
def test_engine_event_names_are_refused_from_outside(
    handler: LambdaHandler, spec: str, payload: dict[str, Any]
) -> None:
    response = handler(http_event(json.dumps(payload)), None)
    assert response["statusCode"] == 400
    assert "reserved for the engine" in body_of(response)["error"]
    assert history(spec) == []


def test_an_unknown_trigger_is_not_echoed_in_full(handler: LambdaHandler) -> None:
    response = handler(http_event(json.dumps({"trigger_name": "n" * 5_000_000})), None)
    assert response["statusCode"] == 400
    assert len(response["body"]) < 400
    named = handler(http_event(json.dumps({"trigger_name": "nobody"})), None)
    error = body_of(named)["error"]
    assert "'nobody'" in error
    assert "hello" not in error  # the registered triggers are not listed


# -- malformed, deep and surrogate input ------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        '{"trigger_name": "hello", "args": ' + nested(5000) + "}",
        '{"trigger_name": "hello", "args": ' + nested(600) + "}",
        '{"trigger_name": "hello", "args": ' + nested(300) + "}",
        '{"trigger_name": "hel\\ud800lo"}',
        '{"event": "order_placed", "args": "\\udc00"}',
        '{"trigger_name": "hello", "args": {"k": "\\ud83d"}}',
    ],
    ids=["deep-5000", "deep-600", "deep-300", "surrogate-name", "surrogate-event", "surrogate"],
)
def test_deep_and_surrogate_bodies_get_400(handler: LambdaHandler, spec: str, body: str) -> None:
    response = handler(http_event(body), None)
    assert response["statusCode"] == 400
    assert body_of(response)["status"] == "invalid"
    response["body"].encode("utf-8")  # the runtime can serialise what comes back
    assert history(spec) == []


def test_a_bad_direct_invocation_is_a_400_logged_at_error(
    handler: LambdaHandler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "ttflow_async.aws_lambda"):
        response = handler({"trigger_name": "hello", "args": json.loads(nested(300))}, None)
    assert response["statusCode"] == 400
    assert caplog.records


# -- SQS ------------------------------------------------------------------------------


def sqs_record(message_id: str, body: str, *, fifo: bool = False) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": "1"}
    if fifo:
        attributes["MessageGroupId"] = "orders"
    return {
        "messageId": message_id,
        "body": body,
        "attributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:flows" + (".fifo" if fifo else ""),
    }


def order(n: Any) -> str:
    return json.dumps({"event": "order_placed", "args": n})


def test_bad_sqs_records_fail_alone(handler: LambdaHandler, spec: str) -> None:
    batch = {
        "Records": [
            sqs_record("m1", order(1)),
            sqs_record("m2", '{"event": "order_placed", "args": ' + nested(5000) + "}"),
            sqs_record("m3", '{"event": "order_placed", "args": ' + nested(300) + "}"),
            sqs_record("m4", '{"event": "order_placed", "args": "\\ud800"}'),
            sqs_record("m5", json.dumps({"event": "state_changed_door", "args": 1})),
            sqs_record("m6", order(6)),
        ]
    }
    response = handler(batch, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": f"m{i}"} for i in range(2, 6)]}
    assert sorted(history(spec)) == ["confirm_order", "confirm_order"]


def test_a_fifo_batch_stops_at_the_first_failure(handler: LambdaHandler, spec: str) -> None:
    batch = {
        "Records": [
            sqs_record("m1", order(1), fifo=True),
            sqs_record("m2", "not json", fifo=True),
            sqs_record("m3", order(3), fifo=True),
        ]
    }
    response = handler(batch, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    assert history(spec) == ["confirm_order"]


def test_a_redelivered_batch_delivers_each_message_once(handler: LambdaHandler, spec: str) -> None:
    batch = {"Records": [sqs_record("m1", order(1)), sqs_record("m2", order(2))]}
    assert handler(batch, None) == {"batchItemFailures": []}
    assert handler(batch, None) == {"batchItemFailures": []}  # SQS delivered it again
    assert sorted(history(spec)) == ["confirm_order", "confirm_order"]


# -- response size --------------------------------------------------------------------


def test_responses_are_capped_below_the_platform_limit(handler: LambdaHandler, spec: str) -> None:
    async def queue() -> None:
        async with make_client(spec) as client:
            for n in range(80):
                await client.send_event("big", n)

    asyncio.run(queue())
    event = json.loads((EVENTS / "powertools" / "albEvent.json").read_text())
    response = handler({**event, "httpMethod": "POST", "body": "", "isBase64Encoded": False}, None)
    assert response["statusCode"] == 200
    assert len(response["body"]) <= ALB_RESPONSE_LIMIT
    body = body_of(response)
    assert body["truncated"] is True
    assert body["runs"] == 80
    assert len(body["results"]) == 80
    assert all("logs" not in r for r in body["results"])
    assert len(history(spec)) == 80


def test_a_key_in_the_body_starts_a_trigger_once(handler: LambdaHandler, spec: str) -> None:
    body = json.dumps({"trigger_name": "hello", "args": 1, "key": "order-7"})
    first = handler(http_event(body), None)
    again = handler({"trigger_name": "hello", "args": 1, "key": "order-7"}, None)
    assert first["statusCode"] == 200
    assert len(body_of(first)["results"]) == 1
    assert again == {"statusCode": 200, "status": "done", "results": []}
    assert history(spec) == ["hello"]
    refused = handler({"key": "k"}, None)
    assert refused["statusCode"] == 400


def test_a_callback_body_completes_or_fails_the_callback(spec: str) -> None:
    client = make_client(spec)

    @client.workflow()
    async def shipping(c: RunContext) -> Any:
        cb = await c.create_callback(name="delivered")
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    handler = lambda_handler(client)
    try:
        started = handler({"trigger_name": "shipping"}, None)
        assert started["results"][0]["status"] == "paused"

        async def callback_id() -> Any:
            return await make_client(spec).get_state("callback_id")

        cb_id = asyncio.run(callback_id())
        done = handler(http_event(json.dumps({"callback_id": cb_id, "result": {"at": 9}})), None)
        assert done["statusCode"] == 200
        (result,) = body_of(done)["results"]
        assert (result["status"], result["result"]) == ("succeeded", {"at": 9})
        unknown = handler({"callback_id": "nope", "result": 1}, None)
        assert unknown["statusCode"] == 400
        both = handler({"callback_id": cb_id, "result": 1, "error": "x"}, None)
        assert both["statusCode"] == 400
    finally:
        handler.close()
