"""Shared plumbing for the scenario scripts.

Every scenario script is run by ``run_all.py`` in a fresh subprocess, once per
repetition and implementation. It does its setup (never timed), then its timed
section, and writes one JSON object to the file named by ``--out``.

A watchdog thread bounds the timed section: once ``--bound`` seconds have passed
since :func:`Timed.start`, it writes ``{"exceeded": true, ...}`` and ends the
process, so a peer that takes too long costs the run no more than the bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / "_work"

#: Exit code of a scenario process whose timed section passed its bound.
EXIT_EXCEEDED = 3


def parser(
    description: str, impls: tuple[str, ...] = ("ours", "ttflow")
) -> argparse.ArgumentParser:
    """Return the argument parser every scenario script shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--impl", choices=impls, required=True)
    p.add_argument("--store", default="memory")
    p.add_argument("--n", type=int, default=1000, help="the scenario's size")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    p.add_argument("--bound", type=float, default=120.0, help="seconds allowed to the timed part")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder for file stores")
    return p


class Timed:
    """The timed part of one scenario run, with its watchdog.

    Args:
        out: the result file.
        bound: seconds the timed part may take before the process is ended.
        meta: fields copied into whatever result is written.
    """

    def __init__(self, out: Path, bound: float, meta: dict[str, Any]) -> None:
        self.out = out
        self.bound = bound
        self.meta = dict(meta)
        self.progress: dict[str, Any] = {}
        self._started: float | None = None
        self._done = threading.Event()
        self._profiler: Any = None

    def start(self) -> None:
        """Start the bound (call it right before the first timed operation).

        It first flushes the page cache (``os.sync()``), so that a store which syncs the
        whole file system does not pay for the pages the untimed setup left dirty.

        With ``BENCH_PROFILE=<file>`` in the environment, the timed part is also
        profiled with pyinstrument and its call tree written to that file.
        """
        # Flush what the setup wrote, so that the timed part does not pay for it (a
        # store that syncs the file system would otherwise flush the setup's pages).
        os.sync()
        self._started = time.perf_counter()
        threading.Thread(target=self._watch, daemon=True).start()
        if os.environ.get("BENCH_PROFILE"):
            from pyinstrument import Profiler

            self._profiler = Profiler(interval=0.0005)
            self._profiler.start()

    def _watch(self) -> None:
        if self._done.wait(self.bound):
            return
        result = {**self.meta, **self.progress, "exceeded": True, "bound": self.bound}
        write_result(self.out, result)
        sys.stdout.flush()
        os._exit(EXIT_EXCEEDED)

    def stop(self) -> None:
        """End the timed part (stops the profiler, if any; the bound holds until finish)."""
        if self._profiler is not None:
            self._profiler.stop()
            text = self._profiler.output_text(unicode=True, color=False, show_all=False)
            Path(os.environ["BENCH_PROFILE"]).write_text(text)
            self._profiler = None

    def finish(self, result: dict[str, Any]) -> None:
        """Stop the watchdog (and the profiler) and write the result."""
        self._done.set()
        self.stop()
        write_result(self.out, {**self.meta, **result, "exceeded": False})


def write_result(out: Path, result: dict[str, Any]) -> None:
    """Write ``result`` atomically, so a killed process never leaves half a file."""
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)


@contextlib.contextmanager
def workdir(path: Path | None, name: str) -> Iterator[Path]:
    """A fresh scratch folder under ``benchmarks/_work``, removed afterwards."""
    folder = path or WORK_DIR / f"{name}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clock() -> float:
    """The benchmark clock (``time.perf_counter``)."""
    return time.perf_counter()


def timed_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn`` and return (seconds, result)."""
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def ttflow_memory_to_local(memory_client: Any, state_file: Path) -> None:
    """Write a ttflow in-memory store's content as ttflow's local state file.

    ttflow's local store is a single JSON object mapping state names to values, written
    with these very ``json.dump`` options; its memory store holds the same mapping. So a
    setup pass run on memory and written out here leaves exactly the file the same pass
    would have left on the local store, at a fraction of the (untimed) setup cost.
    """
    state = memory_client._global.state.state_repository.state
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file, "w") as f:
        json.dump(state, f, sort_keys=True, ensure_ascii=False, indent=2)


def define_paused_workers_ours(client: Any, steps: int) -> None:
    """B2/B5 on ttflow-async: ``fanout`` emits N ``work`` events; each ``work`` run does
    ``steps`` side effects, pauses once, then logs."""
    from ttflow_async import RunContext, event_trigger

    @client.sideeffect()
    async def step(c: RunContext, x: int) -> int:
        return x + 1

    @client.workflow(trigger="fanout")
    async def fanout(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.event("work", {"i": i})

    @client.workflow(trigger=event_trigger("work"))
    async def work(c: RunContext, args: dict) -> None:
        x = args["i"]
        for _ in range(steps):
            x = await step(c, x)
        await c.pause_once()
        await c.log(f"resumed with {x}")


def define_paused_workers_ttflow(client: Any, steps: int) -> None:
    """The same workflows on a ttflow 0.6.3 client (its sync API)."""
    import ttflow

    @client.sideeffect()
    def step(c: Any, x: int) -> int:
        return x + 1

    @client.workflow(trigger="fanout")
    def fanout(c: Any, args: dict) -> None:
        for i in range(args["n"]):
            c.event("work", {"i": i})

    @client.workflow(trigger=ttflow.event_trigger("work"))
    def work(c: Any, args: dict) -> None:
        x = args["i"]
        for _ in range(steps):
            x = step(c, x)
        c.pause_once()
        c.log(f"resumed with {x}")


def count_work(results: list[Any], status: str) -> int:
    """How many ``work`` runs ended with ``status``."""
    return sum(1 for r in results if r.workflow_name == "work" and r.status == status)
