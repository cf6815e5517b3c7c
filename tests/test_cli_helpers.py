"""The command line's small pieces in-process: strict JSON arguments and ``beside``."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tests.test_cli_entry import call, make_client
from ttflow_async import StoreError
from ttflow_async.cli._tasks import beside


def test_deeply_nested_json_argument_exits_2_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(tmp_path)
    deep = "[" * 100_000 + "]" * 100_000
    assert call(client, "run", "hello", deep, "--json") == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "UsageError"
    assert "ARGS_JSON is not valid JSON: it is nested too deeply" in error["message"]
    assert call(client, "history", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"history": []}


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_non_finite_json_argument_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    assert call(make_client(tmp_path), "state", "set", "x", text) == 2
    assert "VALUE_JSON is not valid JSON" in capsys.readouterr().err


def test_beside_returns_the_result_and_stops_the_helper() -> None:
    stopped: list[bool] = []

    async def helper(_scope: anyio.CancelScope) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append(True)

    async def work() -> int:
        await anyio.lowlevel.checkpoint()
        return 7

    assert anyio.run(beside, work, helper) == [7]
    assert stopped == [True]


def test_beside_raises_the_works_error_as_itself() -> None:
    async def work() -> None:
        raise StoreError("the bucket is gone")

    async def helper(_scope: anyio.CancelScope) -> None:
        await anyio.sleep_forever()

    with pytest.raises(StoreError, match="the bucket is gone"):
        anyio.run(beside, work, helper)


def test_beside_gives_nothing_when_the_helper_cancels_the_work() -> None:
    finished: list[bool] = []

    async def work() -> None:
        await anyio.sleep_forever()
        finished.append(True)

    async def helper(scope: anyio.CancelScope) -> None:
        await anyio.lowlevel.checkpoint()
        scope.cancel()

    assert anyio.run(beside, work, helper) == []
    assert finished == []
