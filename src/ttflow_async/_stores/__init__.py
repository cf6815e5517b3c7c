"""Storage backends and the spec-string factory.

AWS backends are imported only when an ``s3:`` or ``dynamodb:`` spec is used, so that
``import ttflow_async`` never pulls in aioboto3.
"""

from __future__ import annotations

from typing import Any

from .._errors import UnknownRepositoryError
from ._protocol import BlobNotFound, CommitStore, RootConflict, Store

__all__ = ["BlobNotFound", "CommitStore", "RootConflict", "Store", "store_from_spec"]

ACCEPTED_FORMS = (
    '"onmemory", "local:<path>" (for example "local:state.json"), '
    '"s3:<bucket>" or "s3:<bucket>/<prefix>", "dynamodb:<table>"'
)


def store_from_spec(spec: str, **options: Any) -> Store:
    """Build the store named by a spec string such as ``"local:state.json"``."""
    if not isinstance(spec, str):
        raise UnknownRepositoryError(
            f"setup() takes a store spec string or a store object, not {type(spec).__name__}; "
            f"accepted spec strings: {ACCEPTED_FORMS}"
        )
    kind, sep, rest = spec.partition(":")
    if options and (spec == "onmemory" or kind == "local"):
        raise TypeError(
            f"setup() got options the {kind} store does not take: {sorted(options)}; the "
            "client takes lease_seconds and max_concurrency"
        )
    if spec == "onmemory":
        from ._memory import MemoryStore

        return MemoryStore()
    if sep and kind == "local" and rest:
        from ._local import LocalFileStore

        return LocalFileStore(rest)
    if sep and kind == "s3" and rest and not rest.startswith("/"):
        bucket, _, prefix = rest.partition("/")
        from ._s3 import S3Store

        return S3Store(bucket, prefix.strip("/"), **options)
    if sep and kind == "dynamodb" and rest:
        from ._dynamodb import DynamoDBStore

        return DynamoDBStore(rest, **options)
    raise UnknownRepositoryError(f"unknown store spec {spec!r}; accepted forms: {ACCEPTED_FORMS}")
