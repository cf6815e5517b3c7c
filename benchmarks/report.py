"""Turn ``results.json`` into ``results.md`` and the B3/B4 charts.

Run by ``run_all.py`` after a run; ``python report.py`` re-renders from the last
``results.json`` without measuring anything.
"""

import json
import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Side:
    """The summary of one implementation's repetitions in one cell."""

    values: list[float]
    exceeded: bool
    errors: int
    reps: int

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def side(results: list[dict[str, Any]], metric: str = "seconds") -> Side:
    """Summarize the repetitions of one side of a cell."""
    values = [_pick(r, metric) for r in results if not r.get("exceeded") and not r.get("error")]
    return Side(
        values=[v for v in values if v is not None],
        exceeded=any(r.get("exceeded") for r in results),
        errors=sum(1 for r in results if r.get("error")),
        reps=len(results),
    )


def _pick(result: dict[str, Any], metric: str) -> float | None:
    value: Any = result
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value)


def fmt_seconds(value: float | None) -> str:
    """A duration with a unit that suits it."""
    if value is None:
        return "n/a"
    if value < 0:
        return "−" + fmt_seconds(-value)
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def fmt_rate(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


def fmt_ratio(value: float | None, lower: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"
    return f"> {text}" if lower else text


def verdict(met: bool | None) -> str:
    return "—" if met is None else "**met**" if met else "**missed**"


class Report:
    """Builds the table rows from the cells of one run."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.meta = data["meta"]
        self.cells = {(c["scenario"], c["store"], c["size"]): c for c in data["cells"]}
        self.bound = float(self.meta["bound"])
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def cell(self, scenario: str, store: str, size: int) -> dict[str, Any] | None:
        return self.cells.get((scenario, store, size))

    def reps_text(self, c: dict[str, Any], peer: Side, ours: Side) -> str:
        note = f"; {c['peer_note']}" if c.get("peer_note") else ""
        return f"{peer.reps}/{ours.reps}{note}"

    def time_row(
        self,
        scenario: str,
        store: str,
        size: int,
        target: float | None,
        target_text: str,
        label: str = "",
        metric: str = "seconds",
    ) -> None:
        """A row comparing durations: ratio = peer / ours (how many times faster)."""
        c = self.cell(scenario, store, size)
        if c is None:
            return
        ours = side(c["ours"], metric)
        peer = side(c["peer_results"], metric)
        lower = peer.exceeded or (not peer.values and bool(c.get("peer_note")))
        peer_text = f"> {self.bound:.0f} s" if lower else fmt_seconds(peer.median)
        if ours.median is None:
            ratio = None
        elif lower:
            ratio = self.bound / ours.median
        else:
            ratio = peer.median / ours.median if peer.median is not None else None
        met = None if target is None or ratio is None else ratio >= target
        if lower and met is False:
            target_text += " (lower bound too low to tell)"
            met = None
        self.rows.append(
            [
                f"{scenario}{label}",
                f"{size:,}",
                store,
                c["peer"],
                peer_text,
                fmt_seconds(ours.median),
                fmt_ratio(ratio, lower),
                target_text,
                verdict(met),
                self.reps_text(c, peer, ours),
            ]
        )

    def rate_row(
        self,
        scenario: str,
        store: str,
        size: int,
        unit: str,
        per_item: int,
        target: float | None,
        target_text: str,
    ) -> None:
        """A row comparing throughputs (``per_item * size / seconds``): ratio = ours / peer."""
        c = self.cell(scenario, store, size)
        if c is None:
            return
        ours = side(c["ours"])
        peer = side(c["peer_results"])
        work = per_item * size
        ours_rate = work / ours.median if ours.median else None
        lower = peer.exceeded
        peer_rate = work / self.bound if lower else work / peer.median if peer.median else None
        ratio = ours_rate / peer_rate if ours_rate and peer_rate else None
        met = None if ratio is None or target is None else ratio >= target
        if lower and met is False:
            target_text += " (lower bound too low to tell)"
            met = None
        self.rows.append(
            [
                scenario,
                f"{size:,}",
                store,
                c["peer"],
                ("< " if lower else "") + fmt_rate(peer_rate, unit),
                fmt_rate(ours_rate, unit),
                fmt_ratio(ratio, lower),
                target_text,
                verdict(met),
                self.reps_text(c, peer, ours),
            ]
        )

    def own_row(
        self,
        name: str,
        size: str,
        store: str,
        text: str,
        value: float | None,
        limit: float,
        target_text: str,
        reps: str,
    ) -> None:
        """A row about ttflow-async alone (a ratio of two of its own numbers, or a count)."""
        met = None if value is None else value <= limit
        self.rows.append([name, size, store, "—", "—", text, "—", target_text, verdict(met), reps])

    def build(self) -> None:
        self.rate_row("B1", "memory", 1000, "runs/s", 1, None, "—")
        self.rate_row("B1", "local", 1000, "runs/s", 1, 50, "≥ 50×")
        self.time_row("B2", "memory", 1000, None, "—")
        self.time_row("B2", "local", 1000, 100, "≥ 100×")
        for store in ("memory", "local"):
            for n in (0, 1000, 10_000, 100_000):
                target = 1000 if (store == "local" and n == 10_000) else None
                self.time_row("B3", store, n, target, "≥ 1000×" if target else "—")
            zero, big = self.cell("B3", store, 0), self.cell("B3", store, 10_000)
            paired = self.cell("B3R", store, 10_000)
            if paired:  # the two sides alternated process by process (run_all.cells)
                # Each repetition says which size it ran: a side that ran the wrong one
                # is left out rather than compared.
                zeros = [r for r in paired["peer_results"] if r.get("n") == 0]
                bigs = [r for r in paired["ours"] if r.get("n") == 10_000]
            elif zero and big:
                zeros, bigs = zero["ours"], big["ours"]
            else:
                continue
            z, b = side(zeros).median, side(bigs).median
            value = b / z if z and b else None
            self.own_row(
                "B3 N=10k ÷ N=0" + (", alternating" if paired else ""),
                "10,000 vs 0",
                store,
                f"{fmt_seconds(b)} ÷ {fmt_seconds(z)} = {fmt_ratio(value)}",
                value,
                1.3 if store == "local" else float("inf"),
                "≤ 1.3×" if store == "local" else "—",
                f"{len(bigs)}+{len(zeros)}",
            )
            if store != "local":
                self.rows[-1][8] = "—"
        for k in (1000, 5000, 20_000):
            self.time_row(
                "B4", "memory", k, 300 if k == 5000 else None, "≥ 300×" if k == 5000 else "—"
            )
        c5, c20 = self.cell("B4", "memory", 5000), self.cell("B4", "memory", 20_000)
        if c5 and c20:
            a, b = side(c5["ours"]).median, side(c20["ours"]).median
            value = b / a if a and b else None
            self.own_row(
                "B4 K=20000 ÷ K=5000",
                "20,000 vs 5,000",
                "memory",
                f"{fmt_seconds(b)} ÷ {fmt_seconds(a)} = {fmt_ratio(value)}",
                value,
                5,
                "≤ 5× (linear: 4×)",
                f"{len(c20['ours'])}+{len(c5['ours'])}",
            )
        for store in ("s3", "dynamodb"):
            c = self.cell("B5", store, 100)
            if c is None:
                continue
            resume_target = 25 if store == "s3" else 30
            self.time_row(
                "B5", store, 100, resume_target, f"≥ {resume_target}×", label=" resume-all"
            )
            self.time_row(
                "B5", store, 100, 1.3, "≥ 1.3×", label=" nothing to do", metric="idle.seconds"
            )
            limits: list[tuple[str, str, float, str]] = [
                ("resume", "waves", 5, "≤ 5 waves"),
                (
                    "resume",
                    "requests",
                    10 if store == "s3" else float("inf"),
                    "≤ 10" if store == "s3" else "—",
                ),
                ("idle", "waves", 3, "≤ 3 waves"),
            ]
            for phase, what, limit, text in limits:
                ours = side(c["ours"], f"{phase}.{what}")
                peer = side(c["peer_results"], f"{phase}.{what}")
                peer_text = f"{peer.median:.0f}" if peer.median is not None else "n/a"
                self.own_row(
                    f"B5 {'resume-all' if phase == 'resume' else 'nothing to do'} {what}",
                    "100",
                    store,
                    f"{ours.median:.0f} (range {min(ours.values):.0f}–{max(ours.values):.0f}); "
                    f"ttflow: {peer_text}"
                    if ours.values
                    else "n/a",
                    ours.median,
                    limit,
                    text,
                    f"{peer.reps}/{ours.reps}",
                )
                if limit == float("inf"):
                    self.rows[-1][8] = "—"
        for store in ("memory", "local"):
            c = self.cell("B6", store, 1000)
            if c is None:
                continue
            first = side(c["ours"], "first").median
            last = side(c["ours"], "last").median
            early = side(c["ours"], "early_median").median
            late = side(c["ours"], "late_median").median
            ratio = last / first if first and last else None
            window = late / early if early and late else None
            worst = max(v for v in (ratio, window) if v is not None) if ratio or window else None
            peer_side = side(c["peer_results"], "first")
            p_last = side(c["peer_results"], "last").median
            p_passes = side(c["peer_results"], "passes").median
            peer_text = (
                f"ttflow: pass 1 {fmt_seconds(peer_side.median)}, pass {p_passes:.0f} "
                f"{fmt_seconds(p_last)} ({fmt_ratio(p_last / peer_side.median)})"
                if peer_side.median and p_last and p_passes
                else "ttflow: n/a"
            )
            self.own_row(
                "B6 pass 1000 ÷ pass 1",
                "1000 waiters",
                store,
                f"{fmt_seconds(last)} ÷ {fmt_seconds(first)} = {fmt_ratio(ratio)}; median of "
                f"passes 901–1000 ÷ 1–100: {fmt_seconds(late)} ÷ {fmt_seconds(early)} = "
                f"{fmt_ratio(window)}. {peer_text}",
                worst,
                1.2,
                "≤ 1.2× (both)",
                f"{peer_side.reps}/{len(c['ours'])}",
            )
        self.rate_row("B7", "sqlite", 1000, "steps/s", 3, 10, "≥ 10×")
        self.time_row("B8", "local", 1000, None, "—", label=" retries")
        self.time_row("B9", "gather", 100, 50, "≥ 50× serial", label=" gather")
        self.time_row("B9", "map", 100, 50, "≥ 50× serial", label=" map")
        self.time_row("B9", "local", 100, 1, "ahead of DBOS", label=" gather")
        self.time_row("B10", "local", 5, 1, "≥ 1×", label=" cold start")
        self.time_row("B10", "s3", 5, 1.3, "≥ 1.3×", label=" cold start")
        self.b11_rows()
        self.b12_row()
        self.time_row("B13", "local", 200, 2, "≥ 2× (warm)", label=" idle pass")
        c = self.cell("B10", "importtime", 10)
        if c is not None:
            ours_imp = side(c["ours"]).median
            peer_imp = side(c["peer_results"]).median
            extra = ours_imp - peer_imp if ours_imp is not None and peer_imp is not None else None
            self.own_row(
                "B10 import ttflow_async − import pydantic",
                "10 processes",
                "—",
                f"{fmt_seconds(ours_imp)} − {fmt_seconds(peer_imp)} = {fmt_seconds(extra)}",
                extra,
                0.1,
                "≤ 100 ms",
                f"{len(c['peer_results'])}/{len(c['ours'])}",
            )

    def b12_row(self) -> None:
        """B12: 4000 appends in one run, against ttflow and the targets (<= 0.5 s, <= 5 MB)."""
        c = self.cell("B12", "local", 4000)
        if c is None:
            return
        self.time_row("B12", "local", 4000, None, "≤ 0.5 s", label=" add_list_state")
        ours = side(c["ours"])
        written = side(c["ours"], "bytes_written")
        peer_written = side(c["peer_results"], "bytes_written")
        met = (
            None
            if ours.median is None or written.median is None
            else ours.median <= 0.5 and written.median <= 5e6
        )
        row = self.rows[-1]
        row[4] += (
            f"; wrote {peer_written.median / 1e6:.1f} MB"
            if peer_written.median is not None
            else "; bytes n/a"
        )
        row[5] += f"; wrote {written.median / 1e6:.2f} MB" if written.median is not None else ""
        row[7] = "≤ 0.5 s and ≤ 5 MB written"
        row[8] = verdict(met)

    def b11_rows(self) -> None:
        """B11: ours against its own targets (exactly once, >= 1000 triggers/s), and ttflow."""
        c = self.cell("B11", "local", 250)
        if c is None:
            return
        ours = c["ours"]
        peer = c["peer_results"]

        def med(rows: list[dict[str, Any]], key: str) -> float | None:
            values = [r[key] for r in rows if r.get(key) is not None and not r.get("error")]
            return statistics.median(values) if values else None

        rate = med(ours, "triggers_per_s")
        once = all(r.get("lost") == 0 and r.get("duplicates") == 0 for r in ours) and bool(ours)
        p50, p95 = med(ours, "p50"), med(ours, "p95")
        peer_text = (
            f"ttflow: {fmt_rate(med(peer, 'triggers_per_s'), 'triggers/s')}, lost "
            f"{med(peer, 'lost')}, duplicates {med(peer, 'duplicates')}, errors "
            f"{med(peer, 'errors')} (medians)"
            if peer
            else "ttflow: n/a"
        )
        self.rows.append(
            [
                "B11 many callers",
                "8 × 250",
                "local",
                "ttflow",
                peer_text,
                f"{fmt_rate(rate, 'triggers/s')}; p50 {fmt_seconds(p50)}, p95 "
                f"{fmt_seconds(p95)}; every trigger once: {'yes' if once else 'NO'}",
                "—",
                "≥ 1000 triggers/s, exactly once",
                verdict(None if rate is None else rate >= 1000 and once),
                f"{len(peer)}/{len(ours)}",
            ]
        )


HEADER = [
    "scenario",
    "size",
    "store",
    "peer",
    "peer median",
    "ours median",
    "ratio",
    "target",
    "met?",
    "reps peer/ours",
]


def chart(
    data: dict[str, Any],
    scenario: str,
    stores: list[str],
    sizes: list[int],
    path: Path,
    xlabel: str,
) -> None:
    """Median cost against size, log–log, one line per implementation and store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bound = float(data["meta"]["bound"])
    cells = {(c["scenario"], c["store"], c["size"]): c for c in data["cells"]}
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for store in stores:
        for who, key, style in (
            ("ttflow-async", "ours", "-o"),
            ("ttflow 0.6.3", "peer_results", "--s"),
        ):
            xs, ys, over = [], [], []
            for n in sizes:
                c = cells.get((scenario, store, n))
                if c is None:
                    continue
                s = side(c[key])
                x = max(n, 1) if scenario != "B3" else max(n, 100)
                if s.median is not None:
                    xs.append(x)
                    ys.append(s.median)
                elif s.exceeded or (key == "peer_results" and c.get("peer_note")):
                    over.append(x)
            label = f"{who}, {store}"
            if xs:
                (line,) = ax.plot(xs, ys, style, label=label)
                color = line.get_color()
            else:
                color = None
            if over:
                ax.plot(
                    over,
                    [bound] * len(over),
                    "^",
                    color=color,
                    markersize=10,
                    label=f"{label}: > {bound:.0f} s bound",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("median seconds of the timed run() (log)")
    ax.axhline(bound, color="grey", linewidth=0.6, linestyle=":")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{scenario}: cost against size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def engine_commit(at: str = "HEAD") -> str:
    """The last commit at or before ``at`` that changed the engine's source."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h %s", at, "--", "src/ttflow_async"],
            capture_output=True,
            text=True,
            cwd=BENCH_DIR.parent,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("ttflow-async", "ttflow", "dbos", "aioboto3", "moto"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def write_report(data: dict[str, Any], quick: bool = False) -> Path:
    """Write results.md (and the charts) from one run's data; return the markdown path."""
    out_dir = BENCH_DIR if not quick else BENCH_DIR / "_work"
    report = Report(data)
    report.build()
    meta = data["meta"]
    chart(
        data,
        "B3",
        ["memory", "local"],
        [0, 1000, 10_000, 100_000],
        out_dir / "b3_idle_waiters.png",
        "N idle waiters (N = 0 drawn at 100)",
    )
    chart(
        data,
        "B4",
        ["memory"],
        [1000, 5000, 20_000],
        out_dir / "b4_long_workflow.png",
        "K side-effect steps replayed",
    )
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `make bench` (`benchmarks/run_all.py`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {meta['minutes']:.1f} minutes. "
        "Do not edit by hand; see [README.md](README.md) for what each scenario times.",
        "",
        f"- Machine: {platform.machine()}, {_cpu()} ({_cores()} cores), Python "
        f"{platform.python_version()}. Load average (1/5/15 min) before the run: "
        f"{meta['load_before']}; after: {meta['load_after']}.",
        f"- Engine: as committed at `{meta.get('engine') or 'HEAD'}`; its source last "
        f"changed in `{engine_commit((meta.get('engine') or 'HEAD').split()[0])}`. "
        f"Packages: {versions()}.",
        *(
            [
                f"- **Warning: the engine's source changed during this run** (source hashes "
                f"{', '.join(meta['engines'])}); its numbers mix engine versions."
            ]
            if len(meta.get("engines", [])) > 1
            else []
        ),
        f"- Each cell: {meta['reps']} repetitions per side, alternating, each in a fresh "
        f"process; medians. Timed part bounded at {meta['bound']:.0f} s. A peer cell stops "
        f"repeating early when it passes the bound or when another repetition would take "
        f"it past {meta['peer_cell_budget']:.0f} s (the last column says how many ran).",
        f"- Ratios: how many times faster ttflow-async is (peer ÷ ours for times, ours ÷ "
        f"peer for rates). Where the peer passed the bound, its time is shown as "
        f'"> {meta["bound"]:.0f} s" and the ratio is a lower bound (bound ÷ ours).',
        f"- B4's peer setup is synthesized in ttflow's own format: {meta['b4_check']}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in report.rows]
    errors = [
        (c["scenario"], c["store"], c["size"], r.get("error", "")[:300])
        for c in data["cells"]
        for r in c["ours"] + c["peer_results"]
        if r.get("error")
    ]
    lines += [
        "",
        "B7 compares different commit models: DBOS checkpoints each step in its own SQLite "
        "transaction; ttflow-async commits once per `run()` pass (B1's shape: 3 side effects, "
        "2 `set_state`, 1 `log` per workflow, only the 3 side effects counted as steps).",
        "",
        "![B3: cost of a one-event pass against the number of idle waiters](b3_idle_waiters.png)",
        "",
        "![B4: cost of the resume replay against the number of steps](b4_long_workflow.png)",
    ]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {s} {st} {n}: `{e}`" for s, st, n, e in errors]
    remote_lines = _remote_detail(data)
    if remote_lines:
        lines += ["", "## B5 request detail (ttflow-async, median repetition)", "", *remote_lines]
    path = out_dir / "results.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return path


def _remote_detail(data: dict[str, Any]) -> list[str]:
    lines = []
    for c in data["cells"]:
        if c["scenario"] != "B5" or not c["ours"]:
            continue
        good = [r for r in c["ours"] if not r.get("error")]
        if not good:
            continue
        good.sort(key=lambda r: r["resume"]["seconds"])
        r = good[len(good) // 2]
        for label in ("resume", "idle"):
            d = r[label]
            waves = ", ".join(f"{w['requests']}×{w['ms']:.0f} ms" for w in d.get("wave_detail", []))
            lines.append(
                f"- {c['store']} {label}: {fmt_seconds(d['seconds'])}, {d['requests']} requests "
                f"in {d['waves']} waves (requests × wave duration: {waves}); most in flight: "
                f"{d.get('max_in_flight', 'n/a')}; by operation: {d['operations']}; after "
                f"run() returned (clean-up at the client's exit): {d.get('late_requests', 0)} "
                f"requests, {fmt_seconds(d.get('exit_seconds'))}"
            )
    return lines


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    write_report(json.loads((BENCH_DIR / "results.json").read_text()))
