"""One behavioural suite for the Store protocol, run against every backend.

memory and local run everywhere; s3 and dynamodb run against moto's server mode over
real HTTP (``tests/aws_server.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.aws_server import create_resource, unique_name
from tests.real_servers import TARGETS, use_target
from tests.soak import SOAK
from ttflow_async._errors import CorruptStateError, StoreError
from ttflow_async._stores import BlobNotFound, RootConflict, Store, _s3, store_from_spec
from ttflow_async._stores._local import LocalFileStore
from ttflow_async._stores._memory import MemoryStore

KINDS = [pytest.param("memory"), pytest.param("local"), *TARGETS]

SpecFactory = Callable[[Literal["s3", "dynamodb"]], str]


def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "local":
        return LocalFileStore(tmp_path / "state.json")
    target = use_target(kind, request, request.getfixturevalue("monkeypatch"))
    factory: SpecFactory = request.getfixturevalue("aws_spec_factory")
    return store_from_spec(factory(target.kind))


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, empty store of each kind, opened as a client opens it.

    Open, an AWS store lends one client to every call, as in a pass; a call on a store
    that is not open builds a client of its own (tens of milliseconds of botocore), which
    ``test_open_once_and_reuse_then_work_after_close`` covers.
    """
    made = _make_store(request.param, tmp_path, request)
    await made.ensure()
    await made.open()
    yield made
    await made.aclose()


@pytest.fixture(params=["s3", "dynamodb"])
def aws_kind(request: pytest.FixtureRequest, aws_endpoint: str) -> Literal["s3", "dynamodb"]:
    """Each AWS store kind, with the emulator running."""
    kind: Literal["s3", "dynamodb"] = request.param
    return kind


def _spec(kind: str, name: str) -> str:
    return f"s3:{name}/p" if kind == "s3" else f"dynamodb:{name}"


# -- the root: compare-and-swap ---------------------------------------------------------


async def test_first_write_creates_the_root(store: Store) -> None:
    assert await store.read_root() is None
    version = await store.write_root(b'{"n": 1}', None)
    assert await store.read_root() == (b'{"n": 1}', version)


async def test_write_with_the_current_version_replaces_the_root(store: Store) -> None:
    first = await store.write_root(b"one", None)
    second = await store.write_root(b"two", first)
    assert second != first
    assert await store.read_root() == (b"two", second)
    third = await store.write_root(b"three", second, durable=False)
    assert await store.read_root() == (b"three", third)


async def test_stale_version_conflicts_and_changes_nothing(store: Store) -> None:
    first = await store.write_root(b"one", None)
    second = await store.write_root(b"two", first)
    with pytest.raises(RootConflict):
        await store.write_root(b"late", first)
    assert await store.read_root() == (b"two", second)


async def test_create_conflicts_when_a_root_exists(store: Store) -> None:
    version = await store.write_root(b"one", None)
    with pytest.raises(RootConflict):
        await store.write_root(b"other", None)
    assert await store.read_root() == (b"one", version)


async def test_unknown_version_conflicts_when_there_is_no_root(store: Store) -> None:
    other = MemoryStore()
    foreign_version = await other.write_root(b"x", None)
    with pytest.raises(RootConflict):
        await store.write_root(b"one", foreign_version + "-unknown")
    assert await store.read_root() is None


async def test_exactly_one_of_many_concurrent_writers_wins(store: Store) -> None:
    base = await store.write_root(b"base", None)
    attempts = 24

    async def attempt(index: int) -> str | None:
        try:
            return await store.write_root(f"writer {index}".encode(), base)
        except RootConflict:
            return None

    outcomes = await asyncio.gather(*(attempt(i) for i in range(attempts)))
    winners = [(i, v) for i, v in enumerate(outcomes) if v is not None]
    assert len(winners) == 1
    index, version = winners[0]
    assert await store.read_root() == (f"writer {index}".encode(), version)


# -- blobs ------------------------------------------------------------------------------


SIZES = [0, 1, 349_999, 350_000, 350_001, 1_300_000]


