"""The AWS Lambda handler, fed real-shaped events on the local and the S3 store.

The handler is called synchronously, as Lambda's Python runtime calls it. Event
shapes follow the samples in the Lambda developer guide (API Gateway REST and HTTP
APIs, function URLs, EventBridge scheduled events, SQS batches).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from ttflow_async import Client, RunContext, event_trigger, setup
from ttflow_async.aws_lambda import LambdaHandler, lambda_handler

HOLDING = threading.Event()
RELEASE = threading.Event()


def make_client(spec: str) -> Client:
    """A client over ``spec`` with the workflows these tests use."""
    client = setup(spec)

    @client.workflow()
    async def hello(c: RunContext, args: Any) -> None:
        await c.log(f"hello {args}")

    @client.workflow()
    async def poller(c: RunContext) -> None:
        await c.log("first check")
        await c.pause_once()
        await c.log("second check")

    @client.workflow(trigger=event_trigger("order_placed"))
    async def confirm_order(c: RunContext, order: dict[str, Any]) -> None:
        await c.log(f"order {order['id']} confirmed")

    @client.sideeffect()
    async def wait_for_release(c: RunContext) -> None:
        HOLDING.set()
        while not RELEASE.is_set():  # noqa: ASYNC110 - set from the handler's thread
            await anyio.sleep(0.01)

    @client.workflow()
    async def hold(c: RunContext) -> None:
        await wait_for_release(c)

    return client


# -- real-shaped events -------------------------------------------------------------


def api_gateway_v1(body: str | None, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    return {
        "resource": "/flows",
        "path": "/flows",
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "abc.execute-api.amazonaws.com"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/flows",
            "httpMethod": method,
            "requestTime": "10/Mar/2026:00:03:59 +0000",
            "path": "/prod/flows",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "requestTimeEpoch": 1773101039000,
            "requestId": "e1e45ee0-cd97-4f3f-9a5b-5a8d0e3b3c11",
            "identity": {"sourceIp": "203.0.113.5", "userAgent": "curl/8.5.0"},
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc",
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def http_v2(
    body: str | None, *, method: str = "POST", b64: bool = False, route: str = "POST /flows"
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event; with ``route="$default"`` a function URL event."""
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": "/flows" if route != "$default" else "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.aws"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc",
            "http": {
                "method": method,
                "path": "/flows",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.5",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": route,
            "stage": "$default",
            "time": "10/Mar/2026:00:03:59 +0000",
            "timeEpoch": 1773101039000,
        },
        **({} if body is None else {"body": body}),
        "isBase64Encoded": b64,
    }


def function_url(payload: Any, *, b64: bool = True) -> dict[str, Any]:
    text = json.dumps(payload)
    body = base64.b64encode(text.encode()).decode() if b64 else text
    return http_v2(body, b64=b64, route="$default")


SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-03-10T00:05:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/resume-flows"],
    "detail": {},
}


def sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1773101039000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1773101039001",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:flows-events",
        "awsRegion": "us-east-1",
    }


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return f"local:{tmp_path / 'state.json'}"
    factory: Callable[[str], str] = request.getfixturevalue("aws_spec_factory")
    return factory("s3")


@pytest.fixture
def handler(spec: str) -> Iterator[LambdaHandler]:
    built = lambda_handler(make_client(spec))
    yield built
    built.close()


def inspect(spec: str, call: str, *args: Any) -> Any:
    """Call an inspection method on a fresh client over the same store."""

    async def go() -> Any:
        return await getattr(make_client(spec), call)(*args)

    return asyncio.run(go())


def http_body(response: dict[str, Any]) -> Any:
    assert response["headers"] == {"Content-Type": "application/json"}
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


# -- HTTP -----------------------------------------------------------------------------


def test_api_gateway_v1_fires_a_trigger(handler: LambdaHandler, spec: str) -> None:
    response = handler(api_gateway_v1('{"trigger_name": "hello", "args": {"n": 1}}'), None)
    assert response["statusCode"] == 200
    body = http_body(response)
    assert body["status"] == "done"
    (result,) = body["results"]
    assert result["workflow_name"] == "hello"
    assert result["status"] == "succeeded"
    assert result["logs"] == ["hello {'n': 1}"]
    assert [h.workflow_name for h in inspect(spec, "run_history")] == ["hello"]


def test_http_api_v2_sends_an_event(handler: LambdaHandler) -> None:
    event = http_v2('{"event": "order_placed", "args": {"id": 7}}')
    body = http_body(handler(event, None))
    assert [(r["workflow_name"], r["logs"]) for r in body["results"]] == [
        ("confirm_order", ["order 7 confirmed"])
    ]


