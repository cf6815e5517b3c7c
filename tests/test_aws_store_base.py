"""The shared AWS store parts: the base class, error answers, DynamoDB write batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from ttflow_async._errors import StoreError
from ttflow_async._stores._aws import client_config
from ttflow_async._stores._aws_errors import error_code, error_item, http_status
from ttflow_async._stores._aws_store import AwsStore
from ttflow_async._stores._dynamodb import DynamoDBStore
from ttflow_async._stores._dynamodb_chunks import (
    CHUNK_BYTES,
    _put,
    _request_bytes,
    _write_batches,
)
from ttflow_async._stores._s3 import S3Store

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import WriteRequestTypeDef


def _client_error(code: str, status: int, **extra: object) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "PutItem")  # type: ignore[arg-type]


def test_both_aws_stores_share_the_base_and_its_messages() -> None:
    s3 = S3Store("a-bucket", "p")
    db = DynamoDBStore("a-table")
    assert isinstance(s3, AwsStore)
    assert isinstance(db, AwsStore)
    assert s3.description == "s3://a-bucket/p"
    assert db.description == "dynamodb://a-table"
    missing = r"S3 bucket 'a-bucket' does not exist .*bucket name"
    with pytest.raises(StoreError, match=missing), s3._translated("s3:GetObject"):
        raise _client_error("NoSuchBucket", 404)
    denied = r"DynamoDB table 'a-table': access denied for dynamodb:PutItem"
    with pytest.raises(StoreError, match=denied), db._translated("dynamodb:PutItem"):
        raise _client_error("AccessDeniedException", 400)


def test_a_store_error_passes_translation_unchanged() -> None:
    db = DynamoDBStore("t")
    original = StoreError("mine")
    with pytest.raises(StoreError) as caught, db._translated("dynamodb:GetItem"):
        raise original
    assert caught.value is original


def test_error_answers_are_read_from_client_errors_only() -> None:
    exc = _client_error(
        "ConditionalCheckFailedException", 400, Item={"v": {"S": "x"}, "pk": {"S": "root"}}
    )
    assert error_code(exc) == "ConditionalCheckFailedException"
    assert http_status(exc) == 400
    assert error_item(exc) == {"v": {"S": "x"}, "pk": {"S": "root"}}
    plain = ValueError("no answer")
    assert (error_code(plain), http_status(plain), error_item(plain)) == ("", 0, {})
    assert error_item(_client_error("ConditionalCheckFailedException", 400)) == {}


def test_a_retry_mode_that_botocore_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_mode must be 'standard', 'adaptive' or 'legacy'"):
        client_config(4, "fast", 3)
    config = client_config(4, "adaptive", 3)
    assert getattr(config, "retries", None) == {"mode": "adaptive", "total_max_attempts": 3}


def test_write_batches_hold_25_requests_and_bodies_under_a_megabyte() -> None:
    small = [_put("blobs", f"id{i}", b"x" * 10) for i in range(60)]
    assert [len(b) for b in _write_batches(small)] == [25, 25, 10]
    delete: WriteRequestTypeDef = {"DeleteRequest": {"Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}}}
    assert _request_bytes(delete) == 256
    big = [_put("blob#a", f"{i:04d}", b"y" * CHUNK_BYTES) for i in range(5)]
    assert _request_bytes(big[0]) == CHUNK_BYTES * 4 // 3 + 256
    # A full chunk is ~467 kB in the JSON body: two would pass 900 kB.
    assert [len(b) for b in _write_batches(big)] == [1, 1, 1, 1, 1]
    halves = [_put("blob#b", f"{i:04d}", b"z" * (CHUNK_BYTES // 2)) for i in range(4)]
    assert [len(b) for b in _write_batches(halves)] == [3, 1]
