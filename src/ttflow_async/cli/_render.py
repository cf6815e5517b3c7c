"""How the command line shows things: run summaries, status, history, progress.

Human output goes through rich (colour only on a terminal, and never when ``NO_COLOR``
is set); ``--json`` output is one JSON document on stdout. Records are read through
small protocols so that this module depends on their attributes only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import anyio
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

_T = TypeVar("_T")

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "bold red",
    "paused": "yellow",
    "blocked": "bold magenta",
    "cancelled": "dim",
}

#: Past this many seconds a running ``run()`` shows a live progress line on a terminal.
PROGRESS_DELAY_SECONDS = 0.5


class RunResultLike(Protocol):
    """The attributes of a ``WorkflowRunResult`` that the summary shows."""

    @property
    def workflow_name(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def logs(self) -> Sequence[str]: ...
    @property
    def triggered_by(self) -> str | None: ...


class PausedRunLike(Protocol):
    """The attributes of a suspended run that ``status`` shows."""

    @property
    def workflow_name(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def since(self) -> datetime: ...
    @property
    def waiting_for(self) -> Mapping[str, Any]: ...


class HistoryEntryLike(Protocol):
    """The attributes of a run-history entry that ``history`` shows."""

    @property
    def workflow_name(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def result(self) -> Any: ...
    @property
    def error_message(self) -> str | None: ...


class EventLogEntryLike(Protocol):
    """The attributes of an event-log entry that ``events`` shows."""

    @property
    def event_name(self) -> str: ...
    @property
    def args(self) -> Any: ...
    @property
    def timestamp(self) -> datetime: ...


def make_console(*, stderr: bool = False) -> Console:
    """Build the stdout (or stderr) console.

    Off a terminal the width is unbounded so that piped output is never wrapped.
    """
    console = Console(stderr=stderr, soft_wrap=True, highlight=False)
    if not console.is_terminal:
        console.width = 10_000
    return console


def to_jsonable(value: Any) -> Any:
    """Turn records (pydantic models), datetimes and containers into JSON values."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(console: Console, value: Any) -> None:
    """Print one JSON document (records included) on ``console`` without markup."""
    console.print(
        json.dumps(to_jsonable(value), indent=2, ensure_ascii=False),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def format_time(moment: datetime | None) -> str:
    """Show an aware datetime in UTC to the second, like ``2026-01-31 12:00:05Z``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_age(moment: datetime, now: datetime | None = None) -> str:
    """Say how long ago (or how far ahead) ``moment`` is, like ``5m ago`` or ``in 2h``."""
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        amount = f"{math.floor(seconds)}s"
    elif seconds < 3600:
        amount = f"{math.floor(seconds / 60)}m"
    elif seconds < 86400:
        amount = f"{math.floor(seconds / 3600)}h"
    else:
        amount = f"{math.floor(seconds / 86400)}d"
    return f"in {amount}" if future else f"{amount} ago"


def describe_wait(waiting_for: Mapping[str, Any]) -> str:
    """Say in words what a suspended run waits for."""
    kind = waiting_for.get("kind")
    if kind == "next_run":
        return "the next run()"
    if kind == "event":
        text = f"event {waiting_for.get('name')!r}"
        timeout_at = waiting_for.get("timeout_at")
        if isinstance(timeout_at, datetime):
            text += f" (times out {format_time(timeout_at)}, {format_age(timeout_at)})"
        return text
    if kind == "timer":
        due = waiting_for.get("due")
        if isinstance(due, datetime):
            return f"timer due {format_time(due)} ({format_age(due)})"
        return "a timer"
    if kind == "blocked":
        return f"blocked: {waiting_for.get('error_message')}"
    if kind == "callback":
        name = waiting_for.get("name")
        text = f"callback {waiting_for.get('callback_id')}" + (f" ({name})" if name else "")
        due = waiting_for.get("due")
        if isinstance(due, datetime):
            text += f", times out {format_time(due)} ({format_age(due)})"
        return text
    if kind == "child":
        return f"child run {waiting_for.get('run_id')}"
    return json.dumps(to_jsonable(dict(waiting_for)), ensure_ascii=False)


def status_text(status: str) -> Text:
    """A run status word, coloured on a terminal."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _print_table(console: Console, table: Table) -> None:
    """Print a table; off a terminal, without the padding that trails each line."""
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        console.print(line.rstrip(), markup=False, highlight=False)


def print_run_summary(console: Console, results: Sequence[RunResultLike]) -> None:
    """Print each run of a ``run()``: workflow, run id, status, error and log lines."""
    if not results:
        console.print("No workflow ran: nothing was triggered and no suspended run was due.")
        return
    for result in results:
        line = Text()
        line.append(result.workflow_name, style="bold")
        line.append("  ")
        line.append_text(status_text(result.status))
        line.append(f"  run {result.run_id}", style="cyan")
        if result.triggered_by:
            line.append(f"  (triggered by {result.triggered_by})", style="dim")
        console.print(line)
        if result.error_message:
            console.print(Text(f"    error: {result.error_message}", style="red"))
        for log_line in result.logs:
            console.print(Text(f"    | {log_line}"))
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = Text(f"{len(results)} run{'s' if len(results) != 1 else ''}: ")
    for index, (status, count) in enumerate(counts.items()):
        if index:
            summary.append(", ")
        summary.append(f"{count} ")
        summary.append_text(status_text(status))
    console.print(summary)


WIDE_STATUS = 140
"""Terminals at least this wide show ``status`` as a table; narrower ones, as blocks."""


def print_status(
    console: Console,
    paused: Sequence[PausedRunLike],
    *,
    locked: bool,
    next_wakeup: datetime | None,
    store: str | None = None,
    holder: str | None = None,
    held_until: datetime | None = None,
) -> None:
    """Print the store, the lock (who holds it, until when), the next wake-up and every
    suspended run with what it waits for."""
    if store is not None:
        console.print(Text(f"Store: {store}"), overflow="ignore", crop=False)
    lock_line = Text("Lock: ")
    if locked and holder:
        until = f" until {format_time(held_until)}" if held_until is not None else ""
        lock_line.append(f"held by {holder}{until}", style="yellow")
    else:
        lock_line.append(
            "held by a runner" if locked else "free", style="yellow" if locked else "green"
        )
    console.print(lock_line)
    if next_wakeup is not None:
        console.print(f"Next wake-up: {format_time(next_wakeup)} ({format_age(next_wakeup)})")
    if not paused:
        console.print("No suspended runs.")
        return
    if console.is_terminal and console.width < WIDE_STATUS:
        # Narrow terminals: one block per run, so no id is ever cut or wrapped.
        for run in paused:
            blocked = run.waiting_for.get("kind") == "blocked"
            head = Text(run.workflow_name, style="bold")
            head.append(f"  run {run.run_id}", style="cyan")
            console.print(head, overflow="ignore", crop=False)
            console.print(f"    since {format_time(run.since)} ({format_age(run.since)})")
            what, paren, rest = describe_wait(run.waiting_for).partition(" (")
            wait = Text("    waiting for ")
            wait.append(what, style="bold magenta" if blocked else "")
            console.print(wait, overflow="ignore", crop=False)
            if paren:
                console.print(Text(f"    ({rest}"), overflow="fold")
        console.print(f"{len(paused)} suspended run{'s' if len(paused) != 1 else ''}.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("workflow", "run id", "since", "waiting for"):
        table.add_column(column, no_wrap=column != "waiting for", overflow="fold")
    for run in paused:
        blocked = run.waiting_for.get("kind") == "blocked"
        table.add_row(
            Text(run.workflow_name, style="bold"),
            Text(run.run_id, style="cyan"),
            f"{format_time(run.since)} ({format_age(run.since)})",
            Text(describe_wait(run.waiting_for), style="bold magenta" if blocked else ""),
        )
    _print_table(console, table)
    console.print(f"{len(paused)} suspended run{'s' if len(paused) != 1 else ''}.")


#: How much of a result or an error message one ``history`` row shows.
OUTCOME_MAX_CHARS = 200


def describe_outcome(entry: HistoryEntryLike) -> Text:
    """A finished run's result (compact JSON) or its error message, cut to one screenful."""
    if entry.error_message:
        text, style = entry.error_message, "red"
    elif entry.result is None:
        return Text("")
    else:
        text = json.dumps(to_jsonable(entry.result), ensure_ascii=False, separators=(", ", ": "))
        style = ""
    text = " ".join(text.split())
    if len(text) > OUTCOME_MAX_CHARS:
        text = text[: OUTCOME_MAX_CHARS - 1] + "…"
    return Text(text, style=style)


def print_history(console: Console, entries: Sequence[HistoryEntryLike]) -> None:
    """Print finished runs, oldest first, each with its result or error message."""
    if not entries:
        console.print("No finished runs yet.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("finished", "workflow", "run id", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("result / error", overflow="fold", min_width=12)
    for entry in entries:
        table.add_row(
            format_time(entry.timestamp),
            Text(entry.workflow_name, style="bold"),
            Text(entry.run_id, style="cyan"),
            status_text(entry.status),
            describe_outcome(entry),
        )
    _print_table(console, table)


def print_event_log(console: Console, entries: Sequence[EventLogEntryLike]) -> None:
    """Print delivered events, oldest first."""
    if not entries:
        console.print("No events delivered yet.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("delivered", "event", "args"):
        table.add_column(column, no_wrap=column != "args", overflow="fold")
    for entry in entries:
        table.add_row(
            format_time(entry.timestamp),
            Text(entry.event_name, style="bold"),
            Text(json.dumps(to_jsonable(entry.args), ensure_ascii=False)),
        )
    _print_table(console, table)


class _LogCounter(logging.Handler):
    """Counts the workflow log lines emitted while a ``run()`` is in flight."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.count = 0
        self.last = ""
        self.run_ids: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = record.getMessage()
        run_id = getattr(record, "run_id", None)
        if isinstance(run_id, str):
            self.run_ids.add(run_id)


@asynccontextmanager
async def _workflow_log_counter() -> AsyncIterator[_LogCounter]:
    logger = logging.getLogger("ttflow_async.workflow")
    handler = _LogCounter()
    previous_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


ProgressCallback = Callable[[int, int], None]


async def with_progress(
    console: Console, work: Callable[[ProgressCallback | None], Awaitable[_T]]
) -> _T:
    """Await ``work(on_progress)``; on a terminal, show a live line once it takes a while.

    The line shows the elapsed time, the runs finished out of those scheduled so far in
    the pass (from the engine's ``on_progress`` callback) and the latest workflow log
    line. It disappears when the work is done, so the summary that follows stands alone.
    """
    if not console.is_terminal:
        return await work(None)
    outcome: list[_T] = []
    errors: list[Exception] = []
    counts = [0, 0]

    def on_progress(finished: int, scheduled: int) -> None:
        counts[:] = [finished, scheduled]

    async with _workflow_log_counter() as counter, anyio.create_task_group() as group:

        async def show() -> None:
            await anyio.sleep(PROGRESS_DELAY_SECONDS)
            started = time.monotonic()
            with console.status("running workflows…") as status:
                while True:
                    elapsed = time.monotonic() - started + PROGRESS_DELAY_SECONDS
                    message = f"running workflows… {elapsed:.0f}s"
                    finished, scheduled = counts
                    if scheduled:
                        message += f", runs finished {finished}/{scheduled}"
                    if counter.count:
                        message += f", {counter.count} log lines, last: {counter.last[:60]}"
                    status.update(Text(message))
                    await anyio.sleep(0.2)

        async def do_work() -> None:
            # Kept out of the task group so the caller sees the error itself, not a group.
            try:
                outcome.append(await work(on_progress))
            except Exception as exc:
                errors.append(exc)
            finally:
                group.cancel_scope.cancel()

        group.start_soon(show)
        group.start_soon(do_work)
    if errors:
        raise errors[0]
    return outcome[0]
