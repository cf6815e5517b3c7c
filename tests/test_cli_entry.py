"""The command line in-process (``run_cli`` / ``main`` with argv), plus the few things
only a real process shows: SIGTERM mid-pass, an 80-column pty, and docs/cli.md's
snippets run as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ttflow_async import Client, RunContext, setup
from ttflow_async.cli import main, run_cli

BIN = Path(sys.executable).parent
CONSOLE_SCRIPT = BIN / "ttflow-async"
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

FLOWS = """
from pathlib import Path

import anyio

from ttflow_async import RunContext, setup

HERE = Path(__file__).parent
client = setup(f"local:{HERE / 'state.json'}")


@client.sideeffect()
async def wait_for_release(c: RunContext) -> None:
    (HERE / "holding").touch()
    while not (HERE / "release").exists():
        await anyio.sleep(0.02)


@client.workflow()
async def hold(c: RunContext):
    await wait_for_release(c)


@client.workflow()
async def approval(c: RunContext):
    await c.wait_event(f"approve:{c.run_id}", timeout=3600)
"""


def make_client(tmp_path: Path) -> Client:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def hello(c: RunContext, args: Any) -> None:
        await c.log(f"hello {args}")

    return client


def call(client: Client, *argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        run_cli(client, list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 0


def test_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert call(make_client(tmp_path), "--version") == 0
    assert re.fullmatch(r"ttflow-async \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv",
    [["status", "--json", "--bogus"], ["run", "--json", "--lock-timeout", "x"]],
    ids=["unknown-option", "bad-value"],
)
def test_json_usage_errors_are_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert call(make_client(tmp_path), *argv) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 2
    assert document["error"]["message"]


def test_json_with_a_bad_app_is_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["ttflow-async", "--app", str(tmp_path / "no.py"), "status"])
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--json"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    document = json.loads(capsys.readouterr().out)
    assert "does not exist" in document["error"]["message"]


def test_status_names_the_opened_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = make_client(tmp_path)
    assert call(client, "status") == 0
    assert f"Store: local:{tmp_path / 'state.json'}" in capsys.readouterr().out
    assert call(client, "status", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["store"] == f"local:{tmp_path / 'state.json'}"
    assert document["lock"] is None


def test_in_process_run_and_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = make_client(tmp_path)
    assert call(client, "run", "hello", '"ana"', "--json") == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["logs"] == ["hello ana"]
    assert call(client, "history", "--json") == 0
    assert [h["workflow_name"] for h in json.loads(capsys.readouterr().out)["history"]] == ["hello"]


def results_client(tmp_path: Path) -> Client:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def answer(c: RunContext) -> Any:
        return {"answer": 42}

    @client.workflow()
    async def broken(c: RunContext) -> None:
        raise ValueError("the widget is out of stock")

    return client


def test_run_json_carries_result_error_and_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = results_client(tmp_path)
    assert call(client, "run", "answer", "--json") == 0
    (ok,) = json.loads(capsys.readouterr().out)["results"]
    assert (ok["result"], ok["error_message"], ok["error_traceback"]) == (
        {"answer": 42},
        None,
        None,
    )
    assert call(client, "run", "broken", "--json") == 1
    (bad,) = json.loads(capsys.readouterr().out)["results"]
    assert bad["result"] is None
    assert "the widget is out of stock" in bad["error_message"]
    assert "Traceback" in bad["error_traceback"]
    assert "ValueError" in bad["error_traceback"]


def test_history_shows_each_runs_result_or_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = results_client(tmp_path)
    assert call(client, "run", "answer") == 0
    assert call(client, "run", "broken") == 1
    capsys.readouterr()
    assert call(client, "history") == 0
    table = capsys.readouterr().out
    assert '{"answer": 42}' in table
    assert "the widget is out of stock" in table
    assert call(client, "history", "--json") == 0
    ok, bad = json.loads(capsys.readouterr().out)["history"]
    assert ok["result"] == {"answer": 42}
    assert "Traceback" in bad["error_traceback"]


def test_logs_of_a_failed_run_show_its_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = results_client(tmp_path)
    assert call(client, "run", "broken", "--json") == 1
    (bad,) = json.loads(capsys.readouterr().out)["results"]
    assert call(client, "logs", bad["run_id"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" in captured.out
    assert 'raise ValueError("the widget is out of stock")' in captured.out
    assert call(client, "logs", bad["run_id"], "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert "Traceback" in document["error_traceback"]
    assert "the widget is out of stock" in document["error_message"]


# -- real processes ---------------------------------------------------------------------


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTFLOW_ASYNC_APP")}
    return {**base, **extra}


def is_locked(app_dir: Path) -> bool:
    async def go() -> bool:
        return await setup(f"local:{app_dir / 'state.json'}").is_locked()

    return asyncio.run(go())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_pass_releases_the_lease(app_dir: Path, signum: signal.Signals) -> None:
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--app", f"{app_dir / 'flows.py'}:client", "run", "hold"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    deadline = time.monotonic() + 60
    while not (app_dir / "holding").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert is_locked(app_dir)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert not is_locked(app_dir)  # right after the exit, not after the lease expires
    assert f"Stopped by {signum.name}" in err


def test_status_fits_80_columns_on_a_real_terminal(app_dir: Path) -> None:
    import pty

    target = f"{app_dir / 'flows.py'}:client"
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", target, "run", "approval", "--json"],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    run_id = json.loads(done.stdout)["results"][0]["run_id"]
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--app", target, "status"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env(TERM="xterm-256color", COLUMNS="80", LINES="24", NO_COLOR="1"),
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
    finally:
        process.wait(timeout=60)
        os.close(master)
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode()).replace("\r", "").splitlines()
    assert process.returncode == 0, lines
    assert lines[0].startswith("Store: local:")  # a long path may run on: it is one token
    assert all(len(line) <= 80 for line in lines[1:]), lines
    assert any(run_id in line and "approval" in line for line in lines), lines
    assert any(f"approve:{run_id}" in line for line in lines), lines  # never wrapped mid-id
    assert any(line.startswith("    since ") for line in lines), lines


# -- every snippet of docs/cli.md ---------------------------------------------------------


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_cli_doc_snippet_runs(tmp_path: Path) -> None:
    (python_block,) = blocks("python")
    (tmp_path / "flows.py").write_text(python_block)
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "workflows.py").write_text("from flows import client\n")
    scripts = [b for b in blocks("bash") if not b.startswith("pip install")]
    for cron in blocks("cron"):
        # the command part of the crontab line, from the folder it would cd into
        command = cron.split(None, 5)[5].split("&&", 1)[1].split(">>", 1)[0]
        scripts.append(command.strip() + "\n")
    assert len(scripts) >= 4
    for script in scripts:
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=env(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"),
        )
        assert done.returncode == 0, (script, done.stdout, done.stderr)


def test_cancel_check_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("go")

    @client.workflow()
    async def hello(c: RunContext, args: Any) -> None:
        await c.log(f"hello {args}")

    assert call(client, "run", "waiter", "--json") == 0
    run_id = json.loads(capsys.readouterr().out)["results"][0]["run_id"]
    assert call(client, "check", "--json") == 0
    (checked,) = json.loads(capsys.readouterr().out)["checked"]
    assert checked["run_id"] == run_id
    assert checked["ok"] is True
    assert call(client, "cancel", run_id, "--reason", "not needed") == 0
    assert f"Cancelled run {run_id}." in capsys.readouterr().out
    assert call(client, "cancel", run_id) == 2  # no longer suspended
    assert "nothing was cancelled" in capsys.readouterr().err
    assert call(client, "run", "hello", "1", "--key", "k1", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 1
    assert call(client, "run", "hello", "1", "--key", "k1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["results"] == []


def test_store_overrides_the_clients_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(tmp_path)
    other = tmp_path / "other.json"
    assert call(client, "--store", f"local:{other}", "run", "hello", "1") == 0
    assert other.exists()
    assert not (tmp_path / "state.json").exists()
    capsys.readouterr()
    assert call(make_client(tmp_path), "--store", "onmemory", "status") == 0
    captured = capsys.readouterr()
    assert "Store: onmemory" in captured.out
    assert "keeps nothing after this command exits" in captured.err
    assert call(make_client(tmp_path), "--store", "nowhere:x", "status") == 2
    assert "unknown store spec" in capsys.readouterr().err


def test_callback_complete_and_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def shipping(c: RunContext) -> Any:
        cb = await c.create_callback(name="delivered")
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    def new_callback() -> str:
        assert call(client, "run", "shipping") == 0
        capsys.readouterr()
        assert call(client, "state", "get", "callback_id") == 0
        return str(json.loads(capsys.readouterr().out))

    first = new_callback()
    assert call(client, "callback", "complete", first, '{"at": 9}', "--json") == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (result["status"], result["result"]) == ("succeeded", {"at": 9})
    second = new_callback()
    assert call(client, "callback", "fail", second, "carrier lost it") == 1  # the run failed
    assert "carrier lost it" in capsys.readouterr().out
    assert call(client, "callback", "complete", "no-such-id") == 2


def test_status_names_the_callback_or_child_a_run_waits_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback(name="sign-off", timeout=3600)
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    @client.workflow()
    async def slow(c: RunContext) -> str:
        await c.wait_event("go")
        return "done"

    @client.workflow()
    async def parent(c: RunContext) -> str:
        return str(await c.invoke(slow))

    assert call(client, "run", "approval") == 0
    capsys.readouterr()
    assert call(client, "run", "parent", "--json") == 0
    (started,) = [
        r for r in json.loads(capsys.readouterr().out)["results"] if r["workflow_name"] == "slow"
    ]
    callback_id = asyncio.run(client.get_state("callback_id"))
    assert call(client, "status") == 0
    out = capsys.readouterr().out
    assert f"callback {callback_id} (sign-off), times out" in out
    assert f"child run {started['run_id']}" in out