def test_function_url_with_a_base64_body(handler: LambdaHandler) -> None:
    response = handler(function_url({"trigger_name": "hello", "args": "λ"}), None)
    assert response["statusCode"] == 200
    assert http_body(response)["results"][0]["logs"] == ["hello λ"]


def test_application_load_balancer_request(handler: LambdaHandler) -> None:
    event = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                "targetgroup/flows/6d0ecf831eec9f09"
            }
        },
        "httpMethod": "POST",
        "path": "/flows",
        "queryStringParameters": {},
        "headers": {"content-type": "application/json"},
        "body": '{"trigger_name": "hello", "args": "alb"}',
        "isBase64Encoded": False,
    }
    response = handler(event, None)
    assert response["statusCode"] == 200
    assert http_body(response)["results"][0]["logs"] == ["hello alb"]


def test_no_body_resumes_what_is_ready(handler: LambdaHandler) -> None:
    started = http_body(handler(function_url({"trigger_name": "poller"}, b64=False), None))
    assert started["results"][0]["status"] == "paused"
    resumed = handler(http_v2(None, route="$default"), None)
    assert resumed["statusCode"] == 200
    (result,) = http_body(resumed)["results"]
    assert result["status"] == "succeeded"
    assert result["triggered_by"] == "_resume"
    assert result["logs"] == ["first check", "second check"]
    empty = handler(api_gateway_v1(""), None)
    assert http_body(empty) == {"status": "done", "results": []}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (api_gateway_v1("{not json"), "not valid JSON"),
        (api_gateway_v1('{"trigger_name": "hello", "args": NaN}'), "not valid JSON"),
        (api_gateway_v1("[1, 2]"), "must be a JSON object"),
        (api_gateway_v1('{"trigger": "hello"}'), "Unknown keys 'trigger'"),
        (api_gateway_v1('{"trigger_name": "hello", "event": "x"}'), "not both"),
        (api_gateway_v1('{"args": {"n": 1}}'), "without a trigger_name or an event"),
        (api_gateway_v1('{"trigger_name": ""}'), "non-empty string"),
        (api_gateway_v1('{"event": 5}'), "non-empty string"),
        (api_gateway_v1("%%%", b64=True), "not valid base64"),
        (http_v2(base64.b64encode(b"\xff\xfe").decode(), b64=True), "not UTF-8"),
        (function_url({"trigger_name": "nobody_listens"}), "nobody_listens"),
        (function_url({"event": "_engine_only"}), "reserved"),
    ],
)
def test_bad_requests_get_400_with_the_reason_and_change_nothing(
    handler: LambdaHandler, spec: str, event: dict[str, Any], reason: str
) -> None:
    response = handler(event, None)
    assert response["statusCode"] == 400
    body = http_body(response)
    assert body["status"] == "invalid"
    assert reason in body["error"]
    assert inspect(spec, "run_history") == []
    assert inspect(spec, "event_log") == []


def test_a_failing_store_answers_500(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    broken = lambda_handler(make_client(f"local:{tmp_path / 'a-file' / 'state.json'}"))
    try:
        response = broken(function_url({"trigger_name": "hello"}), None)
    finally:
        broken.close()
    assert response["statusCode"] == 500
    body = http_body(response)
    assert body["status"] == "error"
    assert body["error"].startswith("StoreError:")


# -- scheduled and direct -------------------------------------------------------------


def test_scheduled_event_resumes_paused_runs(handler: LambdaHandler) -> None:
    assert handler({"trigger_name": "poller"}, None)["results"][0]["status"] == "paused"
    response = handler(SCHEDULED, None)
    assert response["statusCode"] == 200
    assert response["status"] == "done"
    assert [(r["workflow_name"], r["status"]) for r in response["results"]] == [
        ("poller", "succeeded")
    ]


def test_eventbridge_detail_can_carry_a_trigger(handler: LambdaHandler) -> None:
    event = {**SCHEDULED, "detail-type": "Run flow", "source": "my.app"}
    event["detail"] = {"trigger_name": "hello", "args": 3}
    assert handler(event, None)["results"][0]["logs"] == ["hello 3"]


def test_direct_invocations(handler: LambdaHandler) -> None:
    fired = handler({"trigger_name": "hello", "args": [1]}, None)
    assert fired["statusCode"] == 200
    assert fired["results"][0]["logs"] == ["hello [1]"]
    sent = handler({"event": "order_placed", "args": {"id": 9}}, None)
    assert sent["results"][0]["logs"] == ["order 9 confirmed"]
    assert handler({}, None) == {"statusCode": 200, "status": "done", "results": []}


@pytest.mark.parametrize(
    "event",
    [
        [1, 2],
        "hello",
        {"trigger_name": "hello", "unexpected": True},
    ],
)
def test_unsupported_direct_payloads_get_400(handler: LambdaHandler, event: Any) -> None:
    response = handler(event, None)
    assert response["statusCode"] == 400
    assert response["status"] == "invalid"
    assert response["error"]


# -- SQS ------------------------------------------------------------------------------


def test_sqs_batch_sends_each_record_and_reports_bad_ones(
    handler: LambdaHandler, spec: str
) -> None:
    batch = {
        "Records": [
            sqs_record("m1", json.dumps({"event": "order_placed", "args": {"id": 1}})),
            sqs_record("m2", "not json"),
            sqs_record("m3", json.dumps({"trigger_name": "hello"})),
            sqs_record("m4", json.dumps({"event": "order_placed", "args": {"id": 2}})),
            sqs_record("m5", json.dumps({"event": "_reserved"})),
        ]
    }
    response = handler(batch, None)
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "m2"},
            {"itemIdentifier": "m3"},
            {"itemIdentifier": "m5"},
        ]
    }
    logs = sorted(
        line
        for entry in inspect(spec, "run_history")
        for line in inspect(spec, "run_logs", entry.run_id)
    )
    assert logs == ["order 1 confirmed", "order 2 confirmed"]
    events = [(e.event_name, e.args) for e in inspect(spec, "event_log")]
    assert ("order_placed", {"id": 1}) in events
    assert ("order_placed", {"id": 2}) in events


