"""The local file store: its files, bad files, and sharing between clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttflow_async import CorruptStateError, RunContext, setup


def _flows(spec: str):  # type: ignore[no-untyped-def]
    client = setup(spec)

    @client.workflow()
    async def hello(c: RunContext) -> None:
        await c.set_state("greeted", True)

    return client


async def test_creates_missing_folders_and_keeps_siblings(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "er" / "state.json"
    client = _flows(f"local:{root}")
    await client.run("hello")
    assert root.exists()
    assert (tmp_path / "deep" / "er" / "state.json.d" / "blobs").is_dir()
    assert (tmp_path / "deep" / "er" / "state.json.d" / "inbox").is_dir()
    assert (tmp_path / "deep" / "er" / "state.json.lock").exists()
    stored = json.loads(root.read_text())
    assert stored["format"] == "ttflow-async"
    assert stored["lease"] is None


async def test_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    root = tmp_path / "state.json"
    root.write_bytes(b"")
    client = _flows(f"local:{root}")
    assert await client.get_state("greeted") is None
    await client.run("hello")
    assert await client.get_state("greeted") is True


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"greeted": true, "_ttflow_state": {}}',  # another program's JSON
        b'{"format": "ttflow-async", "v": 99}',  # a future format
        b"\x00\x01binary",
    ],
)
async def test_foreign_or_corrupt_file_is_refused_and_untouched(
    tmp_path: Path, content: bytes
) -> None:
    root = tmp_path / "state.json"
    root.write_bytes(content)
    client = _flows(f"local:{root}")
    with pytest.raises(CorruptStateError, match=r"state\.json"):
        await client.run("hello")
    with pytest.raises(CorruptStateError):
        await client.get_state("greeted")
    with pytest.raises(CorruptStateError):
        await client.set_state("greeted", False)
    assert root.read_bytes() == content


async def test_corrupt_blob_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "state.json"
    client = _flows(f"local:{root}")
    await client.run("hello")
    head_id = json.loads(root.read_text())["head"]
    (tmp_path / "state.json.d" / "blobs" / head_id).write_bytes(b"garbage")
    with pytest.raises(CorruptStateError, match="not valid JSON"):
        await client.get_state("greeted")


async def test_two_clients_share_one_file(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    first = _flows(spec)
    await first.run("hello")
    second = setup(spec)
    assert await second.get_state("greeted") is True


_WITHOUT_FCNTL = """
import sys
sys.modules["fcntl"] = None  # what a system without POSIX file locks (Windows) has
import anyio
import ttflow_async
from ttflow_async import StoreError, setup

async def main() -> None:
    client = setup("onmemory")  # the package and the other stores still work
    await client.run()
    try:
        setup(sys.argv[1])
    except StoreError as exc:
        print(exc)

anyio.run(main)
"""


def test_without_posix_file_locks_the_local_store_says_so_and_the_rest_works(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FCNTL, f"local:{tmp_path / 'state.json'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "the local store needs POSIX file locks" in done.stdout
    assert "WSL" in done.stdout
    assert not (tmp_path / "state.json").exists()


async def test_an_inbox_item_is_read_once_per_store_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inbox items never change under their id: a pass lists the inbox up to three times
    # (the idle check, the pass, the drain before its commit), and reads each file once.
    from ttflow_async._stores._local import LocalFileStore

    store = LocalFileStore(tmp_path / "state.json")
    other = LocalFileStore(tmp_path / "state.json")
    for name in "abcde":
        await store.inbox_put(name, name.encode())
    reads: list[str] = []
    read_bytes = Path.read_bytes

    def counted(path: Path) -> bytes:
        reads.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    assert [i for i, _ in await store.inbox_list()] == list("abcde")
    assert sorted(reads) == list("abcde")
    reads.clear()
    assert await store.inbox_list() == [(n, n.encode()) for n in "abcde"]
    assert reads == []
    # The listing stays the truth: what another runner deleted is gone, what another
    # sender added is read.
    await other.inbox_delete(["b", "d"])
    await other.inbox_put("f", b"f")
    assert await store.inbox_list() == [(n, n.encode()) for n in "acef"]
    assert reads == ["f"]
