"""Shared pieces of the command line: the session, app loading, JSON args, exit codes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from .. import (
    Client,
    InvalidStateError,
    StateLockedError,
    TtflowError,
    UnknownCallbackError,
    UnknownRunError,
    UnknownTriggerError,
    WorkflowRunResult,
    setup,
)
from .._entry import locked_sentence, strict_json_loads
from ._render import make_console, print_json, print_run_summary
from ._tasks import beside

EXIT_OK = 0
"""Every command and every run went well."""
EXIT_FAILED = 1
"""Some run failed or is blocked (or the store failed)."""
EXIT_USAGE = 2
"""Bad usage or bad input: malformed JSON, an unknown trigger, an invalid state."""
EXIT_LOCKED = 75
"""Another runner holds the store's lock (``EX_TEMPFAIL``: try again later)."""

APP_ENV_VAR = "TTFLOW_ASYNC_APP"
DASHBOARD_TOKEN_ENV_VAR = "TTFLOW_ASYNC_DASHBOARD_TOKEN"

_T = TypeVar("_T")

# Set while ``--app`` imports the user's module: a bare ``run_cli(client)`` at the
# bottom of that module must not take over the process during the import.
loading_app = threading.Event()


class UsageError(Exception):
    """Bad input from the command line: reported with exit code 2, nothing run."""


def parse_json_argument(text: str | None, what: str) -> Any:
    """Parse a JSON argument strictly (no NaN, infinities or runaway nesting); ``None``
    stays ``None``.

    Raises:
        UsageError: the text is not strict JSON; the message shows how to quote it.
    """
    if text is None:
        return None
    try:
        return strict_json_loads(text)
    except ValueError as exc:
        raise UsageError(
            f"{what} is not valid JSON: {exc}. Give one JSON value and quote it for the "
            """shell, for example '{"item": "lemon", "price": 150}' or '"text"'."""
        ) from None


def load_client(target: str) -> Client:
    """Load the ``Client`` named by ``path/to/file.py:attribute`` or ``module:attribute``.

    The attribute defaults to ``client``. The file's folder is put first on
    ``sys.path`` (as ``python file.py`` does) so that its sibling imports work.

    Raises:
        UsageError: the file, module or attribute does not exist or is not a Client.
    """
    source, sep, attribute = target.rpartition(":")
    if not sep or not all(part.isidentifier() for part in attribute.split(".")):
        source, attribute = target, "client"
    if not source:
        raise UsageError(f"--app {target!r} names no file or module; use path/to/file.py:client")
    module = _import_source(source)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            found = sorted(
                name for name, value in vars(module).items() if isinstance(value, Client)
            )
            hint = f"; Client objects found there: {', '.join(found)}" if found else ""
            raise UsageError(f"{source} has no attribute {attribute!r}{hint}")
        obj = getattr(obj, part)
    if not isinstance(obj, Client):
        raise UsageError(
            f"{source}:{attribute} is a {type(obj).__name__}, not a ttflow_async Client "
            "(the object returned by setup())"
        )
    return obj


def _import_source(source: str) -> Any:
    path = Path(source)
    looks_like_file = source.endswith(".py") or os.sep in source or "/" in source
    loading_app.set()
    try:
        if looks_like_file or path.is_file():
            return _import_file(path)
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            return importlib.import_module(source)
        except ModuleNotFoundError as exc:
            if exc.name and source.startswith(exc.name):
                raise UsageError(
                    f"cannot find the module {source!r}; give a file (path/to/file.py:client) "
                    "or an importable module (package.module:client)"
                ) from None
            raise
    finally:
        loading_app.clear()


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"--app: the file {str(path)!r} does not exist")
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() else "ttflow_async_app"
    if name in sys.modules:
        name = f"_ttflow_async_app_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--app: {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclass
