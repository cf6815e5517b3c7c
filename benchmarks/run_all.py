"""Run every benchmark scenario for ttflow-async and its peer, then write the report.

``make bench`` runs this with any Python >= 3.11: it first creates (or updates) the
benchmark-only virtualenv ``benchmarks/.venv-bench`` from ``requirements.txt`` plus this
project installed editable, then re-runs itself inside it.

For each cell (scenario, size, store) it runs ttflow-async and the peer alternately, each
repetition in a fresh subprocess of the same interpreter with the same environment
(the order flips every repetition). Each repetition's timed part is bounded by
``--bound`` seconds. A peer repetition that passes the bound ends the peer's repetitions
of that cell (it is reported as "> bound") and of the larger sizes of the same scenario
and store (their cost only grows with size). A peer cell also stops repeating when one
more repetition would take its repetitions past ``--peer-cell-budget`` seconds, so that
the whole run stays within its time; the report says how many repetitions each median
has. ttflow-async always gets every repetition, at every size.

Results: ``results.json`` (every repetition), ``results.md`` and the B3/B4 charts.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv-bench"
VENV_PY = VENV_DIR / "bin" / "python"
WORK = BENCH_DIR / "_work"


def bootstrap() -> None:
    """Create/update the benchmark virtualenv and re-run this script inside it."""
    if Path(sys.prefix).resolve() == VENV_DIR.resolve():
        return
    if not VENV_PY.exists():
        print("creating benchmarks/.venv-bench", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    print("installing the benchmark requirements into benchmarks/.venv-bench", flush=True)
    subprocess.run(
        [
            str(VENV_PY),
            "-m",
            "pip",
            "install",
            "-q",
            "-r",
            str(BENCH_DIR / "requirements.txt"),
            "-e",
            f"{REPO_DIR}[aws]",
        ],
        check=True,
    )
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])


@dataclass
class Cell:
    """One (scenario, size, store) comparison."""

    scenario: str
    script: str
    store: str
    size: int
    peer: str = "ttflow"
    args: list[str] = field(default_factory=list)
    peer_args: list[str] = field(default_factory=list)
    ours_args: list[str] = field(default_factory=list)
    peer_reps: int | None = None
    reps: int | None = None
    remote: bool = False
    ours: list[dict[str, Any]] = field(default_factory=list)
    theirs: list[dict[str, Any]] = field(default_factory=list)
    peer_note: str = ""

    @property
    def key(self) -> str:
        return f"{self.scenario}-{self.store}-{self.size}"


def cells(quick: bool) -> list[Cell]:
    """Every cell of the benchmark, in running order."""
    b3_sizes = [0, 1000, 10_000] if quick else [0, 1000, 10_000, 100_000]
    b4_sizes = [1000, 5000] if quick else [1000, 5000, 20_000]
    out = [Cell("B1", "b1_fanout.py", store, 1000) for store in ("memory", "local")]
    out += [Cell("B2", "b2_resume_all.py", store, 1000) for store in ("memory", "local")]
    out += [
        Cell(
            "B3", "b3_idle_waiters.py", store, n, ours_args=["--cache"] if store == "local" else []
        )
        for store in ("memory", "local")
        for n in b3_sizes
    ]
    # The ratio 10k ÷ empty from one cell whose two sides alternate process by process
    # (the "peer" is ours at N=0): the cells above are minutes apart, and this disk's
    # fsync times drift more than the ratio's margin between them.
    out.append(
        Cell(
            "B3R",
            "b3_idle_waiters.py",
            "local",
            10_000,
            peer="ours",
            ours_args=["--cache"],
            peer_args=["--cache", "--n", "0"],
            reps=5 if quick else 15,
        )
    )
    out += [Cell("B5", "b5_remote.py", store, 100, remote=True) for store in ("s3", "dynamodb")]
    out += [Cell("B4", "b4_long_workflow.py", "memory", k) for k in b4_sizes]
    out += [
        Cell("B6", "b6_steady_state.py", "memory", 1000),
        Cell("B6", "b6_steady_state.py", "local", 1000, peer_reps=1),
    ]
    out += [
        Cell("B7", "b7_dbos.py", "sqlite", 1000, peer="dbos", peer_args=["--dbos-mode", "async"])
    ]
    out += [
        Cell("B8", "b8_retry.py", "local", 1000, peer="dbos"),
        Cell("B9", "b9_parallel_io.py", "gather", 100, peer="serial"),
        Cell("B9", "b9_parallel_io.py", "map", 100, peer="serial"),
        Cell("B9", "b9_parallel_io.py", "local", 100, peer="dbos"),
        Cell("B10", "b10_cold_start.py", "local", 5),
        Cell("B10", "b10_cold_start.py", "s3", 5, remote=True),
        Cell("B10", "b10_cold_start.py", "importtime", 10, peer="pydantic", peer_reps=1),
        Cell("B11", "b11_many_callers.py", "local", 100 if quick else 250),
        Cell("B12", "b12_list_state.py", "local", 4000, peer_reps=1),
        Cell("B13", "b13_idle_pass.py", "local", 200),
    ]
    return out


class Driver:
    """Runs cells, keeps every result, enforces the bounds and budgets."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.exceeded_at: dict[tuple[str, str], int] = {}
        self.log_dir = WORK / "logs"
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run_one(
        self, cell: Cell, impl: str, rep: int, env: dict[str, str], *, peer: bool = False
    ) -> dict[str, Any]:
        """One repetition of one side in a fresh subprocess (``peer``: the cell's peer side,
        which may be ``ours`` with other arguments, as in B3R)."""
        side = f"{impl}-peer" if peer else impl
        out = WORK / f"result-{cell.key}-{side}-{rep}.json"
        out.unlink(missing_ok=True)
        extra = cell.peer_args if peer else cell.ours_args
        cmd = [
            sys.executable,
            str(BENCH_DIR / cell.script),
            "--impl",
            impl,
            "--store",
            cell.store,
            "--n",
            str(cell.size),
            "--out",
            str(out),
            "--bound",
            str(self.args.bound),
            *cell.args,
            *extra,
        ]
        log = self.log_dir / f"{cell.key}-{side}-{rep}.log"
        t0 = time.monotonic()
        with open(log, "w") as f:
            proc = subprocess.run(
                cmd,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=BENCH_DIR,
                timeout=self.args.bound + self.args.setup_cap,
                check=False,
            )
        wall = time.monotonic() - t0
        try:
            result = json.loads(out.read_text())
        except (OSError, ValueError):
            tail = log.read_text()[-2000:]
            result = {"error": f"exit {proc.returncode}, no result; log tail:\n{tail}"}
        result["wall"] = wall
        result["rep"] = rep
        result["load"] = uptime()
        result["engine"] = engine_digest(Path(env.get("BENCH_ENGINE_SRC", REPO_DIR / "src")))
        if not result.get("exceeded") and not result.get("error") and not result.get("ok", True):
            result["error"] = "the scenario's own check failed (see its fields)"
        return result

    def run_cell(self, cell: Cell, env: dict[str, str]) -> None:
        """All repetitions of one cell, ours and the peer alternately."""
        group = (cell.scenario, cell.store)
        peer_on = True
        if group in self.exceeded_at and cell.size > self.exceeded_at[group]:
            peer_on = False
            cell.peer_note = (
                f"not run: the peer passed the bound at size {self.exceeded_at[group]:,}"
            )
        peer_time = 0.0
        reps = cell.reps or self.args.reps
        peer_reps = cell.peer_reps or reps
        for rep in range(reps):
            order = ["ours", "peer"] if rep % 2 == 0 else ["peer", "ours"]
            for who in order:
                if who == "ours":
                    cell.ours.append(self.run_one(cell, "ours", rep, env))
                    self.progress(cell, cell.ours[-1], "ours")
                    continue
                if not peer_on or len(cell.theirs) >= peer_reps:
                    continue
                last = cell.theirs[-1]["wall"] if cell.theirs else 0.0
                if cell.theirs and peer_time + last > self.args.peer_cell_budget:
                    peer_on = False
                    cell.peer_note = f"{len(cell.theirs)} reps: peer cell budget reached"
                    continue
                if cell.theirs and self.elapsed() > self.args.budget_minutes * 60:
                    peer_on = False
                    cell.peer_note = f"{len(cell.theirs)} reps: overall time budget reached"
                    continue
                result = self.run_one(cell, cell.peer, rep, env, peer=True)
                cell.theirs.append(result)
                peer_time += result["wall"]
                self.progress(cell, result, cell.peer)
                if result.get("exceeded"):
                    peer_on = False
                    cell.peer_note = "passed the bound"
                    self.exceeded_at.setdefault(group, cell.size)

    def progress(self, cell: Cell, result: dict[str, Any], who: str) -> None:
        what = (
            "ERROR"
            if result.get("error")
            else f"> {self.args.bound:.0f} s"
            if result.get("exceeded")
            else f"{result['seconds']:.4f} s"
        )
        print(
            f"[{self.elapsed() / 60:5.1f} min] {cell.key:<22} {who:<6} rep {result['rep']}: "
            f"{what} (wall {result['wall']:.1f} s)",
            flush=True,
        )
        if result.get("error"):
            print(result["error"], flush=True)


