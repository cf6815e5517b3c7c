"""Journal packs: runs suspended in one pass share one journal blob (storage format 3).

Resuming a fan-out used to read one blob per run: on S3 one GET per journal, 100
requests for 100 runs. Each test runs on every store; the blob reads are observed
between the engine and the real backend.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from tests.conftest import MakeClient
from tests.faulty_store import FaultyStore
from ttflow_async import Client, CorruptStateError, RunContext, event_trigger, setup


class ReadRecorder(FaultyStore):
    """Forwards every call; remembers the journal blobs each ``get_blobs`` asked for."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.journal_reads: list[list[str]] = []

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        journals = sorted(i for i in ids if i.startswith(("j-", "jp-")))
        if journals:
            self.journal_reads.append(journals)
        return await super().get_blobs(ids)


def _waiters(client: Client) -> None:
    @client.workflow(trigger=event_trigger("start"))
    async def waiter(c: RunContext, n: int) -> None:
        await c.log(f"waiter {n}")
        got = await c.wait_event(f"go:{n % 2}")
        await c.log(f"{n} woken by {got}")


async def _start(client: Client, count: int) -> list[str]:
    for n in range(count):
        await client.send_event("start", n)
    results = await client.run()  # all of them suspend in this one pass
    assert [r.status for r in results] == ["paused"] * count
    return [r.run_id for r in sorted(results, key=lambda r: r.logs[0])]


async def _journal_blobs(client: Client) -> list[str]:
    return sorted(i for i in await client.store.list_blobs() if i.startswith(("j-", "jp-")))


async def test_runs_suspended_in_one_pass_resume_from_one_journal_read(
    make_client: MakeClient,
) -> None:
    recorder = ReadRecorder(make_client().store)
    client = setup(recorder)
    _waiters(client)
    await _start(client, 20)

    (pack,) = await _journal_blobs(client)
    assert pack.startswith("jp-")
    recorder.journal_reads.clear()
    results = await client.run("go:0", "ana")
    woken = sorted(f"{n} woken by ana" for n in range(0, 20, 2))
    assert sorted(r.logs[-1] for r in results) == woken
    assert recorder.journal_reads == [[pack]]  # ten runs resumed: one blob read
    assert await _journal_blobs(client) == [pack]  # still holds the ten that wait on


async def test_a_pack_goes_with_the_last_journal_it_holds(make_client: MakeClient) -> None:
    client = make_client()
    _waiters(client)
    first, second, third = await _start(client, 3)  # first and third wait for go:0
    (pack,) = await _journal_blobs(client)

    await client.cancel(second, "not needed")
    assert await _journal_blobs(client) == [pack]
    assert [r.ok for r in await client.check()] == [True, True]
    assert await client.run_logs(third) == ["waiter 2"]

    results = await client.run("go:0", "bo")
    assert sorted(r.run_id for r in results) == sorted([first, third])
    assert await _journal_blobs(client) == []  # nothing leaks: the pack was deleted
    assert await client.paused_runs() == []
    assert {h.status for h in await client.run_history()} == {"succeeded", "cancelled"}


async def test_a_run_resumed_from_a_pack_suspends_again_into_a_journal_of_its_own(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow(trigger=event_trigger("start"))
    async def twice(c: RunContext, n: int) -> None:
        await c.log(f"waiter {n}")
        await c.wait_event(f"first:{n}")
        await c.wait_event(f"second:{n}")
        await c.log(f"{n} done")

    await _start(client, 2)
    (pack,) = await _journal_blobs(client)
    (again,) = await client.run("first:0")
    assert again.status == "paused"
    blobs = await _journal_blobs(client)
    assert pack in blobs  # run 1 still reads its journal from the pack
    assert len(blobs) == 2  # and run 0 has one of its own
    assert [r.logs for r in await client.run("second:0")] == [["waiter 0", "0 done"]]
    assert await _journal_blobs(client) == [pack]
    await client.run("first:1")
    assert pack not in await _journal_blobs(client)
    assert [r.logs for r in await client.run("second:1")] == [["waiter 1", "1 done"]]
    assert await _journal_blobs(client) == []


async def test_a_damaged_pack_fails_the_pass_and_changes_nothing(make_client: MakeClient) -> None:
    client = make_client()
    _waiters(client)
    await _start(client, 2)
    (pack,) = await _journal_blobs(client)
    size = len((await client.store.get_blobs([pack]))[pack])
    await client.store.put_blobs({pack: b"[" + b"x" * (size - 2) + b"]"})
    paused = sorted(r.run_id for r in await client.paused_runs())

    with pytest.raises(CorruptStateError, match=f"journal pack {pack}"):
        await client.run("go:0")
    assert not await client.is_locked()
    assert sorted(r.run_id for r in await client.paused_runs()) == paused
    assert await _journal_blobs(client) == [pack]
