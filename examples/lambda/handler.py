"""A ttflow-async function for AWS Lambda (deploy it with ``template.yaml``).

The store comes from ``TTFLOW_ASYNC_STORE`` (the template sets ``s3:<bucket>/flows``).
One function serves every way in: its function URL (``{"trigger_name": ...}`` or
``{"event": ...}`` bodies), a schedule that resumes what is due, and an SQS queue
whose messages are events.

``python examples/lambda/handler.py`` invokes the handler locally with a few
real-shaped events against a local file store and prints the responses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from ttflow_async import EventWaitTimeout, RunContext, event_trigger, setup
from ttflow_async.aws_lambda import lambda_handler

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(os.environ.get("TTFLOW_ASYNC_STORE") or f"local:{STATE_DIR / 'lambda.json'}")


@client.workflow()
async def hello(c: RunContext, args: dict[str, Any] | None) -> None:
    """Say hello."""
    await c.log(f"Hello, {(args or {}).get('name', 'world')}!")


@client.workflow()
async def deploy(c: RunContext, args: dict[str, Any] | None) -> None:
    """Wait for ``approve:<run id>`` (a function URL request), then deploy."""
    await c.log(f"waiting for approve:{c.run_id}")
    try:
        approval = await c.wait_event(f"approve:{c.run_id}", timeout=timedelta(days=1))
    except EventWaitTimeout:
        await c.log("not approved within a day: cancelled")
        return
    await c.log(f"approved by {(approval or {}).get('by', 'someone')}: deploying")


@client.workflow(trigger=event_trigger("order_placed"))
async def confirm_order(c: RunContext, order: dict[str, Any]) -> None:
    """Started by each order_placed event (from the SQS queue, for example)."""
    await c.log(f"order {order['id']} confirmed")


handler = lambda_handler(client, lock_timeout=5)


def _function_url_event(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "isBase64Encoded": True,
    }


async def _history() -> list[str]:
    lines = []
    for entry in await client.run_history():
        logs = "; ".join(await client.run_logs(entry.run_id))
        lines.append(f"{entry.workflow_name} {entry.status}: {logs}")
    return lines


def _demo() -> int:
    if os.environ.get("TTFLOW_ASYNC_STORE"):
        print("the demo empties its store: unset TTFLOW_ASYNC_STORE to run it", file=sys.stderr)
        return 2
    asyncio.run(client.clear_state())  # every demo starts from an empty store
    responses: list[tuple[str, dict[str, Any]]] = []
    started = handler(_function_url_event({"trigger_name": "deploy"}))
    responses.append(("function URL: deploy", started))
    run_id = json.loads(started["body"])["results"][0]["run_id"]
    approve = {"trigger_name": f"approve:{run_id}", "args": {"by": "ana"}}
    responses.append(("function URL: approve", handler(_function_url_event(approve))))
    order = json.dumps({"event": "order_placed", "args": {"id": 7}})
    sqs_batch = {
        "Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": order},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "not json"},
        ]
    }
    responses.append(("SQS batch", handler(sqs_batch)))
    schedule = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    responses.append(("schedule", handler(schedule)))
    responses.append(("direct: hello", handler({"trigger_name": "hello", "args": {"name": "λ"}})))
    responses.append(("function URL: bad body", handler(_function_url_event({"oops": 1}))))
    handler.close()
    for title, response in responses:
        shown = dict(response)
        if isinstance(shown.get("body"), str):  # an HTTP response: decode it to read it
            shown["body"] = json.loads(shown["body"])
        print(f"== {title}")
        print(json.dumps(shown, indent=1, ensure_ascii=False))
    print("== run history")
    for line in asyncio.run(_history()):
        print(line)
    codes = [response.get("statusCode") for _, response in responses]
    failures = responses[2][1]["batchItemFailures"]
    ok = codes == [200, 200, None, 200, 200, 400] and failures == [{"itemIdentifier": "m2"}]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_demo())