def engine_snapshot() -> tuple[Path, str]:
    """Extract the engine as committed at HEAD; return (its ``src`` folder, the commit).

    The scenario processes import the engine from there (through ``PYTHONPATH``, ahead
    of the editable install), so one run measures one engine version even while the
    working tree changes under it.
    """
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        check=True,
    ).stdout.strip()
    dest = WORK / f"engine-{commit.split()[0]}"
    if not (dest / "src" / "ttflow_async" / "__init__.py").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", "src/ttflow_async"],
            capture_output=True,
            cwd=REPO_DIR,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        # Compiled once, as pip compiles an installed package: otherwise a process run
        # with PYTHONDONTWRITEBYTECODE compiles every module again, and B10 and every
        # first run would time the compiler (the peers are pip-installed, compiled).
        subprocess.run([str(VENV_PY), "-m", "compileall", "-q", str(dest / "src")], check=True)
    return dest / "src", commit


def engine_digest(src: Path) -> str:
    """A short hash of the engine's source, recorded with every repetition."""
    digest = hashlib.sha1()
    for source in sorted((src / "ttflow_async").rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:10]


def uptime() -> str:
    """The load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--bound", type=float, default=120.0, help="seconds per timed repetition")
    p.add_argument("--setup-cap", type=float, default=900.0, help="extra seconds for setup")
    p.add_argument("--peer-cell-budget", type=float, default=100.0)
    p.add_argument("--budget-minutes", type=float, default=26.0)
    p.add_argument("--only", default="", help="comma-separated scenarios, e.g. B3,B5")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--no-report", action="store_true")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other scenarios' cells of the existing results.json (with --only)",
    )
    p.add_argument(
        "--engine",
        choices=("HEAD", "working-tree"),
        default="HEAD",
        help="measure the engine as committed (default) or the working tree as it is",
    )
    args = p.parse_args()
    bootstrap()

    sys.path.insert(0, str(BENCH_DIR))
    from _aws import remote_endpoint
    from report import write_report

    WORK.mkdir(exist_ok=True)
    driver = Driver(args)
    load_before = uptime()
    only = set(args.only.split(",")) if args.only else set()
    if "B3" in only:
        only.add("B3R")  # B3's ratio cell (see cells())
    chosen = [c for c in cells(args.quick) if not only or c.scenario in only]
    check = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "b4_long_workflow.py"),
            "--impl",
            "ttflow",
            "--n",
            "40",
            "--out",
            "/dev/null",
            "--check",
        ],
        capture_output=True,
        text=True,
        cwd=BENCH_DIR,
        check=False,
    )
    print(f"B4 setup synthesis check: {check.stdout.strip().splitlines()[-1]}", flush=True)
    base_env = dict(os.environ)
    engine_commit = "working tree"
    if args.engine == "HEAD":
        engine_src, engine_commit = engine_snapshot()
        base_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(engine_src), base_env.get("PYTHONPATH", "")) if p
        )
        base_env["BENCH_ENGINE_SRC"] = str(engine_src)
    print(f"engine: {engine_commit}", flush=True)
    with contextlib.ExitStack() as stack:
        aws_env: dict[str, str] | None = None
        for cell in chosen:
            if cell.remote and aws_env is None:
                aws_env = stack.enter_context(remote_endpoint())
            driver.run_cell(cell, {**base_env, **(aws_env or {})} if cell.remote else base_env)
    engines = sorted(
        {r.get("engine", "") for c in chosen for r in c.ours + c.theirs if r.get("engine")}
    )
    meta = {
        "engine": engine_commit,
        "engines": engines,
        "load_before": load_before,
        "load_after": uptime(),
        "minutes": driver.elapsed() / 60,
        "reps": args.reps,
        "bound": args.bound,
        "peer_cell_budget": args.peer_cell_budget,
        "b4_check": check.stdout.strip().splitlines()[-1] if check.stdout.strip() else "n/a",
        "quick": args.quick,
    }
    data = {
        "meta": meta,
        "cells": [
            {
                "scenario": c.scenario,
                "store": c.store,
                "size": c.size,
                "peer": c.peer,
                "peer_note": c.peer_note,
                "ours": c.ours,
                "peer_results": c.theirs,
            }
            for c in chosen
        ],
    }
    results_json = BENCH_DIR / ("results.json" if not args.quick else "_work/results-quick.json")
    if args.merge and results_json.exists():
        previous = json.loads(results_json.read_text())
        ran = {c.scenario for c in chosen}
        kept = [c for c in previous["cells"] if c["scenario"] not in ran]
        data["cells"] = kept + data["cells"]
        meta["merged_from"] = previous["meta"].get("engine", "")
        meta["merged_scenarios"] = sorted(ran)
    results_json.write_text(json.dumps(data, indent=1))
    print(f"wrote {results_json}")
    if not args.no_report:
        write_report(data, quick=args.quick)
    print(f"done in {driver.elapsed() / 60:.1f} min; load {load_before} -> {uptime()}")


if __name__ == "__main__":
    main()