# -- a held lock ----------------------------------------------------------------------


@pytest.fixture
def held_lock(spec: str) -> Iterator[threading.Thread]:
    """Another runner (its own client and loop, in a thread) holds the lock."""
    HOLDING.clear()
    RELEASE.clear()
    holder = make_client(spec)
    thread = threading.Thread(target=lambda: asyncio.run(holder.run("hold")), daemon=True)
    thread.start()
    assert HOLDING.wait(timeout=60)
    try:
        yield thread
    finally:
        RELEASE.set()
        thread.join(timeout=60)


def test_held_lock_answers_202_and_nothing_is_lost(
    handler: LambdaHandler, spec: str, held_lock: threading.Thread
) -> None:
    queued = handler(function_url({"trigger_name": "hello", "args": "later"}), None)
    assert queued["statusCode"] == 202
    body = http_body(queued)
    assert body["status"] == "queued"
    assert body["queued"] is True

    event = handler({"event": "order_placed", "args": {"id": 5}}, None)
    assert event["statusCode"] == 202
    assert event["queued"] is True

    resume = handler(SCHEDULED, None)
    assert resume["statusCode"] == 202
    assert resume["queued"] is False

    sqs = handler({"Records": [sqs_record("m1", '{"event": "order_placed", "args": {"id": 6}}')]})
    assert sqs == {"batchItemFailures": []}

    RELEASE.set()
    held_lock.join(timeout=60)
    handler(SCHEDULED, None)  # whatever the holder did not drain
    names = sorted(entry.workflow_name for entry in inspect(spec, "run_history"))
    assert names == ["confirm_order", "confirm_order", "hello", "hold"]


def test_lock_timeout_waits_for_the_holder(spec: str, held_lock: threading.Thread) -> None:
    patient = lambda_handler(make_client(spec), lock_timeout=60)
    try:
        releaser = threading.Timer(0.2, RELEASE.set)
        releaser.start()
        response = patient({"trigger_name": "hello", "args": "patient"}, None)
        releaser.join()
    finally:
        patient.close()
    assert response["statusCode"] == 200
    assert response["results"][0]["logs"] == ["hello patient"]


# -- connections ----------------------------------------------------------------------


@pytest.mark.aws
def test_warm_invocations_reuse_one_connection_set(
    aws_spec_factory: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioboto3

    created: list[str] = []
    original = aioboto3.Session.client

    def counting(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        created.append(service_name)
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(aioboto3.Session, "client", counting)
    spec = aws_spec_factory("s3")

    warm = lambda_handler(make_client(spec))
    try:
        assert warm({"trigger_name": "poller"}, None)["statusCode"] == 200
        assert warm(SCHEDULED, None)["results"][0]["status"] == "succeeded"
        assert warm(function_url({"trigger_name": "hello"}), None)["statusCode"] == 200
    finally:
        warm.close()
    assert created == ["s3"]

    # Without a kept, entered client every call opens its own connections.
    created.clear()
    bare = make_client(spec)
    asyncio.run(bare.run("hello"))
    asyncio.run(bare.run("hello"))
    assert len(created) >= 2


def test_importing_the_handler_pulls_in_no_aws_sdk() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ttflow_async.aws_lambda; print('aioboto3' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "False", done.stderr
