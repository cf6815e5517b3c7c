"""``ensure_store()`` creates what is missing, even when opening the store probes it first."""

from __future__ import annotations

import pytest

from tests.aws_server import unique_name
from ttflow_async import RunContext, setup

pytestmark = pytest.mark.aws


async def test_ensure_store_creates_a_missing_bucket_and_the_store_then_works(
    aws_endpoint: str,
) -> None:
    client = setup(f"s3:{unique_name('s3')}")

    @client.workflow()
    async def wf(c: RunContext) -> int:
        return 1

    await client.ensure_store()
    await client.ensure_store()  # idempotent
    (result,) = await client.run("wf")
    assert result.result == 1
