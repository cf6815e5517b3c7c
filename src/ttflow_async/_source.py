"""The source text of a workflow or side effect, which its fingerprint hashes.

The stored fingerprint of the definitions says whether they changed since the last
pass (``workflows_changed``). It hashes the text ``inspect.getsource`` returns; this
module finds the same text from the code object's line positions, without ``tokenize``.
"""

from __future__ import annotations

import inspect
import linecache
import types
from collections.abc import Callable
from typing import Any


def _last_line(code: types.CodeType) -> int:
    """The last source line of ``code`` and of the code nested in it (1-based)."""
    last = code.co_firstlineno
    for _, end, _, _ in code.co_positions():
        if end is not None and end > last:
            last = end
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last


def source_of(fn: Callable[..., Any]) -> str:
    """The source lines of ``fn``, from its first decorator to its last line of code.

    The same text as ``inspect.getsource`` (the fingerprints of stored definitions stay
    the same) for every function but one whose last lines hold no code (a lone closing
    bracket, a trailing comment), without ``tokenize``, whose first use costs a fresh
    process ~2-3 ms.
    """
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        raise TypeError(f"{fn!r} has no code")
    lines = linecache.getlines(code.co_filename, getattr(fn, "__globals__", None))
    if not lines:
        raise OSError(f"no source for {code.co_filename}")
    first = code.co_firstlineno - 1
    end = _last_line(code)
    header = next(
        (i for i in range(first, end) if lines[i].lstrip().startswith(("def ", "async def "))),
        None,
    )
    if header is None or end <= header + 1:
        # No code line after the ``def`` line (a body on that line, or a docstring
        # alone): inspect finds where it ends.
        return inspect.getsource(fn)
    # Like inspect's block: lines after the last code that only close brackets, and
    # comments indented into the body (with the blank lines before them).
    indent = len(lines[first]) - len(lines[first].lstrip())
    for index in range(end, len(lines)):
        text = lines[index].strip()
        if not text:
            continue
        indented = len(lines[index]) - len(lines[index].lstrip()) > indent
        if not (text.startswith("#") and indented) and text.strip(")]},:; "):
            break
        end = index + 1
    return "".join(lines[first:end])
