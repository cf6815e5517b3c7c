"""Every example runs as a plain script (a subprocess) against a local store."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TTFLOW_ASYNC_STORE"}
    env["TTFLOW_ASYNC_EXAMPLES_DIR"] = str(tmp_path)
    env["LONG_SLEEP_SECONDS"] = "0.5"
    return env


def run_example(
    name: str, env: dict[str, str], *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == expect, (
        f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def test_quickstart_runs_and_keeps_its_state(examples_env: dict[str, str], tmp_path: Path) -> None:
    first = run_example("quickstart.py", examples_env)
    assert "hello  succeeded  run " in first.stdout
    assert "| Hello, ttflow-async!" in first.stdout
    assert "| greetings so far: 1" in first.stdout
    assert (tmp_path / "quickstart.json").exists()
    second = run_example("quickstart.py", examples_env)
    assert "| greetings so far: 2" in second.stdout


def test_approval_resumes_the_waiting_run(examples_env: dict[str, str]) -> None:
    done = run_example("approval.py", examples_env)
    run_id = re.search(r"deploy  paused  run ([0-9a-f-]{36})", done.stdout)
    assert run_id
    callback = re.search(r"complete callback ([0-9a-f-]{36}) to go on", done.stdout)
    assert callback
    assert f"waits for callback {callback.group(1)}" in done.stdout
    assert f"deploy  succeeded  run {run_id.group(1)}" in done.stdout
    assert "approved by ana: deploying to prod" in done.stdout
    assert "still waiting: 0 run(s)" in done.stdout


def test_approval_through_its_command_line(examples_env: dict[str, str]) -> None:
    started = run_example("approval.py", examples_env, "run", "deploy", '{"env": "prod"}', "--json")
    (result,) = json.loads(started.stdout)["results"]
    assert result["status"] == "paused"
    callback = re.search(r"complete callback ([0-9a-f-]{36}) to go on", "\n".join(result["logs"]))
    assert callback
    callback_id = callback.group(1)
    status = run_example("approval.py", examples_env, "status")
    assert f"callback {callback_id} (approval)" in status.stdout
    approved = run_example(
        "approval.py", examples_env, "callback", "complete", callback_id, '{"by": "bo"}'
    )
    assert "succeeded" in approved.stdout
    assert "approved by bo: deploying to prod" in approved.stdout
    history = run_example("approval.py", examples_env, "history")
    assert '"deployed to prod"' in history.stdout


def test_approval_refused_through_its_command_line(examples_env: dict[str, str]) -> None:
    started = run_example("approval.py", examples_env, "run", "deploy", "--json")
    (result,) = json.loads(started.stdout)["results"]
    callback = re.search(r"complete callback ([0-9a-f-]{36}) to go on", "\n".join(result["logs"]))
    assert callback
    refused = run_example(
        "approval.py", examples_env, "callback", "fail", callback.group(1), "not on a Friday"
    )
    assert "succeeded" in refused.stdout
    assert "the deploy to staging was refused" in refused.stdout
    assert "not on a Friday" in refused.stdout


def test_price_watch_polls_until_the_price_drops(examples_env: dict[str, str]) -> None:
    done = run_example("price_watch.py", examples_env)
    assert "pass 1: watch_price paused: check 1: lemon costs 190, waiting for 150" in done.stdout
    assert "pass 4: watch_price succeeded: check 4: lemon costs 145: buy now!" in done.stdout
    assert "pass 4: buy succeeded: bought lemon at 145" in done.stdout
    assert "the price API was called 4 times for 4 checks" in done.stdout


def test_price_watch_rejects_invalid_args(examples_env: dict[str, str]) -> None:
    done = run_example(
        "price_watch.py", examples_env, "run", "watch_price", '{"item": "lemon"}', expect=1
    )
    assert "failed" in done.stdout
    assert "price" in done.stdout


def test_temperature_reacts_to_state_changes(examples_env: dict[str, str]) -> None:
    done = run_example("temperature.py", examples_env)
    assert "| temperature 27 -> 31" in done.stdout
    assert "| 31 °C: fan on" in done.stdout
    assert "reading 27: record_temperature (record_temperature)\n" in done.stdout
    assert "recent temperatures: [31, 33, 26]" in done.stdout
    assert "event log: 5 temperature changes, 1 too_hot" in done.stdout


def test_home_security_event_chain(examples_env: dict[str, str]) -> None:
    done = run_example("home_security.py", examples_env)
    chain = done.stdout.split("== ")
    door = next(part for part in chain if part.startswith("door_opened, then run()"))
    assert "check_door   succeeded (door_opened)" in door
    assert "sound_alarm  succeeded (intruder_suspected) siren on" in door
    assert "call_owner   paused    (intruder_suspected)" in door
    answer = next(part for part in chain if part.startswith("owner_answer"))
    assert "call_owner   succeeded (owner_answer)" in answer
    assert "silence      succeeded (false_alarm) siren off" in answer
    assert "back door opened, not armed: nothing to do" in done.stdout
    assert "6 finished runs, 0 still waiting" in done.stdout


def test_infinite_loop_reads_once_per_iteration(examples_env: dict[str, str]) -> None:
    done = run_example("infinite_loop.py", examples_env)
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [f"iteration {n}" for n in range(1, 6)]
    assert "5 iterations, meter read 5 times" in done.stdout
    assert "heartbeat ran 5 times" in done.stdout


def test_long_sleep_wakes_at_next_wakeup(examples_env: dict[str, str]) -> None:
    done = run_example("long_sleep.py", examples_env)
    assert "started: paused: ['email to ana@example.com: welcome to your trial']" in done.stdout
    assert "nothing runs until then" in done.stdout
    assert "woke (_timer): succeeded: email to ana@example.com: your trial has ended" in done.stdout
    assert "next wake-up: None" in done.stdout


def test_fastapi_example_runs_its_demo(examples_env: dict[str, str]) -> None:
    done = run_example("fastapi_app.py", examples_env)
    assert "POST /orders -> 200" in done.stdout
    assert "'status': 'paused'" in done.stdout
    assert "paying twice -> 404" in done.stdout


@pytest.fixture
def fastapi_example(
    examples_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("TTFLOW_ASYNC_EXAMPLES_DIR", examples_env["TTFLOW_ASYNC_EXAMPLES_DIR"])
    spec = importlib.util.spec_from_file_location(
        "fastapi_app_example", EXAMPLES / "fastapi_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


async def test_fastapi_app_runs_a_workflow_per_request(fastapi_example: ModuleType) -> None:
    app = fastapi_example.app
    async with fastapi_example.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            created = await http.post("/orders", json={"item": "pear", "quantity": 2})
            assert created.status_code == 200
            (run,) = created.json()["runs"]
            assert run["status"] == "paused"
            assert run["logs"] == [f"reserved 2 x pear (rsv-pear-2-{run['run_id'][:8]})"]

            invalid = await http.post("/orders", json={"item": "pear"})
            assert invalid.status_code == 422

            waiting = (await http.get("/orders/waiting")).json()
            assert [w["run_id"] for w in waiting] == [run["run_id"]]
            assert waiting[0]["waiting_for"]["name"] == f"payment:{run['run_id']}"

            paid = await http.post(f"/orders/{run['run_id']}/payment", json={"amount": 300})
            assert paid.status_code == 200
            assert paid.json()["runs"][0]["status"] == "succeeded"
            assert paid.json()["runs"][0]["logs"][-1] == "paid 300: order confirmed"

            again = await http.post(f"/orders/{run['run_id']}/payment", json={"amount": 300})
            assert again.status_code == 404
            assert (await http.get("/orders/waiting")).json() == []


def test_lambda_example_handles_every_kind_of_event(examples_env: dict[str, str]) -> None:
    done = run_example("lambda/handler.py", examples_env)
    assert "== function URL: approve" in done.stdout
    assert "approved by ana: deploying" in done.stdout
    assert '"itemIdentifier": "m2"' in done.stdout
    assert "order 7 confirmed" in done.stdout
    assert "Hello, λ!" in done.stdout
    assert "Unknown keys 'oops'" in done.stdout


def test_lambda_template_is_valid_sam() -> None:
    import yaml  # type: ignore[import-untyped]

    class CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]
        """Reads CloudFormation's short tags (!Ref, !Sub, !If, ...) as plain values."""

    def any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node, deep=True)}
        assert isinstance(node, yaml.MappingNode)
        return {suffix: loader.construct_mapping(node, deep=True)}

    CloudFormationLoader.add_multi_constructor("!", any_tag)
    template = yaml.load(
        (EXAMPLES / "lambda" / "template.yaml").read_text(), Loader=CloudFormationLoader
    )
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    function = template["Resources"]["FlowsFunction"]["Properties"]
    assert function["Handler"] == "handler.handler"
    assert (EXAMPLES / "lambda" / "handler.py").exists()
    assert "TTFLOW_ASYNC_STORE" in function["Environment"]["Variables"]
    assert function["FunctionUrlConfig"]["AuthType"] == "AWS_IAM"
    events = {event["Type"]: event["Properties"] for event in function["Events"].values()}
    assert events["SQS"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "ScheduleExpression" in events["ScheduleV2"]


def test_lambda_template_grants_the_store_actions() -> None:
    template = (EXAMPLES / "lambda" / "template.yaml").read_text()
    assert "Handler: handler.handler" in template
    assert "ReportBatchItemFailures" in template
    for action in (
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:Query",
    ):
        assert action in template
    for init_only in ("s3:CreateBucket", "dynamodb:CreateTable", "dynamodb:DescribeTable"):
        assert init_only not in template


def test_fan_out_checks_items_concurrently_and_replays_without_calling_again(
    examples_env: dict[str, str],
) -> None:
    done = run_example("fan_out.py", examples_env)
    assert "| 4 in stock, out of stock: cake, honey" in done.stdout
    assert "restock  succeeded  {'missing': ['cake', 'honey'], 'suppliers': [12, 4]}" in done.stdout
    assert "warehouse calls: 6 before the wait, 2 after" in done.stdout


def test_testing_example_passes_under_pytest(examples_env: dict[str, str]) -> None:
    """examples/testing is a user's test suite: it runs with its own pytest settings and
    gets the ttflow_client and ttflow_clock fixtures from the installed plugin."""
    folder = EXAMPLES / "testing"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env=examples_env,
        cwd=folder,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "3 passed" in done.stdout