async def test_blobs_round_trip_whatever_their_size(store: Store) -> None:
    blobs = {f"blob-{size:x}-{i}": os.urandom(size) for i, size in enumerate(SIZES)}
    await store.put_blobs(blobs)
    assert await store.get_blobs(list(blobs)) == blobs
    some = ["blob-1-1", f"blob-{1_300_000:x}-5"]
    assert await store.get_blobs(some) == {k: blobs[k] for k in some}
    assert await store.get_blobs([]) == {}


async def test_many_blobs_in_one_call(store: Store) -> None:
    blobs = {f"state-{i:04x}-aa": f"value {i}".encode() * (i % 7) for i in range(230)}
    await store.put_blobs(blobs)
    assert await store.get_blobs(list(blobs)) == blobs
    assert sorted(await store.list_blobs()) == sorted(blobs)
    await store.delete_blobs(list(blobs)[:130])
    assert sorted(await store.list_blobs()) == sorted(list(blobs)[130:])


async def test_missing_blob_raises_blob_not_found(store: Store) -> None:
    await store.put_blobs({"journal-1-aa": b"j"})
    with pytest.raises(BlobNotFound) as caught:
        await store.get_blobs(["journal-1-aa", "journal-2-bb"])
    assert caught.value.blob_id == "journal-2-bb"


async def test_deletes_are_idempotent(store: Store) -> None:
    await store.put_blobs({"a-1-00": b"a", "b-1-00": b"b" * 400_000, "c-1-00": b"c"})
    await store.delete_blobs(["a-1-00", "b-1-00", "never-1-00"])
    await store.delete_blobs(["a-1-00", "b-1-00"])
    await store.delete_blobs([])
    assert await store.list_blobs() == ["c-1-00"]
    for gone in ("a-1-00", "b-1-00"):
        with pytest.raises(BlobNotFound):
            await store.get_blobs([gone])
    assert await store.get_blobs(["c-1-00"]) == {"c-1-00": b"c"}


async def test_list_blobs_names_every_blob_and_nothing_else(store: Store) -> None:
    assert await store.list_blobs() == []
    await store.write_root(b"root", None)
    await store.inbox_put("00000000000000000001-aa", b"event")
    ids = {"index-18c-01", "journal-18d-02", "state-18e-03"}
    await store.put_blobs(dict.fromkeys(ids, b"x" * 360_000))
    assert sorted(await store.list_blobs()) == sorted(ids)


# -- inbox ------------------------------------------------------------------------------


async def test_inbox_lists_items_in_id_order(store: Store) -> None:
    ids = [f"{t:020d}-{h}" for t, h in [(30, "c"), (10, "a"), (20, "b"), (10, "0")]]
    for item_id in ids:
        await store.inbox_put(item_id, f"item {item_id}".encode())
    listed = await store.inbox_list()
    assert [i for i, _ in listed] == sorted(ids)
    assert all(data == f"item {i}".encode() for i, data in listed)


async def test_inbox_delete_removes_only_the_named_items(store: Store) -> None:
    big = os.urandom(800_000)
    await store.inbox_put("00000000000000000001-aa", b"one")
    await store.inbox_put("00000000000000000002-bb", big)
    await store.inbox_put("00000000000000000003-cc", b"three")
    await store.inbox_delete(["00000000000000000001-aa", "00000000000000000009-zz"])
    assert await store.inbox_list() == [
        ("00000000000000000002-bb", big),
        ("00000000000000000003-cc", b"three"),
    ]
    await store.inbox_delete(["00000000000000000002-bb", "00000000000000000003-cc"])
    await store.inbox_delete(["00000000000000000002-bb"])
    assert await store.inbox_list() == []


async def test_concurrent_inbox_puts_are_all_kept(store: Store) -> None:
    ids = [f"{i:020d}-{i:x}" for i in range(40)]
    await asyncio.gather(*(store.inbox_put(i, i.encode()) for i in reversed(ids)))
    assert await store.inbox_list() == [(i, i.encode()) for i in ids]


# -- lifecycle --------------------------------------------------------------------------


