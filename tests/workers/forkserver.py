"""Where the crash and race tests start their runner processes from.

Each runner is a real OS process (it can be SIGKILLed, holds its own locks and
connections), forked from a ``multiprocessing`` forkserver that has imported the runner
modules and warmed the engine (``tests/workers/preload.py``, ``tests/aws_preload.py``),
so a child costs a fork instead of a fresh interpreter and ~0.5 s of imports.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context

#: What the server imports: every module whose functions the tests run as processes.
#: One list for all, as a test process has one forkserver, started by its first user.
PRELOAD = [
    "tests.workers.durability_flows",
    "tests.workers.inbox_writer",
    "tests.aws_workers",
    "tests.workers.preload",
    "tests.aws_preload",
]


def forkserver() -> multiprocessing.context.ForkServerContext:
    """A multiprocessing context whose processes fork from the preloaded server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context
