"""pytest fixtures for testing workflows, registered through the ``pytest11`` entry point.

Installing ttflow-async makes two fixtures available in every test:

* ``ttflow_clock``: a fresh :class:`~ttflow_async.testing.TestClock`, starting now.
* ``ttflow_client``: a client over a new in-memory store that reads ``ttflow_clock``.

Register the workflows under test on ``ttflow_client`` (or build your own client with
``setup("onmemory", clock=ttflow_clock)``) and drive it with
:func:`~ttflow_async.testing.run_until_idle`.
"""

from __future__ import annotations

import pytest

from ttflow_async._client import Client, setup
from ttflow_async.testing import TestClock

__all__ = ["ttflow_client", "ttflow_clock"]


@pytest.fixture
def ttflow_clock() -> TestClock:
    """A test clock that starts at the current time and moves only when told to."""
    return TestClock()


@pytest.fixture
def ttflow_client(ttflow_clock: TestClock) -> Client:
    """A client over a fresh in-memory store whose every time reading is ``ttflow_clock``."""
    return setup("onmemory", clock=ttflow_clock)