async def test_ensure_is_idempotent_and_keeps_data(store: Store) -> None:
    version = await store.write_root(b"kept", None)
    await store.ensure()
    await store.ensure()
    assert await store.read_root() == (b"kept", version)


async def test_open_once_and_reuse_then_work_after_close(store: Store) -> None:
    await store.open()
    await store.open()
    version = await store.write_root(b"one", None)
    await store.put_blobs({"b-1-00": b"b"})
    assert await store.get_blobs(["b-1-00"]) == {"b-1-00": b"b"}
    await store.aclose()
    await store.aclose()
    assert await store.read_root() == (b"one", version)
    await store.open()
    assert await store.write_root(b"two", version)
    await store.aclose()


async def test_description_names_the_store(store: Store) -> None:
    assert store.description
    for attribute in ("bucket", "table"):
        name = getattr(store, attribute, None)
        if name is not None:
            assert name in store.description


# -- AWS specifics ----------------------------------------------------------------------


@pytest.mark.aws
async def test_ensure_creates_a_missing_bucket_or_table(aws_kind: str) -> None:
    name = unique_name(aws_kind)  # type: ignore[arg-type]
    created = store_from_spec(_spec(aws_kind, name))
    await created.ensure()
    await created.ensure()
    version = await created.write_root(b"root", None)
    assert await created.read_root() == (b"root", version)
    # A second, concurrent ensure from another store object is harmless too.
    await asyncio.gather(store_from_spec(_spec(aws_kind, name)).ensure(), created.ensure())
    assert await created.read_root() == (b"root", version)


@pytest.mark.aws
@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.read_root(),
        lambda s: s.write_root(b"x", None),
        lambda s: s.put_blobs({"a-1-00": b"a"}),
        lambda s: s.get_blobs(["a-1-00"]),
        lambda s: s.list_blobs(),
        lambda s: s.inbox_put("00000000000000000001-aa", b"e"),
        lambda s: s.inbox_list(),
    ],
)
async def test_a_missing_bucket_or_table_is_named_in_the_error(
    aws_kind: str, operation: Callable[[Store], Any]
) -> None:
    from botocore.exceptions import ClientError

    name = unique_name(aws_kind)  # type: ignore[arg-type]
    missing = store_from_spec(_spec(aws_kind, name))
    with pytest.raises(StoreError) as caught:
        await operation(missing)
    message = str(caught.value)
    assert name in message
    assert "does not exist" in message
    assert "ensure_store" in message
    assert isinstance(caught.value.__cause__, ClientError)


