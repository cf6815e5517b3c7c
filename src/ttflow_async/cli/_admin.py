"""The commands beyond the everyday ones: ``cancel RUN_ID``, ``callback complete|fail|
heartbeat ID``, the pre-deploy ``check`` and ``dashboard``."""

from __future__ import annotations

import importlib
import socket
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from .. import Client
from ._commands import examples
from ._render import print_json, print_run_summary
from ._session import (
    DASHBOARD_TOKEN_ENV_VAR,
    EXIT_FAILED,
    JsonOption,
    LockTimeoutOption,
    UsageError,
    exit_for_results,
    parse_or_fail,
    session_of,
)

CallbackIdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The callback's id, as the run handed it out.")
]


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

        async def work(client: Client) -> None:
            await client.cancel(run_id, reason, lock_timeout=lock_timeout)

        session.call(work, as_json=as_json, what="the cancellation")
        if as_json:
            print_json(session.out, {"cancelled": run_id})
        else:
            session.out.print(f"Cancelled run {escape(run_id)}.")

    callback_app = typer.Typer(
        help="Answer a callback a run waits for (complete, fail or heartbeat).",
        no_args_is_help=True,
    )
    app.add_typer(callback_app, name="callback")

    def answer(
        ctx: typer.Context,
        callback_id: str,
        send: Any,
        *,
        lock_timeout: float | None,
        as_json: bool,
    ) -> None:
        session = session_of(ctx)

        async def work(client: Client) -> list[Any]:
            await send(client)
            return await client.run(lock_timeout=lock_timeout)

        results = session.call(work, as_json=as_json, what="the callback's answer", stored=True)
        if as_json:
            print_json(session.out, {"callback_id": callback_id, "results": results})
        else:
            print_run_summary(session.out, results)
        exit_for_results(results)

    @callback_app.command(
        "complete",
        epilog=examples(prog, "callback complete ID", """callback complete ID '{"at": 9}'"""),
    )
    def callback_complete_command(
        ctx: typer.Context,
        callback_id: CallbackIdArgument,
        result_json: Annotated[
            str | None, typer.Argument(metavar="RESULT_JSON", help="The result as one JSON value.")
        ] = None,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Complete a callback with a JSON result, then run so the waiting run goes on."""
        result = parse_or_fail(session_of(ctx), result_json, "RESULT_JSON", as_json=as_json)
        answer(
            ctx,
            callback_id,
            lambda client: client.complete_callback(callback_id, result),
            lock_timeout=lock_timeout,
            as_json=as_json,
        )

    @callback_app.command("fail", epilog=examples(prog, "callback fail ID 'carrier lost it'"))
    def callback_fail_command(
        ctx: typer.Context,
        callback_id: CallbackIdArgument,
        error: Annotated[str, typer.Argument(help="Why it failed (the run sees this text).")],
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Fail a callback, then run: the waiting run's result() raises CallbackFailed."""
        answer(
            ctx,
            callback_id,
            lambda client: client.fail_callback(callback_id, error),
            lock_timeout=lock_timeout,
            as_json=as_json,
        )

    @callback_app.command("heartbeat", epilog=examples(prog, "callback heartbeat ID"))
    def callback_heartbeat_command(
        ctx: typer.Context,
        callback_id: CallbackIdArgument,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Record that the callback's work is still alive (restarts its heartbeat timeout)."""
        answer(
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
