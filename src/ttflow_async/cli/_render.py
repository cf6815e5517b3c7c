"""How the command line shows things: run summaries, status, history, progress.

Human output goes through rich (colour only on a terminal, and never when ``NO_COLOR``
is set); ``--json`` output is one JSON document on stdout. What is shown are the public
records (``WorkflowRunResult``, ``PausedRun``, ``RunHistoryEntry``, ``EventLogEntry``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import EventLogEntry, PausedRun, RunHistoryEntry, WorkflowRunResult

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "bold red",
    "paused": "yellow",
    "blocked": "bold magenta",
    "cancelled": "dim",
}


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


def print_run_summary(console: Console, results: Sequence[WorkflowRunResult]) -> None:
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
    paused: Sequence[PausedRun],
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


def describe_outcome(entry: RunHistoryEntry) -> Text:
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


def print_history(console: Console, entries: Sequence[RunHistoryEntry]) -> None:
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


def print_event_log(console: Console, entries: Sequence[EventLogEntry]) -> None:
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
