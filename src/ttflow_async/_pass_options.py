"""What ``setup()`` allows a pass, kept apart from the pass itself.

The client needs these at setup; the pass machinery (``_runner*``) is imported only when
a pass has work to do, so that an idle ``run()`` of a fresh process never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["MARKER_PREFIX", "PassOptions", "check_positive"]

MARKER_PREFIX = "am-"
"""Blob ids of at-most-once attempt markers start with this (never collected as garbage)."""


class PassOptions:
    """What a pass is allowed to do (from ``setup()``); a plain class (no dataclass
    built at import)."""

    def __init__(
        self,
        max_concurrency: int = 64,
        max_waves: int = 100,
        run_timeout: float | None = None,
        idempotency_window: float = 86_400.0,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_waves = max_waves
        self.run_timeout = run_timeout
        self.idempotency_window = idempotency_window
        self.clock = clock


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 for an option, else ValueError naming it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number greater than 0, got {value!r}")
    return float(value)
