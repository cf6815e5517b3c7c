"""The commands beyond the everyday ones: ``cancel RUN_ID``, the pre-deploy ``check`` and
``dashboard``."""

from __future__ import annotations

import importlib
import socket
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
    session_of,
)


def register_admin_commands(app: typer.Typer, prog: str) -> None:
    """Add ``cancel``, ``check`` and ``dashboard`` to ``app``."""

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
