"""What ``import ttflow_async`` loads (issue 14): no pydantic model, no heavy module.

These tests time nothing: each starts a fresh interpreter and looks at ``sys.modules``.
The import budget itself (pydantic's own import plus 100 ms) is measured by benchmark
B10 (``--store importtime``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ttflow_async

SRC = str(Path(ttflow_async.__file__).resolve().parents[1])

HEAVY = (
    "pydantic",
    "pydantic_core",
    "ttflow_async._records",
)
"""Modules that ``import ttflow_async`` must not load (they define or build models)."""


def fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; return the literal its last line printed."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_import_loads_no_pydantic_and_defines_no_record_model() -> None:
    loaded = fresh(
        "import sys, ttflow_async; "
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    assert loaded == []


def test_setup_and_a_workflow_definition_load_no_record_model() -> None:
    code = (
        "import sys, ttflow_async\n"
        "client = ttflow_async.setup('onmemory')\n"
        "@client.workflow(trigger='ping')\n"
        "async def ping(c: ttflow_async.RunContext) -> None:\n"
        "    return None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic_core', "
        "'ttflow_async._records'))))\n"
    )
    assert fresh(code) == []


def test_a_lazy_public_name_is_the_record_class_once_asked_for() -> None:
    loaded = fresh(
        "import sys\n"
        "from ttflow_async import RunInfo, WorkflowRunResult\n"
        "from ttflow_async._records import RunInfo as Real\n"
        "print([RunInfo is Real, 'ttflow_async._records' in sys.modules, "
        "WorkflowRunResult.__module__])"
    )
    assert loaded == [True, True, "ttflow_async._records"]


def test_every_public_name_resolves_and_is_listed_by_dir() -> None:
    for name in ttflow_async.__all__:
        assert getattr(ttflow_async, name) is not None, name
    assert set(ttflow_async.__all__) <= set(dir(ttflow_async))


def test_an_unknown_attribute_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        ttflow_async.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_a_run_still_returns_its_record_after_a_lazy_import() -> None:
    code = (
        "import asyncio, ttflow_async\n"
        "async def main() -> object:\n"
        "    client = ttflow_async.setup('onmemory')\n"
        "    @client.workflow()\n"
        "    async def wf(c: ttflow_async.RunContext) -> int:\n"
        "        await c.set_state('x', 1)\n"
        "        return 7\n"
        "    async with client:\n"
        "        (r,) = await client.run('wf')\n"
        "    return [type(r).__name__, r.status, r.result,\n"
        "            isinstance(r, ttflow_async.WorkflowRunResult)]\n"
        "print(asyncio.run(main()))\n"
    )
    assert fresh(code) == ["WorkflowRunResult", "succeeded", 7, True]


def one_run(spec: str, report: str) -> str:
    """A script: one ``run()`` without a trigger on ``spec``, then ``print(<report>)``
    (``results`` names the run's results)."""
    return (
        "import asyncio, sys, ttflow_async\n"
        "async def main() -> list[object]:\n"
        f"    client = ttflow_async.setup({spec!r})\n"
        "    @client.workflow(trigger='ping')\n"
        "    async def ping(c: ttflow_async.RunContext) -> None:\n"
        "        return None\n"
        "    async with client:\n"
        "        return await client.run()\n"
        "results = asyncio.run(main())\n"
        f"print({report})\n"
    )


def test_an_idle_run_loads_no_record_model(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    report = "[results, 'ttflow_async._records' in sys.modules, 'pydantic_core' in sys.modules]"
    assert fresh(one_run(spec, report)) == [[], False, False]


COLD_IDLE_SKIPS = (
    "anyio._backends._asyncio",
    "ctypes",
    "uuid",
    "platform",
    "typing_extensions",
    "ttflow_async._runner",
    "pathlib",
    "ttflow_async._batch",
    "concurrent.futures.thread",
    "dataclasses",
    "random",
)
"""What an idle ``run()`` of a fresh process need not import: anyio's backend (20-30
ms), ctypes (~7 ms), uuid with platform and typing_extensions (~9 ms), the pass (~10 ms),
pathlib (~4 ms: the local store works on path strings), the batches of ``c.parallel``
and ``c.map`` (~3 ms of dataclasses), and asyncio's thread pool: the local store reads
the root, a small inbox listing and small blobs in the event loop, so an idle pass
starts no worker thread (and the interpreter has none to join at exit). Nor does it
build a dataclass (0.5-1.4 ms each: the engine's records are plain classes) or import
``random`` (only jittered retries use it)."""


def test_an_idle_run_of_a_fresh_process_loads_no_anyio_backend_nor_ctypes(
    tmp_path: Path,
) -> None:
    # A cron tick is a fresh process whose run() usually finds nothing to do: it reads
    # the store on asyncio alone (anyio's backend costs 20-30 ms to import, ctypes
    # several more for the blob writes' syncfs; ids are made without ``uuid``, which
    # imports ``platform``). The first run() makes the store.
    code = one_run(
        f"local:{tmp_path / 'state.json'}",
        f"[results, [m for m in {COLD_IDLE_SKIPS!r} if m in sys.modules]]",
    )
    assert fresh(code)[0] == []  # the first run(): workflows_changed, blobs written
    assert fresh(code) == [[], []]


def test_the_pytest_plugin_and_testing_helpers_load_no_record_model() -> None:
    loaded = fresh(
        "import sys, ttflow_async.pytest_plugin, ttflow_async.testing; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic_core', "
        "'ttflow_async._records'))))"
    )
    assert loaded == []
