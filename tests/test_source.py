"""The source text a definition's fingerprint hashes: the text ``inspect.getsource`` gives.

A fingerprint that changed on upgrade would fire ``workflows_changed`` in every store
once and retry every blocked run: the text must stay the same, function by function.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ttflow_async._source import source_of

ROOT = Path(__file__).resolve().parents[1]


def decorated(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@decorated
async def multi_line_signature(
    c: object,
    args: dict[str, Any],
) -> list[int]:
    values = [n * 2 for n in args["items"]]
    return sorted(values, key=lambda v: -v)


def grouped_last_expression(a: int, b: int) -> int:
    return (
        a
        + b
    )  # fmt: skip


def trailing_comments(x: int) -> int:
    print(x)

    # a comment inside the body, after the last statement
    return x + 1
    # and one after it


def nested_function(x: int) -> int:
    def inner(y: int) -> int:
        return y * 3

    return inner(x)


def docstring_only() -> None:
    """Nothing but a docstring."""


def one_line() -> int: return 1  # fmt: skip


@pytest.mark.parametrize(
    "fn",
    [
        multi_line_signature,
        grouped_last_expression,
        trailing_comments,
        nested_function,
        docstring_only,
        one_line,
    ],
)
def test_the_source_is_what_inspect_gives(fn: Callable[..., Any]) -> None:
    assert source_of(fn) == inspect.getsource(fn)


def _functions(path: Path) -> Iterator[types.FunctionType]:
    code = compile(path.read_text(), str(path), "exec")
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if not isinstance(const, types.CodeType):
                continue
            stack.append(const)
            if const.co_name.startswith("<") or not const.co_flags & inspect.CO_OPTIMIZED:
                continue  # a comprehension, a lambda, a class body
            cells = tuple(types.CellType(None) for _ in const.co_freevars)
            yield types.FunctionType(const, {}, None, None, cells)


def test_every_function_of_the_project_has_the_source_inspect_gives() -> None:
    paths = [p for folder in ("src", "tests", "examples") for p in (ROOT / folder).rglob("*.py")]
    checked = 0
    for path in paths:
        for fn in _functions(path):
            try:
                expected = inspect.getsource(fn)
            except (OSError, TypeError):
                continue
            assert source_of(fn) == expected, f"{path}:{fn.__code__.co_firstlineno}"
            checked += 1
    assert checked > 1000
