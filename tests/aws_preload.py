"""Warms botocore in the forkserver of ``tests/workers/forkserver.py``.

Building the first S3 or DynamoDB client of a session parses the service's model and
endpoint rules (~0.25 s of CPU on this VM). Done here once, in the session every store
of the process uses by default, it is already done in each forked runner.
"""

from __future__ import annotations

import asyncio
import importlib

import aioboto3

from ttflow_async._stores import _aws

# The AWS stores, imported here so that no runner imports them on its first run().
for _module in ("ttflow_async._stores._s3", "ttflow_async._stores._dynamodb"):
    importlib.import_module(_module)

#: The session every runner's stores use (the store's per-process default).
SESSION = _aws.default_session(aioboto3)


async def _build_clients() -> None:
    # No request is sent, so the endpoint need not answer.
    for service in ("s3", "dynamodb"):
        async with SESSION.client(
            service,  # type: ignore[call-overload]
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="preload",
            aws_secret_access_key="preload",
        ):
            pass


asyncio.run(_build_clients())
