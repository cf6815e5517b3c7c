"""The typer application behind ``run_cli`` and the ``ttflow-async`` console script."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from ._admin import register_admin_commands
from ._commands import examples, register_commands
from ._render import print_json
from ._session import (
    APP_ENV_VAR,
    EXIT_OK,
    EXIT_USAGE,
    Session,
    loading_app,
)

try:  # typer 0.2x vendors click
    from typer._click import ClickException
except ImportError:  # pragma: no cover - older typer on plain click
    from click import ClickException  # type: ignore[assignment,unused-ignore]

from .. import Client

__all__ = ["build_app", "main", "run_cli"]


def build_app(client: Client | None = None, *, prog: str | None = None) -> typer.Typer:
    """Build the typer application.

    Args:
        client: the client to drive; ``None`` adds the ``--app`` option that names it.
        prog: how the help examples spell the program (default: from ``sys.argv``).
    """
    if prog is None:
        if client is None:
            prog = "ttflow-async --app flows.py:client"
        else:
            prog = f"python {Path(sys.argv[0]).name or 'flows.py'}"

    app = typer.Typer(
        help=(
            "Run and inspect ttflow-async workflows.\n\n"
            "Exit codes: 0 all good; 1 some run failed or is blocked; 2 bad usage or input; "
            "75 the store is locked by another runner (a given trigger is queued)."
        ),
        epilog=examples(prog, "run hello", """run deploy '{"env": "prod"}'""", "status"),
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    if client is None:

        @app.callback()
        def root_with_app(
            ctx: typer.Context,
            version: VersionOption = False,
            store: StoreOption = None,
            app_target: Annotated[
                str | None,
                typer.Option(
                    "--app",
                    envvar=APP_ENV_VAR,
                    metavar="FILE.py:CLIENT",
                    help="The client to drive: path/to/flows.py:client or package.module:client.",
                ),
            ] = None,
        ) -> None:
            """Run and inspect ttflow-async workflows."""
            if not isinstance(ctx.obj, Session):
                ctx.obj = Session(client=None)
            ctx.obj.app_target = app_target
            ctx.obj.store_spec = store

    else:

        @app.callback()
        def root(
            ctx: typer.Context, version: VersionOption = False, store: StoreOption = None
        ) -> None:
            """Run and inspect ttflow-async workflows."""
            if not isinstance(ctx.obj, Session):
                ctx.obj = Session(client=client)
            ctx.obj.store_spec = store

    register_commands(app, prog)
    register_admin_commands(app, prog)
    return app


def run_cli(client: Client, argv: Sequence[str] | None = None) -> None:
    """Turn a script into a command line for ``client`` and run it (then exit).

    ``python flows.py run hello '{"k": 1}'`` fires the trigger ``hello`` and prints
    the run summary. Does nothing while ``ttflow-async --app`` imports the script.

    Args:
        client: the client the commands drive.
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    if loading_app.is_set():
        return
    args = list(sys.argv[1:] if argv is None else argv)
    _invoke(build_app(client), args, Session(client=client), prog=None)


def main() -> None:
    """The ``ttflow-async`` console script."""
    _invoke(build_app(None), sys.argv[1:], Session(client=None), prog="ttflow-async")


def _invoke(app: typer.Typer, args: list[str], session: Session, *, prog: str | None) -> None:
    """Run ``app``; usage errors become exit 2, as one JSON document under ``--json``."""
    session.json_requested = "--json" in args
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name=prog, obj=session, standalone_mode=False)
    except typer.Abort:
        session.err.print("Aborted.", markup=False)
        sys.exit(EXIT_USAGE)
    except ClickException as exc:
        if session.json_requested:
            print_json(
                session.out,
                {
                    "error": {"type": "UsageError", "message": exc.format_message()},
                    "exit_code": EXIT_USAGE,
                },
            )
        else:
            exc.show()
        sys.exit(EXIT_USAGE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ttflow-async {version('ttflow-async')}")
        raise typer.Exit(EXIT_OK)


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
]

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="SPEC",
        help="Open this store instead of the client's own (local:path, s3:bucket/prefix, "
        "dynamodb:table, onmemory).",
    ),
]
