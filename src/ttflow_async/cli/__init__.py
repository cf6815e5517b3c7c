"""The command line: ``run_cli(client)`` for a script, ``ttflow-async`` for any module.

A single-file script becomes a command line with::

    from ttflow_async.cli import run_cli

    if __name__ == "__main__":
        run_cli(client)

and ``ttflow-async --app path/to/flows.py:client <command>`` does the same for any
module without touching it. Commands: ``run``, ``event``, ``status``, ``history``,
``events``, ``logs``, ``workflows``, ``state get|set|clear``, ``init``, ``dashboard``.

Exit codes: 0 all good; 1 some run failed or is blocked; 2 bad usage or bad input
(malformed JSON, an unknown trigger, a reserved or invalid state); 75 the store is
locked by another runner (the message says whether the trigger was queued).

Needs the ``[cli]`` extra (typer and rich).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_app",
    "main",
    "run_cli",
]

MISSING_EXTRA = (
    "The ttflow-async command line needs the [cli] extra: pip install 'ttflow-async[cli]'."
)

try:
    from ._app import build_app, main, run_cli
    from ._session import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE
except ImportError as exc:
    if exc.name not in ("typer", "rich", "click") and not (exc.name or "").startswith(
        ("typer.", "rich.", "click.")
    ):
        raise
    _missing = exc

    def main() -> NoReturn:  # type: ignore[misc]
        """The console script without the extra: say which one, exit 2."""
        sys.stderr.write(f"error: {MISSING_EXTRA}\n")
        raise SystemExit(2)

    def __getattr__(name: str) -> Any:
        if name in __all__:
            raise ImportError(MISSING_EXTRA) from _missing
        raise AttributeError(f"module 'ttflow_async.cli' has no attribute {name!r}")