class Session:
    """What every command needs: the client (loaded on first use) and the consoles."""

    client: Client | None
    app_target: str | None = None
    json_requested: bool = False
    store_spec: str | None = None
    _store_checked: bool = False
    out: Console = field(default_factory=make_console)
    err: Console = field(default_factory=lambda: make_console(stderr=True))

    def get_client(self) -> Client:
        client = self._loaded_client()
        if not self._store_checked:
            self._store_checked = True
            if self.store_spec is not None:
                try:
                    client.store = setup(self.store_spec).store
                except (TtflowError, ValueError) as exc:
                    self.fail(UsageError(f"--store {self.store_spec!r}: {exc}"), as_json=False)
            if client.store.description == "onmemory":
                self.err.print(
                    "Note: the onmemory store keeps nothing after this command exits.",
                    markup=False,
                )
        return client

    def _loaded_client(self) -> Client:
        if self.client is None:
            if not self.app_target:
                self.fail(
                    UsageError(
                        f"no app given: pass --app path/to/flows.py:client (or set {APP_ENV_VAR})"
                    ),
                    as_json=False,
                )
            try:
                self.client = load_client(self.app_target)
            except UsageError as exc:
                self.fail(exc, as_json=False)
            except Exception as exc:
                # The user's module raised while being imported: show where, then exit 2.
                self.err.print(_user_traceback(exc), markup=False, highlight=False, end="")
                self.fail(
                    UsageError(f"importing {self.app_target!r} failed: {exc!r}"),
                    as_json=False,
                )
        return self.client

    def call(
        self,
        work: Callable[[Client], Awaitable[_T]],
        *,
        as_json: bool,
        what: str = "the trigger",
        stored: bool = False,
    ) -> _T:
        """Run ``work(client)`` inside ``async with client``; map errors to exit codes.

        SIGINT and SIGTERM cancel the work, so that a pass in flight releases the lease
        on its way out (nothing of it is committed); the process then exits 130 or 143.

        Args:
            work: what to do with the entered client.
            as_json: report errors as JSON on stdout.
            what: what a held lock leaves queued ("the trigger", "the event").
            stored: the item is in the inbox whatever the lock says (``send_event``).
        """
        client = self.get_client()
        received: list[int] = []

        async def enter_and_work() -> _T:
            async with client:
                return await work(client)

        async def entered() -> list[_T]:
            on_main = threading.current_thread() is threading.main_thread()
            return await beside(
                enter_and_work,
                (lambda scope: _cancel_on_signal(scope, received)) if on_main else None,
            )

        try:
            outcome = anyio.run(entered)
        except TtflowError as exc:
            self.fail(exc, as_json=as_json, what=what, stored=stored)
        if received:
            name = signal.Signals(received[0]).name
            self.err.print(
                f"Stopped by {name}: the unfinished work committed nothing and "
                "the lock was released.",
                markup=False,
            )
            raise typer.Exit(128 + received[0])
        return outcome[0]

    def done(self, *, as_json: bool, document: dict[str, Any], message: str) -> None:
        """Say that a command did its work: ``document`` under ``--json``, else ``message``
        (rich markup, user text escaped)."""
        if as_json:
            print_json(self.out, document)
        else:
            self.out.print(message)

    def show_results(
        self, results: Sequence[WorkflowRunResult], *, as_json: bool, **extra: str
    ) -> None:
        """Print the runs of a ``run()`` (``{**extra, "results": [...]}`` under ``--json``);
        exit 1 when some run failed or is blocked."""
        if as_json:
            print_json(self.out, {**extra, "results": results})
        else:
            print_run_summary(self.out, results)
        if any(result.status in ("failed", "blocked") for result in results):
            raise typer.Exit(EXIT_FAILED)

    def fail(
        self,
        exc: Exception,
        *,
        as_json: bool,
        what: str = "the trigger",
        stored: bool = False,
    ) -> NoReturn:
        """Report ``exc`` (on stderr, or as JSON on stdout) and exit with its code."""
        code = exit_code_for(exc)
        message = str(exc)
        queued = False
        if isinstance(exc, StateLockedError):
            queued = exc.queued or stored
            message = locked_sentence(
                queued=queued,
                what=what,
                otherwise="try again later, or pass --lock-timeout SECONDS to wait",
            )
        as_json = as_json or self.json_requested
        if as_json:
            error: dict[str, Any] = {"type": type(exc).__name__, "message": message}
            if isinstance(exc, StateLockedError):
                error["queued"] = queued
            print_json(self.out, {"error": error, "exit_code": code})
        else:
            self.err.print(f"[bold red]error:[/] {escape(message)}")
        raise typer.Exit(code)


async def _cancel_on_signal(scope: anyio.CancelScope, received: list[int]) -> None:
    """Cancel ``scope`` at the first SIGINT or SIGTERM, noting which one came."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            received.append(int(signum))
            scope.cancel()
            return


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` from the first frame outside this module and importlib."""
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__
        or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by a command."""
    if isinstance(exc, StateLockedError):
        return EXIT_LOCKED
    if isinstance(
        exc,
        UsageError
        | UnknownTriggerError
        | UnknownRunError
        | UnknownCallbackError
        | InvalidStateError,
    ):
        return EXIT_USAGE
    return EXIT_FAILED


def session_of(ctx: typer.Context) -> Session:
    session = ctx.obj
    if not isinstance(session, Session):  # pragma: no cover - set by the root callback
        raise RuntimeError("the command line was started without its session")
    return session


def parse_or_fail(session: Session, text: str | None, what: str, *, as_json: bool) -> Any:
    try:
        return parse_json_argument(text, what)
    except UsageError as exc:
        session.fail(exc, as_json=as_json)


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead.")]
LockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        min=0,
        metavar="SECONDS",
        help="Wait up to this long for another runner's lock instead of failing at once.",
    ),
]
