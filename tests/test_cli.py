"""The command line: exit codes and output, against a local file store in the test's folder.

Most tests call the console script's ``main()`` in this process (:func:`cli`): the same
argument parsing, app loading, output and exit codes, without starting an interpreter
per call. The few things only a real process shows run the installed script in a
subprocess (:func:`cli_process`, ``subprocess`` directly): the script itself, a lock
held by another process, an importable module on the path, environment-only loading,
the dashboard's server, a terminal, and imports that must not happen.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CONSOLE_SCRIPT = Path(sys.executable).with_name("ttflow-async")

FLOWS = '''
import os
from pathlib import Path

import anyio

from ttflow_async import RunContext, event_trigger, setup

HERE = Path(__file__).parent
client = setup(f"local:{HERE / 'store' / 'state.json'}")
not_a_client = 42


@client.workflow()
async def hello(c: RunContext, args):
    """Say hello."""
    await c.log(f"hello {args}")


@client.workflow()
async def boom(c: RunContext):
    raise ValueError("boom")


@client.workflow()
async def waiter(c: RunContext):
    await c.log("waiting for approval")
    answer = await c.wait_event(f"approve:{c.run_id}", timeout=3600)
    await c.log(f"approved by {answer['by']}")


@client.workflow(trigger=event_trigger("ping"))
async def on_ping(c: RunContext, args):
    await c.log(f"ping {args}")


@client.sideeffect()
async def wait_for_release(c: RunContext) -> None:
    (HERE / "holding").touch()
    while not (HERE / "release").exists():
        await anyio.sleep(0.02)


@client.workflow()
async def hold(c: RunContext):
    await wait_for_release(c)
    await c.log("released")


@client.workflow()
async def evolving(c: RunContext):
    if os.environ.get("FLOWS_VARIANT") == "new":
        await c.set_state("changed", True)
    else:
        await c.log("step one")
    await c.pause_once()
    await c.log("step two")
'''

RUN_ID = re.compile(r"run ([0-9a-f-]{36})")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTFLOW_ASYNC_APP")}
    env.update(extra)
    return env


def cli(
    app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ttflow-async --app <app_dir>/flows.py:client ARGS``, in this process.

    The console script's ``main()`` with that argv and environment, stdout and stderr
    captured. The app module it loads, the path entry it adds and the environment are
    put back afterwards, so every call loads ``flows.py`` afresh, as a process would.
    """
    from ttflow_async.cli import main

    argv = ["ttflow-async", "--app", f"{app_dir / 'flows.py'}:client", *args]
    saved_env, saved_argv, saved_path = dict(os.environ), sys.argv, list(sys.path)
    loaded = set(sys.modules)
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env or _env())
    sys.argv = argv
    code: int = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else 0 if exited.code is None else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - loaded:
            if str(app_dir) in str(getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def cli_process(
    app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``ttflow-async --app <app_dir>/flows.py:client ARGS`` script."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", f"{app_dir / 'flows.py'}:client", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env or _env(),
        stdin=subprocess.DEVNULL,
    )


def cli_json(app_dir: Path, *args: str) -> Any:
    done = cli(app_dir, *args, "--json")
    return json.loads(done.stdout)


def test_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.is_file()


def test_run_prints_the_summary_and_exits_0(app_dir: Path) -> None:
    done = cli(app_dir, "run", "hello", '{"name": "ana"}')
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout
    assert "succeeded" in done.stdout
    assert "| hello {'name': 'ana'}" in done.stdout
    assert RUN_ID.search(done.stdout)
    assert "\x1b[" not in done.stdout  # no colour off a terminal


def test_a_failed_run_exits_1_with_the_error(app_dir: Path) -> None:
    done = cli(app_dir, "run", "boom")
    assert done.returncode == 1
    assert "failed" in done.stdout
    assert "ValueError('boom')" in done.stdout


@pytest.mark.parametrize(
    "bad", ["{bad", "{'single': 'quotes'}", "NaN", "[1, Infinity]", "hello", '{"a": 1} trailing']
)
def test_malformed_json_exits_2_and_runs_nothing(app_dir: Path, bad: str) -> None:
    done = cli(app_dir, "run", "hello", bad)
    assert done.returncode == 2
    assert "ARGS_JSON is not valid JSON" in done.stderr
    assert done.stdout == ""
    assert cli_json(app_dir, "history") == {"history": []}
    assert not (app_dir / "store" / "state.json").exists()


def test_malformed_json_with_json_output_is_a_json_error(app_dir: Path) -> None:
    done = cli(app_dir, "event", "ping", "{bad", "--json")
    assert done.returncode == 2
    payload = json.loads(done.stdout)
    assert payload["exit_code"] == 2
    assert "not valid JSON" in payload["error"]["message"]
    assert cli_json(app_dir, "events") == {"events": []}


def test_unknown_trigger_exits_2(app_dir: Path) -> None:
    done = cli(app_dir, "run", "nobody_listens")
    assert done.returncode == 2
    assert "nobody_listens" in done.stderr
    payload = cli_json(app_dir, "run", "nobody_listens")
    assert payload["error"]["type"] == "UnknownTriggerError"


def test_run_json_output(app_dir: Path) -> None:
    done = cli(app_dir, "run", "hello", "[1, 2]", "--json")
    assert done.returncode == 0
    (result,) = json.loads(done.stdout)["results"]
    assert result["workflow_name"] == "hello"
    assert result["status"] == "succeeded"
    assert result["logs"] == ["hello [1, 2]"]
    assert result["triggered_by"] == "hello"


def test_approval_flow_status_and_logs(app_dir: Path) -> None:
    started = cli(app_dir, "run", "waiter")
    assert started.returncode == 0
    assert "paused" in started.stdout
    match = RUN_ID.search(started.stdout)
    assert match
    run_id = match.group(1)

    status = cli(app_dir, "status")
    assert status.returncode == 0
    assert "Lock: free" in status.stdout
    assert run_id in status.stdout
    assert f"event 'approve:{run_id}'" in status.stdout
    assert "Next wake-up" in status.stdout  # the wait's timeout

    payload = cli_json(app_dir, "status")
    assert payload["locked"] is False
    (paused,) = payload["paused_runs"]
    assert paused["run_id"] == run_id
    assert paused["waiting_for"]["kind"] == "event"

    approved = cli(app_dir, "run", f"approve:{run_id}", '{"by": "ana"}')
    assert approved.returncode == 0
    assert "succeeded" in approved.stdout
    assert "approved by ana" in approved.stdout

    logs = cli(app_dir, "logs", run_id)
    assert logs.returncode == 0
    assert logs.stdout.splitlines() == ["waiting for approval", "approved by ana"]
    assert cli_json(app_dir, "logs", run_id)["logs"] == ["waiting for approval", "approved by ana"]
    assert "No suspended runs." in cli(app_dir, "status").stdout


def test_logs_of_an_unknown_run(app_dir: Path) -> None:
    done = cli(app_dir, "logs", "no-such-run")
    assert done.returncode == 0
    assert done.stdout == ""
    assert "No log lines for run no-such-run" in done.stderr


def test_event_sends_and_runs(app_dir: Path) -> None:
    done = cli(app_dir, "event", "ping", '{"n": 1}')
    assert done.returncode == 0, done.stderr
    assert "on_ping" in done.stdout
    assert "succeeded" in done.stdout
    assert "ping {'n': 1}" in done.stdout
    events = cli_json(app_dir, "events")["events"]
    assert [(e["event_name"], e["args"]) for e in events if e["event_name"] == "ping"] == [
        ("ping", {"n": 1})
    ]
    assert "ping" in cli(app_dir, "events").stdout


def test_history_lists_finished_runs_oldest_first(app_dir: Path) -> None:
    assert cli(app_dir, "run", "hello", "1").returncode == 0
    assert cli(app_dir, "run", "boom").returncode == 1
    history = cli_json(app_dir, "history")["history"]
    assert [(h["workflow_name"], h["status"]) for h in history] == [
        ("hello", "succeeded"),
        ("boom", "failed"),
    ]
    assert [h["workflow_name"] for h in cli_json(app_dir, "history", "-n", "1")["history"]] == [
        "boom"
    ]
    table = cli(app_dir, "history").stdout
    assert table.index("hello") < table.index("boom")


def test_workflows_lists_triggers(app_dir: Path) -> None:
    done = cli(app_dir, "workflows")
    assert done.returncode == 0
    assert "hello  trigger hello  Say hello." in done.stdout
    assert "on_ping  event ping" in done.stdout


def test_state_get_set_and_clear(app_dir: Path) -> None:
    assert cli(app_dir, "state", "set", "threshold", '{"celsius": 30}').returncode == 0
    got = cli(app_dir, "state", "get", "threshold")
    assert got.returncode == 0
    assert json.loads(got.stdout) == {"celsius": 30}
    assert cli_json(app_dir, "state", "get", "threshold") == {
        "name": "threshold",
        "set": True,
        "value": {"celsius": 30},
    }

    missing = cli(app_dir, "state", "get", "nothing_here")
    assert missing.returncode == 0
    assert missing.stdout.strip() == "null"
    assert "not set" in missing.stderr

    refused = cli(app_dir, "state", "clear")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert json.loads(cli(app_dir, "state", "get", "threshold").stdout) == {"celsius": 30}

    cleared = cli(app_dir, "state", "clear", "--yes")
    assert cleared.returncode == 0
    assert cli_json(app_dir, "state", "get", "threshold")["set"] is False


def test_reserved_or_invalid_state_exits_2(app_dir: Path) -> None:
    reserved = cli(app_dir, "state", "get", "_engine")
    assert reserved.returncode == 2
    assert "reserved" in reserved.stderr
    assert cli(app_dir, "state", "set", "_engine", "1").returncode == 2
    bad_value = cli(app_dir, "state", "set", "x", "NaN")
    assert bad_value.returncode == 2
    assert "VALUE_JSON is not valid JSON" in bad_value.stderr


def test_init_prepares_the_store(app_dir: Path) -> None:
    done = cli(app_dir, "init")
    assert done.returncode == 0
    assert "ready" in done.stdout
    assert cli_json(app_dir, "init") == {"ready": True}


@pytest.fixture
def held_lock(app_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A runner in another process holding the store's lock until ``release`` exists."""
    holder = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--app", f"{app_dir / 'flows.py'}:client", "run", "hold", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + 60
    while not (app_dir / "holding").exists():
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline, "the holder never started"
        time.sleep(0.02)
    try:
        yield holder
    finally:
        (app_dir / "release").touch()
        holder.communicate(timeout=60)


def test_locked_store_exits_75_and_queues_the_trigger(
    app_dir: Path, held_lock: subprocess.Popen[str]
) -> None:
    locked = cli(app_dir, "run", "hello", '"queued"')
    assert locked.returncode == 75
    assert "queued" in locked.stderr

    nothing = cli(app_dir, "run")
    assert nothing.returncode == 75
    assert "nothing was queued" in nothing.stderr
    assert "lock_timeout=" not in nothing.stderr  # CLI words, not the Python keyword

    as_json = cli_json(app_dir, "run", "hello", '"queued twice"')
    assert as_json["exit_code"] == 75
    assert as_json["error"]["queued"] is True

    event = cli(app_dir, "event", "ping", "3")
    assert event.returncode == 75
    assert "queued in the inbox" in event.stderr
    event_json = cli_json(app_dir, "event", "ping", "4")
    assert event_json["error"]["queued"] is True  # it is in the inbox, and delivered

    assert cli(app_dir, "run", "hello", "1", "--lock-timeout", "0.1").returncode == 75
    assert cli_json(app_dir, "status")["locked"] is True

    (app_dir / "release").touch()
    out, _ = held_lock.communicate(timeout=60)
    assert held_lock.returncode == 0
    holder_results = json.loads(out)["results"]
    assert cli(app_dir, "run").returncode == 0  # whatever the holder did not drain
    history = cli_json(app_dir, "history")["history"]
    names = sorted(h["workflow_name"] for h in history)
    assert names == ["hello", "hello", "hello", "hold", "on_ping", "on_ping"]
    assert holder_results[0]["workflow_name"] == "hold"


def test_lock_timeout_waits_for_the_holder(app_dir: Path, held_lock: subprocess.Popen[str]) -> None:
    waiting = subprocess.Popen(
        [
            str(CONSOLE_SCRIPT),
            "--app",
            f"{app_dir / 'flows.py'}:client",
            "run",
            "hello",
            '"patient"',
            "--lock-timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    (app_dir / "release").touch()
    out, err = waiting.communicate(timeout=90)
    assert waiting.returncode == 0, err
    assert "hello patient" in out


def test_blocked_run_exits_1_in_run_and_status(app_dir: Path) -> None:
    assert cli(app_dir, "run", "evolving").returncode == 0
    changed = cli(app_dir, "run", env=_env(FLOWS_VARIANT="new"))
    assert changed.returncode == 1
    assert "blocked" in changed.stdout
    assert "NondeterminismError" in changed.stdout
    status = cli(app_dir, "status", env=_env(FLOWS_VARIANT="new"))
    assert status.returncode == 1
    assert "blocked: NondeterminismError" in status.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{dir}/missing.py:client", "does not exist"),
        ("{dir}/flows.py:nope", "has no attribute 'nope'; Client objects found there: client"),
        ("{dir}/flows.py:not_a_client", "is a int, not a ttflow_async Client"),
        ("no_such_module_xyz:client", "cannot find the module"),
    ],
)
def test_bad_app_exits_2(app_dir: Path, target: str, message: str) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", target.format(dir=app_dir), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=app_dir,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_app_as_an_importable_module(app_dir: Path) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", "flows:client", "workflows", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=app_dir,
    )
    assert done.returncode == 0, done.stderr
    names = [w["name"] for w in json.loads(done.stdout)["workflows"]]
    assert names == ["hello", "boom", "waiter", "on_ping", "hold", "evolving"]


def test_an_app_that_fails_to_import_exits_2_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import ttflow_async\nraise RuntimeError('no config')\n")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", f"{tmp_path / 'broken.py'}:client", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert "RuntimeError('no config')" in done.stderr


def test_missing_app_exits_2_and_the_env_var_works(app_dir: Path) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "status"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert done.returncode == 2
    assert "--app" in done.stderr
    via_env = subprocess.run(
        [str(CONSOLE_SCRIPT), "workflows"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(TTFLOW_ASYNC_APP=f"{app_dir / 'flows.py'}:client"),
    )
    assert via_env.returncode == 0
    assert "hello" in via_env.stdout


def test_bad_usage_exits_2(app_dir: Path) -> None:
    assert cli(app_dir, "no-such-command").returncode == 2
    assert cli(app_dir, "run", "hello", "1", "extra").returncode == 2
    assert cli(app_dir, "run", "--lock-timeout", "-1").returncode == 2
    assert cli(app_dir, "logs").returncode == 2


def test_help_shows_examples_for_every_command(app_dir: Path) -> None:
    top = cli(app_dir, "--help")
    assert top.returncode == 0
    for name in ("run", "event", "status", "history", "logs", "state", "init", "dashboard"):
        assert name in top.stdout
    assert "75" in top.stdout
    for command in (
        ["run"],
        ["event"],
        ["status"],
        ["history"],
        ["logs"],
        ["state", "get"],
        ["state", "clear"],
        ["init"],
    ):
        shown = cli(app_dir, *command, "--help")
        assert shown.returncode == 0
        assert "Examples:" in shown.stdout
        assert f"ttflow-async --app flows.py:client {' '.join(command)}" in shown.stdout


SCRIPT_WITH_RUN_CLI = """
from pathlib import Path

from ttflow_async import RunContext, setup
from ttflow_async.cli import run_cli

client = setup(f"local:{Path(__file__).with_name('script-store.json')}")


@client.workflow()
async def hello(c: RunContext, args):
    await c.log(f"hello from a script: {args}")


run_cli(client)  # unguarded on purpose: ttflow-async --app must still import it
"""


def test_run_cli_turns_a_script_into_a_cli(tmp_path: Path) -> None:
    script = tmp_path / "my_flows.py"
    script.write_text(SCRIPT_WITH_RUN_CLI)
    done = subprocess.run(
        [sys.executable, str(script), "run", "hello", '{"k": 1}'],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "hello from a script: {'k': 1}" in done.stdout
    shown = subprocess.run(
        [sys.executable, str(script), "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert "python my_flows.py run hello" in shown.stdout
    via_app = subprocess.run(
        [str(CONSOLE_SCRIPT), "--app", f"{script}:client", "history", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert via_app.returncode == 0, via_app.stderr
    assert [h["workflow_name"] for h in json.loads(via_app.stdout)["history"]] == ["hello"]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


def test_import_without_typer_names_the_extra() -> None:
    done = _python("import sys; sys.modules['typer'] = None; from ttflow_async.cli import run_cli")
    assert done.returncode != 0
    assert "pip install 'ttflow-async[cli]'" in done.stderr


def test_console_script_without_typer_exits_2_with_one_line() -> None:
    done = _python(
        "import sys; sys.modules['typer'] = None; from ttflow_async.cli import main; main()"
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: The ttflow-async command line needs the [cli] extra: "
        "pip install 'ttflow-async[cli]'.\n"
    )


def test_dashboard_on_a_port_in_use_exits_2_with_a_sentence(app_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli_process(app_dir, "dashboard", "--port", str(port))
    assert done.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_import_ttflow_async_pulls_in_no_cli() -> None:
    done = _python("import sys, ttflow_async; print('typer' in sys.modules, 'rich' in sys.modules)")
    assert done.stdout.split() == ["False", "False"]


def test_dashboard_without_the_web_extra_exits_2(app_dir: Path) -> None:
    done = _python(
        "import sys; sys.modules['fastapi'] = None; from ttflow_async.cli import main; "
        "sys.argv[0] = 'ttflow-async'; main()",
        "--app",
        f"{app_dir / 'flows.py'}:client",
        "dashboard",
    )
    assert done.returncode == 2
    assert "pip install 'ttflow-async[web]'" in done.stderr


def test_dashboard_help_names_the_token_variable(app_dir: Path) -> None:
    done = cli(app_dir, "dashboard", "--help")
    assert done.returncode == 0
    assert "TTFLOW_ASYNC_DASHBOARD_TOKEN" in done.stdout
    assert "127.0.0.1" in done.stdout
    assert "8000" in done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_dashboard_serves_the_app(app_dir: Path) -> None:
    import httpx

    assert cli(app_dir, "run", "waiter").returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [
            str(CONSOLE_SCRIPT),
            "--app",
            f"{app_dir / 'flows.py'}:client",
            "dashboard",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(TTFLOW_ASYNC_DASHBOARD_TOKEN="s3cret"),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the dashboard exited"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/runs/suspended", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert "waiter" in answer.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_progress_and_colour_on_a_terminal(app_dir: Path) -> None:
    """On a TTY a long run() shows a live progress line, and the summary is coloured."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--app", f"{app_dir / 'flows.py'}:client", "run", "hold"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(TERM="xterm-256color", COLUMNS="120"),
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    released = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                seen += chunk
            if not released and b"runs finished 0/1" in seen:
                (app_dir / "release").touch()
                released = True
            if process.poll() is not None and not ready:
                break
    finally:
        (app_dir / "release").touch()
        process.wait(timeout=60)
        os.close(master)
    text = seen.decode(errors="replace")
    assert released, text  # the line counted the scheduled run before it finished
    assert process.returncode == 0, text
    assert "succeeded" in text
    assert "\x1b[" in text  # colour on a terminal