@pytest.mark.aws
async def test_service_specific_endpoint_variables_win(
    aws_kind: str, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name(aws_kind)  # type: ignore[arg-type]
    create_resource(aws_kind, name)  # type: ignore[arg-type]
    # Nothing listens on port 9: only the per-service variable can reach the emulator.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    variable = "AWS_ENDPOINT_URL_S3" if aws_kind == "s3" else "AWS_ENDPOINT_URL_DYNAMODB"
    monkeypatch.setenv(variable, aws_endpoint)
    routed = store_from_spec(_spec(aws_kind, name))
    version = await routed.write_root(b"via the service variable", None)
    assert await routed.read_root() == (b"via the service variable", version)

    monkeypatch.delenv(variable)
    unrouted = store_from_spec(_spec(aws_kind, name), max_attempts=1)
    with pytest.raises(StoreError, match="could not connect"):
        await unrouted.read_root()


@pytest.mark.aws
async def test_s3_stores_with_different_prefixes_are_separate(aws_endpoint: str) -> None:
    name = unique_name("s3")
    create_resource("s3", name)
    left, right = store_from_spec(f"s3:{name}/left"), store_from_spec(f"s3:{name}/right")
    bare = store_from_spec(f"s3:{name}")
    await left.write_root(b"left", None)
    await right.put_blobs({"a-1-00": b"right"})
    assert await right.read_root() is None
    assert await bare.read_root() is None
    assert await left.list_blobs() == []
    assert await right.list_blobs() == ["a-1-00"]
    assert await bare.list_blobs() == []


@pytest.mark.aws
async def test_dynamodb_foreign_root_is_reported_as_corrupt(aws_endpoint: str) -> None:
    import boto3

    name = unique_name("dynamodb")
    create_resource("dynamodb", name)
    boto3.client("dynamodb").put_item(
        TableName=name, Item={"pk": {"S": "root"}, "sk": {"S": "root"}, "other": {"S": "x"}}
    )
    store = store_from_spec(f"dynamodb:{name}")
    with pytest.raises(CorruptStateError, match=name):
        await store.read_root()


@pytest.mark.aws
async def test_dynamodb_table_with_another_key_schema_is_refused(aws_endpoint: str) -> None:
    import boto3

    name = unique_name("dynamodb")
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = store_from_spec(f"dynamodb:{name}")
    with pytest.raises(StoreError, match="'pk' \\(S\\) and sort key 'sk'") as caught:
        await store.ensure()
    assert name in str(caught.value)


@pytest.mark.aws
async def test_s3_delete_spans_several_delete_objects_batches(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 takes 1000 keys per DeleteObjects; quick runs split at 10 keys (the same code
    # path over 25 blobs, not 1005), a soak at the real limit.
    batch = _s3._DELETE_BATCH if SOAK else 10
    monkeypatch.setattr(_s3, "_DELETE_BATCH", batch)
    name = unique_name("s3")
    create_resource("s3", name)
    store = store_from_spec(f"s3:{name}", request_concurrency=64)
    async with _opened(store):
        ids = [f"log-{i:05x}-00" for i in range(2 * batch + 5)]
        await store.put_blobs(dict.fromkeys(ids, b"."))
        assert len(await store.list_blobs()) == len(ids)
        await store.delete_blobs(ids[:-2])
        assert sorted(await store.list_blobs()) == ids[-2:]


class _opened:
    """``async with _opened(store)``: open the store's connections for the block."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __aenter__(self) -> Store:
        await self._store.open()
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        await self._store.aclose()


@pytest.mark.aws
@pytest.mark.parametrize("same_object", [True, False])
async def test_dynamodb_deletes_leave_no_chunk_behind(aws_endpoint: str, same_object: bool) -> None:
    import boto3

    name = unique_name("dynamodb")
    create_resource("dynamodb", name)
    writer = store_from_spec(f"dynamodb:{name}")
    await writer.put_blobs({"big-1-00": os.urandom(1_100_000), "small-1-00": b"s"})
    await writer.inbox_put("00000000000000000001-aa", os.urandom(700_000))
    # A fresh store object knows no chunk counts and must look them up.
    deleter = writer if same_object else store_from_spec(f"dynamodb:{name}")
    if not same_object:
        assert [i for i, _ in await deleter.inbox_list()] == ["00000000000000000001-aa"]
    await deleter.delete_blobs(["big-1-00", "small-1-00"])
    await deleter.inbox_delete(["00000000000000000001-aa"])
    left = boto3.client("dynamodb").scan(TableName=name, ConsistentRead=True)["Items"]
    assert left == []


@pytest.mark.aws
def test_aws_store_options_are_checked_at_setup(aws_kind: str) -> None:
    from ttflow_async import setup

    spec = _spec(aws_kind, unique_name(aws_kind))  # type: ignore[arg-type]
    client = setup(spec, lease_seconds=5, request_concurrency=4, retry_mode="adaptive")
    assert client.lease_seconds == 5
    with pytest.raises(ValueError, match="retry_mode"):
        setup(spec, retry_mode="sometimes")
    with pytest.raises(ValueError, match="request_concurrency"):
        setup(spec, request_concurrency=0)
    with pytest.raises(TypeError):
        setup(spec, no_such_option=1)


@pytest.mark.aws
@pytest.mark.parametrize("method", ["read_root", "list_blobs", "inbox_list", "open", "ensure"])
async def test_a_client_that_cannot_be_built_raises_a_store_error(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    # No region anywhere: botocore refuses to build a DynamoDB client (S3 has a default
    # region), before any request is sent.
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    store = store_from_spec(_spec("dynamodb", unique_name("dynamodb")))
    with pytest.raises(StoreError, match="no AWS region configured"):
        await getattr(store, method)()
    await store.aclose()
