"""The commands of the command line, registered on a typer application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .. import Client, RunInfo
from ._progress import with_progress
from ._render import print_event_log, print_history, print_json, print_status
from ._session import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    LockTimeoutOption,
    UsageError,
    parse_or_fail,
    session_of,
)

_ABSENT = object()

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="KEY",
        help="An idempotency key: a key already used within the idempotency window "
        "starts or delivers nothing again.",
    ),
]

LimitOption = Annotated[
    int,
    typer.Option("--limit", "-n", min=0, help="Show only the most recent N entries (0: all)."),
]


def examples(prog: str, *commands: str) -> str:
    """An epilog listing example command lines, one a line."""
    lines = "\n".join(f"  {escape(prog)} {escape(command)}" for command in commands)
    return f"Examples:\n\n{lines}"


@dataclass(frozen=True)
class _Listing:
    """A command that shows the tail of one of the store's logs, oldest first."""

    name: str
    help: str
    examples: tuple[str, ...]
    read: Callable[[Client], Awaitable[Sequence[Any]]]
    show: Callable[[Console, Sequence[Any]], None]


_LISTINGS = (
    _Listing(
        "history",
        "Show finished runs, oldest first (the store keeps the most recent 1000).",
        ("history", "history -n 0 --json"),
        lambda client: client.run_history(),
        print_history,
    ),
    _Listing(
        "events",
        "Show delivered events, oldest first (the store keeps the most recent 1000).",
        ("events", "events -n 5 --json"),
        lambda client: client.event_log(),
        print_event_log,
    ),
)


def _add_listing(app: typer.Typer, prog: str, listing: _Listing) -> None:
    @app.command(listing.name, help=listing.help, epilog=examples(prog, *listing.examples))
    def listing_command(
        ctx: typer.Context, limit: LimitOption = 20, as_json: JsonOption = False
    ) -> None:
        session = session_of(ctx)
        entries = list(session.call(listing.read, as_json=as_json))
        entries = entries[-limit:] if limit else entries
        if as_json:
            print_json(session.out, {listing.name: entries})
        else:
            listing.show(session.out, entries)


