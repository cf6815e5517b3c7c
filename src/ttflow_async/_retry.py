"""Retry policies of side effects, and journaled errors (how they are kept and rebuilt)."""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from . import _json
from ._errors import InvalidStateError, SideeffectError

RetryPredicate = Callable[[BaseException], bool]


def _seconds(value: object, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"RetryPolicy({what}=...) takes seconds or a timedelta, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"RetryPolicy({what}=...) must be finite and >= 0, got {value!r}")
    return float(value)


class RetryPolicy:
    """How a side effect is retried: attempts, backoff and which errors are retryable.

    Between attempts the run suspends on a durable timer; no process sleeps through a
    backoff. The delay after attempt ``n`` fails is
    ``min(initial_delay * backoff_rate ** (n - 1), max_delay)``; with ``jitter="full"``
    it is drawn uniformly from ``[0, that delay]`` (drawn once and journaled).

    Args:
        max_attempts: attempts in all, the first included (>= 1).
        initial_delay: the delay before the second attempt (seconds or timedelta).
        backoff_rate: the factor applied to the delay after each failed attempt (>= 1).
        max_delay: the cap on any delay (seconds or timedelta).
        jitter: ``"full"`` or ``"none"``.
        retry_on: exception types that are retried, or a predicate ``exc -> bool``.

    Raises:
        ValueError: a value out of range (checked at decoration).
    """

    __slots__ = ("backoff_rate", "initial_delay", "jitter", "max_attempts", "max_delay", "retry_on")

    def __init__(
        self,
        max_attempts: int = 6,
        initial_delay: float | timedelta = 5.0,
        backoff_rate: float = 2.0,
        max_delay: float | timedelta = 60.0,
        jitter: Literal["full", "none"] = "full",
        retry_on: tuple[type[BaseException], ...] | type[BaseException] | RetryPredicate = (
            Exception,
        ),
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(
                f"RetryPolicy(max_attempts=...) must be an int >= 1, got {max_attempts!r}"
            )
        if (
            isinstance(backoff_rate, bool)
            or not isinstance(backoff_rate, int | float)
            or not math.isfinite(backoff_rate)
            or backoff_rate < 1
        ):
            raise ValueError(
                f"RetryPolicy(backoff_rate=...) must be a finite number >= 1, got {backoff_rate!r}"
            )
        if jitter not in ("full", "none"):
            raise ValueError(f"RetryPolicy(jitter=...) must be 'full' or 'none', got {jitter!r}")
        self.max_attempts = max_attempts
        self.initial_delay = _seconds(initial_delay, "initial_delay")
        self.backoff_rate = float(backoff_rate)
        self.max_delay = _seconds(max_delay, "max_delay")
        self.jitter: Literal["full", "none"] = jitter
        self.retry_on = _check_retry_on(retry_on)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, initial_delay={self.initial_delay:g}, "
            f"backoff_rate={self.backoff_rate:g}, max_delay={self.max_delay:g}, "
            f"jitter={self.jitter!r}, retry_on={self.retry_on!r})"
        )

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried (attempts left aside)."""
        if isinstance(self.retry_on, tuple):
            return isinstance(exc, self.retry_on)
        return bool(self.retry_on(exc))

    def delay(self, failed_attempt: int) -> float:
        """The delay to wait after attempt ``failed_attempt`` (1-based) failed."""
        exponent = failed_attempt - 1
        try:
            computed = self.initial_delay * self.backoff_rate**exponent
        except OverflowError:
            computed = math.inf
        computed = min(computed, self.max_delay)
        if self.jitter == "full":
            import random  # here: only jittered retries need it (1 ms at import)

            return random.uniform(0.0, computed)
        return computed


def _check_retry_on(
    retry_on: object,
) -> tuple[type[BaseException], ...] | RetryPredicate:
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        return (retry_on,)
    if isinstance(retry_on, tuple):
        if not retry_on or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            raise ValueError(
                "RetryPolicy(retry_on=...) takes a non-empty tuple of exception types or a "
                f"predicate exc -> bool, got {retry_on!r}"
            )
        return retry_on
    if callable(retry_on):
        predicate: RetryPredicate = retry_on
        return predicate
    raise ValueError(
        "RetryPolicy(retry_on=...) takes a tuple of exception types or a predicate "
        f"exc -> bool, got {retry_on!r}"
    )


# -- journaled errors ------------------------------------------------------------------


def qualified_name(exc_type: type[BaseException]) -> str:
    """``module.Class`` of an exception type (nested classes keep their dotted path)."""
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def encode_error(exc: Exception) -> dict[str, Any]:
    """The journal record of an error: qualified type name, ``str()``, and JSON args."""
    record: dict[str, Any] = {"type": qualified_name(type(exc)), "message": _safe_str(exc)}
    if isinstance(exc, SideeffectError):
        record["se"] = [exc.error_type, exc.error_message]
        return record
    with contextlib.suppress(InvalidStateError, RecursionError):
        record["args"] = _json.normalize(list(exc.args), "exception args")
    return record


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return repr(type(exc))


def _find_type(qualified: str) -> type[Exception] | None:
    # A nested class: split at the longest importable module prefix.
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        qualname = ".".join(parts[cut:])
        try:
            target: Any = importlib.import_module(module_name)
        except Exception:  # any import failure means "not this prefix"
            continue
        for attr in qualname.split("."):
            target = getattr(target, attr, None)
            if target is None:
                return None
        if isinstance(target, type) and issubclass(target, Exception):
            return target
        return None
    return None


def rebuild_error(record: dict[str, Any], sideeffect: str) -> Exception:
    """The exception a journaled error record stands for (see SPEC §10.8)."""
    error_type = str(record.get("type"))
    message = str(record.get("message"))
    exc_type = _find_type(error_type)
    if exc_type is not None and "se" in record and issubclass(exc_type, SideeffectError):
        inner_type, inner_message = record["se"]
        return exc_type(message, error_type=str(inner_type), error_message=str(inner_message))
    args = record.get("args")
    if exc_type is not None and isinstance(args, list):
        try:
            rebuilt = exc_type(*args)
            if _safe_str(rebuilt) == message:
                return rebuilt
        except Exception:  # a type that cannot be rebuilt gets SideeffectError
            pass
    return SideeffectError(
        f"side effect {sideeffect!r} failed with {error_type}: {message} (replayed from the "
        "journal; the original exception type could not be rebuilt, so it is raised as "
        "SideeffectError with error_type and error_message)",
        error_type=error_type,
        error_message=message,
    )
