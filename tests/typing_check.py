"""Checked by mypy, not run: decorated side effects and workflows keep their types."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from ttflow_async import RetryPolicy, RunContext, setup

client = setup("onmemory")


@client.sideeffect
async def bare(c: RunContext, n: int, *, label: str = "") -> str:
    return f"{label}{n}"


@client.sideeffect(name="charge", retry=RetryPolicy(max_attempts=3), at_most_once=True)
async def charge(c: RunContext, amount: float) -> dict[str, float]:
    return {"amount": amount}


@client.sideeffect()
def blocking(c: RunContext, path: str) -> bytes:
    return path.encode()


@client.workflow
async def plain(c: RunContext) -> int:
    return 1


@client.workflow(trigger="go", timeout=30)
async def flow(c: RunContext, args: dict[str, Any]) -> None:
    call = assert_type(bare(c, 1, label="x"), Coroutine[Any, Any, str])
    assert_type(await call, str)
    _ = bare(c, "not an int")  # type: ignore[arg-type]
    assert_type(await bare(c, 1), str)
    assert_type(await charge(c, 9.5), dict[str, float])
    assert_type(await blocking(c, "/tmp/x"), bytes)
    batch = await c.parallel([plain_branch])
    assert_type(batch.get_results(), list[Any])
    assert_type(batch.has_failure, bool)
    assert_type(await c.patched("change"), bool)
    assert_type(await c.update_state("n", lambda n: n + 1, default=0), Any)


async def plain_branch(c: RunContext) -> int:
    return 2
