"""The commands beyond the everyday ones: ``cancel RUN_ID``, ``callback complete|fail|
heartbeat ID``, the pre-deploy ``check`` and ``dashboard``."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from .. import Client
from ._commands import examples
from ._render import print_json
from ._session import (
    DASHBOARD_TOKEN_ENV_VAR,
    EXIT_FAILED,
    JsonOption,
    LockTimeoutOption,
    UsageError,
    parse_or_fail,
    session_of,
)

CallbackIdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The callback's id, as the run handed it out.")
]


@dataclass(frozen=True)
class _Answer:
    """A ``callback`` subcommand that answers a callback with a value, then runs."""

    name: str
    help: str
    examples: tuple[str, ...]
    value: Any
    """The ``typer.Argument`` of the value (a default, so one function serves all)."""
    json_metavar: str | None
    """The value is parsed as JSON and called this in errors; ``None``: plain text."""
    send: Callable[[Client, str, Any], Awaitable[None]]


_ANSWERS = (
    _Answer(
        "complete",
        "Complete a callback with a JSON result, then run so the waiting run goes on.",
        ("callback complete ID", """callback complete ID '{"at": 9}'"""),
        typer.Argument(None, metavar="RESULT_JSON", help="The result as one JSON value."),
        "RESULT_JSON",
        lambda client, callback_id, result: client.complete_callback(callback_id, result),
    ),
    _Answer(
        "fail",
        "Fail a callback, then run: the waiting run's result() raises CallbackFailed.",
        ("callback fail ID 'carrier lost it'",),
        typer.Argument(..., metavar="error", help="Why it failed (the run sees this text)."),
        None,
        lambda client, callback_id, error: client.fail_callback(callback_id, error),
    ),
)


def _answer(
    ctx: typer.Context,
    callback_id: str,
    send: Callable[[Client], Awaitable[None]],
    *,
    lock_timeout: float | None,
    as_json: bool,
) -> None:
    """Send a callback's answer durably, run, and print the runs."""
    session = session_of(ctx)

    async def work(client: Client) -> list[Any]:
        await send(client)
        return await client.run(lock_timeout=lock_timeout)

    results = session.call(work, as_json=as_json, what="the callback's answer", stored=True)
    session.show_results(results, as_json=as_json, callback_id=callback_id)


def _add_answer(callback_app: typer.Typer, prog: str, answer: _Answer) -> None:
    @callback_app.command(answer.name, help=answer.help, epilog=examples(prog, *answer.examples))
    def answer_command(
        ctx: typer.Context,
        callback_id: CallbackIdArgument,
        value: str | None = answer.value,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        given: Any = value
        if answer.json_metavar is not None:
            given = parse_or_fail(session_of(ctx), value, answer.json_metavar, as_json=as_json)
        _answer(
            ctx,
            callback_id,
            lambda client: answer.send(client, callback_id, given),
            lock_timeout=lock_timeout,
            as_json=as_json,
        )


def register_admin_commands(app: typer.Typer, prog: str) -> None:
    """Add ``cancel``, ``callback``, ``check`` and ``dashboard`` to ``app``."""

    @app.command(
        "cancel",
        epilog=examples(prog, "cancel RUN_ID", "cancel RUN_ID --reason 'order withdrawn'"),
    )
    def cancel_command(
        ctx: typer.Context,
        run_id: Annotated[str, typer.Argument(help="The suspended or blocked run (see status).")],
        reason: Annotated[
            str | None, typer.Option("--reason", help="Why, kept with the run.")
        ] = None,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """End a suspended or blocked run with status cancelled (exit 2 if it is not one)."""
        session = session_of(ctx)

        session.call(
            lambda client: client.cancel(run_id, reason, lock_timeout=lock_timeout),
            as_json=as_json,
            what="the cancellation",
        )
        session.done(
            as_json=as_json,
            document={"cancelled": run_id},
            message=f"Cancelled run {escape(run_id)}.",
        )

    callback_app = typer.Typer(
        help="Answer a callback a run waits for (complete, fail or heartbeat).",
        no_args_is_help=True,
    )
    app.add_typer(callback_app, name="callback")

    for answer in _ANSWERS:
        _add_answer(callback_app, prog, answer)

    @callback_app.command("heartbeat", epilog=examples(prog, "callback heartbeat ID"))
    def callback_heartbeat_command(
        ctx: typer.Context,
        callback_id: CallbackIdArgument,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Record that the callback's work is still alive (restarts its heartbeat timeout)."""
        _answer(
            ctx,
            callback_id,
            lambda client: client.heartbeat_callback(callback_id),
            lock_timeout=lock_timeout,
            as_json=as_json,
        )

    @app.command("check", epilog=examples(prog, "check", "check --json"))
    def check_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Replay every suspended run against the code now loaded (exit 1 if one would block).

        Nothing is written and no side effect runs: run it before deploying new code.
        """
        session = session_of(ctx)

        async def work(client: Client) -> list[Any]:
            return list(await client.check())

        results = session.call(work, as_json=as_json)
        if as_json:
            print_json(session.out, {"checked": results})
        elif not results:
            session.out.print("No suspended runs to check.")
        for result in [] if as_json else results:
            line = Text(f"{result.workflow_name}  run {result.run_id}  ")
            if result.ok:
                line.append("ok", style="green")
            else:
                line.append(f"would block: {result.problem}", style="bold magenta")
            session.out.print(line)
        if any(not result.ok for result in results):
            raise typer.Exit(EXIT_FAILED)

    @app.command(
        "dashboard",
        epilog=examples(
            prog,
            "dashboard",
            f"dashboard --token s3cret   (or set {DASHBOARD_TOKEN_ENV_VAR})",
            "dashboard --host 0.0.0.0 --port 9000 --token s3cret",
        ),
    )
    def dashboard_command(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="The port.")] = 8000,
        token: Annotated[
            str | None,
            typer.Option(
                envvar=DASHBOARD_TOKEN_ENV_VAR,
                help="The secret that enables the dashboard's write actions.",
            ),
        ] = None,
    ) -> None:
        """Serve the web dashboard (needs the \\[web] extra)."""
        session = session_of(ctx)
        try:
            web = importlib.import_module("ttflow_async.web")
        except ImportError:
            session.fail(
                UsageError("The dashboard needs the [web] extra: pip install 'ttflow-async[web]'."),
                as_json=False,
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host.strip("[]"), port))
        except OSError as exc:
            session.fail(
                UsageError(
                    f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port."
                ),
                as_json=False,
            )
        web.serve(session.get_client(), host=host, port=port, token=token)
