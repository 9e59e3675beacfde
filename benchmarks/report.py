"""The Markdown report: a header about the machine, one table per measurement, targets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from benchmarks.stats import median
from benchmarks.subjects import BASELINES, FAMILY_TITLES, HANDOFF_FLOORS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from benchmarks.cold import Cold
    from benchmarks.contended import ContendedRow
    from benchmarks.importcost import ImportCost
    from benchmarks.results import Results
    from benchmarks.targets import Verdict

__all__ = ["markdown"]

_NUMERIC = ("pairs", "µs", "p5", "p9", "x ", "lost", "waiter", "ms", "rounds", "range")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    rule = ["---:" if h.startswith(_NUMERIC) else "---" for h in header]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:{spec}}{suffix}"


def _status(verdicts: list[Verdict], measurement: str, subject: str) -> tuple[str, str]:
    found = [v for v in verdicts if v.measurement == measurement and v.subject == subject]
    return "; ".join(v.target for v in found), " ".join(f"**{v.status}**" for v in found)


def _load(load: tuple[float, float, float] | None) -> str:
    return ", ".join(f"{x:.2f}" for x in load) if load else "unknown"


def _subject(name: str, error: str) -> str:
    return f"{name} (FAILED: {error})" if error else name


_ENGINES = (
    ("sentinel", "Redis Sentinel"),
    ("cluster", "Redis Cluster"),
    ("postgres", "PostgreSQL"),
    ("etcd", "etcd"),
)


def _server(found: dict[str, object] | None) -> str:
    if not found:
        return "none"
    text = str(found.get("server", "?"))
    return text + (" (private server started for this run)" if found.get("private") else "")


def _header(results: Results) -> list[str]:
    m = results.machine
    found = m.get("versions")
    versions = ", ".join(f"{k} {v}" for k, v in found.items()) if isinstance(found, dict) else ""
    server = str(results.redis.get("server", "none"))
    if results.redis.get("private"):
        server += " (private server started for this run)"
    lines = [
        f"# lockkit benchmarks ({results.mode} run)",
        "",
        f"- When: {m['date']}, {results.seconds:.1f} s wall time",
        f"- Machine: {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}",
        (
            f"- Load average (1, 5, 15 min; as `uptime`): {_load(results.load_before)} at "
            f"start, {_load(results.load_after)} at end"
        ),
        f"- Lock directory: `{m['directory']}` ({m['filesystem']})",
        f"- Redis: {server}",
        *(f"- {title}: {_server(results.engines.get(family))}" for family, title in _ENGINES),
        f"- Versions: {versions}",
        f"- lockkit measured: `{m.get('lockkit_source', '?')}`",
    ]
    if results.mode == "smoke":
        lines.append("- **Smoke run**: tiny counts that prove the code runs; numbers mean little.")
    lines.extend(f"- Skipped: {note}" for note in results.skipped)
    return lines


def _uncontended(results: Results) -> list[str]:
    s = results.sizes
    rows = []
    for r in results.uncontended:
        target, status = _status(results.verdicts, "uncontended", r.subject)
        rows.append(
            [
                FAMILY_TITLES[r.family],
                _subject(r.subject, r.error),
                _num(r.pairs_per_second, ",.0f"),
                _num(r.microseconds, ".1f"),
                _num(r.ratio, ".2f", "x"),
                target,
                status,
            ]
        )
    baselines = ", ".join(f"{k}: {v}" for k, v in BASELINES.items())
    intro = (
        f"Median of {s.repeats} interleaved repetitions of ~{s.seconds_per_repeat:g} s each. "
        "`x raw` is time per pair over the raw primitive of the family "
        f"({baselines}) measured in the same repetition; the median of those ratios."
    )
    header = ["Family", "Subject", "pairs/s", "µs/pair", "x raw", "Target", "Status"]
    return ["## Uncontended acquire+release, one process", "", intro, "", *_table(header, rows)]


def _handoff(results: Results) -> list[str]:
    s = results.sizes
    floors = {
        r.subject: r.ms(50)
        for r in results.handoff
        if r.subject in HANDOFF_FLOORS.values() and not r.error
    }
    rows = []
    for r in results.handoff:
        target, status = _status(results.verdicts, "handoff", r.subject)
        p50 = r.ms(50)
        floor = floors.get(HANDOFF_FLOORS.get(r.family, ""), math.nan)
        ratio = p50 / floor if floor > 0 else math.nan
        rows.append(
            [
                FAMILY_TITLES[r.family],
                _subject(r.subject, r.error),
                str(len(r.latencies_ns)),
                _num(p50, ".3f"),
                _num(r.ms(90), ".3f"),
                _num(r.ms(99), ".3f"),
                _num(ratio, ".1f", "x"),
                _num(r.waiter_cpu_ms, ".2f"),
                target,
                status,
            ]
        )
    pause = f"{s.handoff_pause[0] * 1000:g}-{s.handoff_pause[1] * 1000:g} ms"
    intro = (
        f"Up to {s.handoff_rounds} rounds per subject (fewer for slow pollers once "
        f"{s.handoff_budget:g} s are spent); `time.monotonic_ns()` in both processes. The "
        f"holder releases {pause} (random) after the waiter starts to acquire. `x floor` "
        "is p50 over the p50 of the family's raw blocking hand-off: `raw flock`, a "
        "blocking `flock(LOCK_EX)` (the kernel's own hand-off) for file locks, and "
        "`raw BLPOP+RPUSH` (the server's own, one command each way) for Redis, "
        "`raw pg_advisory_lock (blocking)` (the server's lock queue) for PostgreSQL; "
        "etcd has none (its own blocking primitive is the watch the backend uses)."
    )
    header = [
        "Family",
        "Subject",
        "rounds",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "x floor",
        "waiter CPU ms/round",
        "Target",
        "Status",
    ]
    title = "## Hand-off latency: holder releases, waiting process acquires"
    return [title, "", intro, "", *_table(header, rows)]


def _best_peer(rows: list[ContendedRow], family: str) -> ContendedRow | None:
    peers = [r for r in rows if r.kind == "peer" and r.family == family and not r.error]
    return max(peers, key=lambda r: r.pairs_per_second, default=None)


def _contended(results: Results) -> list[str]:
    rows = []
    for r in results.contended:
        target, status = _status(results.verdicts, "contended", r.subject)
        best = _best_peer(results.contended, r.family)
        ratio = r.pairs_per_second / best.pairs_per_second if best and not r.error else math.nan
        rates = [run.pairs_per_second() for run in r.runs if not run.error]
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "-"
        rows.append(
            [
                FAMILY_TITLES[r.family],
                _subject(r.subject, r.error),
                f"{r.processes}x{r.increments}",
                _num(r.pairs_per_second, ",.0f"),
                spread,
                str(r.lost) if not r.error else "-",
                _num(ratio, ".2f", "x"),
                target,
                status,
            ]
        )
    runs = results.sizes.contended_repeats
    how = f"Median of {runs} interleaved runs per subject" if runs > 1 else "One run per subject"
    intro = (
        f"{how} (`range`: slowest to fastest run; `lost`: over all runs). lockkit backends through "
        "`lockkit._stress.run_increments`; raw flock and the peers through the same "
        "spawn-based runner in `benchmarks.contended`. `x best peer` is pairs/s over the "
        "best peer of the same family. Polling peers are unfair (the releasing process "
        "usually takes the lock again while the others sleep), which helps their "
        "throughput and makes it vary from run to run."
    )
    header = [
        "Family",
        "Subject",
        "PxK",
        "pairs/s",
        "range",
        "lost",
        "x best peer",
        "Target",
        "Status",
    ]
    title = "## Contended throughput: P processes x K locked increments"
    return [title, "", intro, "", *_table(header, rows)]


def _verdict_cells(verdict: Verdict | None) -> list[str]:
    return [verdict.target, f"**{verdict.status}**"] if verdict else ["", ""]


def _import(cost: ImportCost, verdicts: list[Verdict]) -> list[str]:
    if cost.error:
        return ["## Import cost", "", f"FAILED: {cost.error}"]
    found = [v for v in verdicts if v.measurement == "import"]
    timed = next((v for v in found if "ms" in v.target), None)
    no_redis = next((v for v in found if "redis" in v.target), None)
    added = ", ".join(f"`{m}`" for m in cost.added_modules[:12])
    if len(cost.added_modules) > 12:
        added += ", ..."
    rows = [
        ["`python -c pass` (median)", _num(median(cost.bare_ms), ".1f"), "", ""],
        ["`python -c 'import lockkit'` (median)", _num(median(cost.import_ms), ".1f"), "", ""],
        ["**import lockkit over bare**", _num(cost.over_bare_ms, ".1f"), *_verdict_cells(timed)],
        ["`-X importtime`: lockkit cumulative", _num(cost.importtime_us / 1000, ".1f"), "", ""],
        [f"modules added ({len(cost.added_modules)})", "-", added, ""],
        [
            "`redis` imported by `import lockkit`",
            "yes" if cost.redis_imported else "no",
            *_verdict_cells(no_redis),
        ],
    ]
    for first in cost.first_lock:
        arg = f'backend="{first.backend_arg}"' if first.backend_arg else "default selection"
        note = "imports redis" if first.redis_imported else "no redis import"
        construct = _num(median(first.construct_ms), ".1f")
        pair = _num(median(first.first_pair_ms), ".2f")
        rows.append([f"first `Lock(path, {arg})` -> {first.backend}", construct, note, ""])
        rows.append([f"then its first acquire+release ({first.backend})", pair, "", ""])
    heaviest = ", ".join(f"`{m}` {us / 1000:.1f} ms" for m, us in cost.heaviest) or "-"
    runs = len(cost.first_lock[0].construct_ms) if cost.first_lock else 0
    intro = (
        f"{len(cost.bare_ms)} fresh interpreters per variant, run alternately (medians); "
        f"the first `Lock(...)` timed inside {runs} fresh interpreters each. Heaviest "
        f"modules `import lockkit` adds (self time): {heaviest}."
    )
    header = ["What", "ms", "Target / note", "Status"]
    return ["## Import cost", "", intro, "", *_table(header, rows)]


def _cold(cold: Cold, verdicts: list[Verdict]) -> list[str]:
    from benchmarks.cold import BARE, FILELOCK  # noqa: PLC0415 - only for this section

    found = {v.subject: v for v in verdicts if v.measurement == "cold"}
    rows = [
        [
            _subject(f"`{row.subject}`", row.error),
            _num(row.median_ms, ".1f"),
            _num(cold.ratio(row.subject, BARE), ".2f", "x"),
            _num(cold.ratio(row.subject, FILELOCK), ".2f", "x"),
            *_verdict_cells(found.get(row.subject)),
        ]
        for row in cold.rows
    ]
    header = ["Fresh process", "ms (median)", "x python -c pass", "x filelock fresh"]
    trips = [
        [
            f"{t.subject}: {t.error}"
            if t.error.startswith("not available")
            else _subject(t.subject, t.error),
            *(_num(t.p(p), ".3f") for p in (50, 90, 99)),
            str(len(t.ms)),
        ]
        for t in cold.round_trips
    ]
    notes = "".join(f" {note}." for note in cold.notes)
    intro = (
        f"Whole-process wall time of each command, {cold.runs} fresh processes each, run "
        f"round-robin after a warm-up round (medians); every lock on its own path.{notes}"
    )
    trips_intro = (
        "A program that keeps one `lockkit coprocess` instead: one acquire+release round "
        "trip over its JSON Lines, beside a warm acquire+release pair inside one process."
    )
    return [
        "## Cold start",
        "",
        intro,
        "",
        *_table([*header, "Target", "Status"], rows),
        "",
        trips_intro,
        "",
        *_table(["Acquire+release", "p50 ms", "p90 ms", "p99 ms", "pairs"], trips),
    ]


def _summary(verdicts: list[Verdict]) -> list[str]:
    rows = [[v.measurement, v.subject, v.target, v.measured, f"**{v.status}**"] for v in verdicts]
    met = sum(v.met is True for v in verdicts)
    header = ["Measurement", "Subject", "Target", "Measured", "Status"]
    return ["## Targets", "", f"{met} of {len(verdicts)} met.", "", *_table(header, rows)]


def markdown(results: Results) -> str:
    """The whole report as Markdown."""
    parts = [_header(results)]
    if results.uncontended:
        parts.append(_uncontended(results))
    if results.handoff:
        parts.append(_handoff(results))
    if results.contended:
        parts.append(_contended(results))
    if results.importcost is not None:
        parts.append(_import(results.importcost, results.verdicts))
    if results.cold is not None:
        parts.append(_cold(results.cold, results.verdicts))
    if results.verdicts:
        parts.append(_summary(results.verdicts))
    return "\n\n".join("\n".join(part) for part in parts) + "\n"