def register_commands(app: typer.Typer, prog: str) -> None:
    """Add every command to ``app``; ``prog`` is how the help examples spell the program."""

    @app.command(
        "run",
        epilog=examples(
            prog,
            "run",
            "run hello",
            """run watch_price '{"item": "lemon", "price": 150}'""",
            """run approve:RUN_ID '{"by": "ana"}'""",
            "run --json --lock-timeout 30",
        ),
    )
    def run_command(
        ctx: typer.Context,
        trigger: Annotated[
            str | None,
            typer.Argument(
                metavar="TRIGGER", help="The trigger to fire; omit it to resume what is ready."
            ),
        ] = None,
        args_json: Annotated[
            str | None,
            typer.Argument(metavar="ARGS_JSON", help="The trigger's args as one JSON value."),
        ] = None,
        lock_timeout: LockTimeoutOption = None,
        key: KeyOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Fire a trigger (if given), run everything that is ready, and print each run.

        Exits 1 when some run failed or is blocked, 2 on bad input (malformed JSON, an
        unknown trigger), 75 when another runner holds the lock (the trigger is queued).
        """
        session = session_of(ctx)
        args = parse_or_fail(session, args_json, "ARGS_JSON", as_json=as_json)

        async def work(client: Client) -> list[Any]:
            return await with_progress(
                session.err,
                lambda progress: client.run(
                    trigger, args, lock_timeout=lock_timeout, on_progress=progress, key=key
                ),
            )

        session.show_results(session.call(work, as_json=as_json), as_json=as_json)

    @app.command(
        "event",
        epilog=examples(
            prog,
            """event door_opened '{"door": "front"}'""",
            "event price_dropped 140 --lock-timeout 10",
        ),
    )
    def event_command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The event's name.")],
        args_json: Annotated[
            str | None,
            typer.Argument(metavar="ARGS_JSON", help="The event's args as one JSON value."),
        ] = None,
        lock_timeout: LockTimeoutOption = None,
        key: KeyOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Send a user event durably, then run so that it is delivered now.

        The event is stored before the run: if another runner holds the lock (exit 75),
        that runner or the next run delivers it.
        """
        session = session_of(ctx)
        args = parse_or_fail(session, args_json, "ARGS_JSON", as_json=as_json)

        async def work(client: Client) -> list[Any]:
            await client.send_event(name, args, key=key)
            return await with_progress(
                session.err,
                lambda progress: client.run(lock_timeout=lock_timeout, on_progress=progress),
            )

        results = session.call(work, as_json=as_json, what="the event", stored=True)
        session.show_results(results, as_json=as_json)

    @app.command("status", epilog=examples(prog, "status", "status --json"))
    def status_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Show the lock, the next wake-up, and each suspended run with what it waits for.

        Exits 1 when some suspended run is blocked (its code changed under it).
        """
        session = session_of(ctx)

        async def work(client: Client) -> tuple[list[Any], Any, Any]:
            return (
                await client.paused_runs(),
                await client.lock_info(),
                await client.next_wakeup(),
            )

        paused, lock, wakeup = session.call(work, as_json=as_json)
        store = session.get_client().store.description
        if as_json:
            print_json(
                session.out,
                {
                    "store": store,
                    "locked": lock is not None,
                    "lock": lock,
                    "next_wakeup": wakeup,
                    "paused_runs": paused,
                },
            )
        else:
            print_status(
                session.out,
                paused,
                locked=lock is not None,
                next_wakeup=wakeup,
                store=store,
                holder=None if lock is None else lock.owner,
                held_until=None if lock is None else lock.expires_at,
            )
        if any(run.waiting_for.get("kind") == "blocked" for run in paused):
            raise typer.Exit(EXIT_FAILED)

    for listing in _LISTINGS:
        _add_listing(app, prog, listing)

    @app.command("logs", epilog=examples(prog, "logs RUN_ID", "logs RUN_ID --json"))
    def logs_command(
        ctx: typer.Context,
        run_id: Annotated[str, typer.Argument(help="The run's id (see run, status, history).")],
        as_json: JsonOption = False,
    ) -> None:
        """Print one run's log lines, and the error and traceback of a failed run."""
        session = session_of(ctx)

        async def work(client: Client) -> tuple[list[str], RunInfo | None]:
            return list(await client.run_logs(run_id)), await client.get_run(run_id)

        lines, info = session.call(work, as_json=as_json)
        error_message = info.error_message if info is not None else None
        error_traceback = info.error_traceback if info is not None else None
        if as_json:
            print_json(
                session.out,
                {
                    "run_id": run_id,
                    "logs": lines,
                    "status": info.status if info is not None else None,
                    "error_message": error_message,
                    "error_traceback": error_traceback,
                },
            )
            return
        if not lines and info is None:
            session.err.print(
                f"No log lines for run {escape(run_id)} (it has not logged, or the id is "
                "unknown or left the history)."
            )
        for line in lines:
            session.out.print(Text(line))
        if info is not None and info.status in ("failed", "cancelled", "blocked"):
            if error_message:
                session.out.print(Text(f"{info.status}: {error_message}", style="red"))
            if error_traceback:
                session.out.print(Text(error_traceback.rstrip("\n")))

    @app.command("workflows", epilog=examples(prog, "workflows", "workflows --json"))
    def workflows_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """List the registered workflows with their triggers."""
        session = session_of(ctx)
        workflows = list(session.get_client().workflows)
        if as_json:
            print_json(session.out, {"workflows": workflows})
            return
        for workflow in workflows:
            trigger = workflow.trigger
            line = Text(workflow.name, style="bold")
            line.append(f"  {trigger.kind} {trigger.name}", style="cyan")
            if workflow.description:
                line.append(f"  {workflow.description.splitlines()[0]}", style="dim")
            session.out.print(line)

    state_app = typer.Typer(
        help="Read, write or clear the store's state.",
        no_args_is_help=True,
        rich_markup_mode="rich",
    )
    app.add_typer(state_app, name="state")

    @state_app.command("get", epilog=examples(prog, "state get temperature"))
    def state_get_command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The state's name.")],
        as_json: JsonOption = False,
    ) -> None:
        """Print a state value as JSON (``null`` and a note when it is not set)."""
        session = session_of(ctx)

        async def work(client: Client) -> Any:
            return await client.get_state(name, _ABSENT)

        value = session.call(work, as_json=as_json)
        exists = value is not _ABSENT
        if as_json:
            print_json(
                session.out, {"name": name, "set": exists, "value": value if exists else None}
            )
            return
        if not exists:
            session.err.print(f"The state {escape(name)!r} is not set.")
        print_json(session.out, value if exists else None)

    @state_app.command("set", epilog=examples(prog, "state set threshold 30"))
    def state_set_command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The state's name.")],
        value_json: Annotated[str, typer.Argument(metavar="VALUE_JSON", help="One JSON value.")],
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write a state value (takes the lock; emits no event)."""
        session = session_of(ctx)
        value = parse_or_fail(session, value_json, "VALUE_JSON", as_json=as_json)

        session.call(
            lambda client: client.set_state(name, value, lock_timeout=lock_timeout),
            as_json=as_json,
        )
        session.done(
            as_json=as_json,
            document={"name": name, "value": value},
            message=f"Set {escape(name)!r}.",
        )

    @state_app.command("clear", epilog=examples(prog, "state clear --yes"))
    def state_clear_command(
        ctx: typer.Context,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")] = False,
        lock_timeout: LockTimeoutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Delete everything in the store: state, suspended runs, history, logs, inbox."""
        session = session_of(ctx)
        if not yes:
            if not session.err.is_terminal or as_json:
                session.fail(
                    UsageError("state clear deletes everything in the store; add --yes"),
                    as_json=as_json,
                )
            if not typer.confirm("Delete everything in the store?", err=True):
                session.err.print("Nothing was deleted.", markup=False)
                raise typer.Exit(EXIT_USAGE)

        session.call(lambda client: client.clear_state(lock_timeout=lock_timeout), as_json=as_json)
        session.done(as_json=as_json, document={"cleared": True}, message="The store is empty.")

    @app.command("init", epilog=examples(prog, "init"))
    def init_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Create the S3 bucket or DynamoDB table if it is missing (idempotent)."""
        session = session_of(ctx)

        session.call(lambda client: client.ensure_store(), as_json=as_json)
        session.done(as_json=as_json, document={"ready": True}, message="The store is ready.")
