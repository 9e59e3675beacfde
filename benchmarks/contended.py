"""Contended throughput: P processes x K locked read-modify-write increments of a counter.

lockkit's backends run through ``lockkit._stress.run_increments`` (the check that
``lockkit doctor`` and the tests use). Raw ``flock`` and the peers run through
`run_peer_increments` here, which does the same work the same way: ``spawn``-ed
processes, the lock object built before a start barrier, the clock started when the
barrier opens and stopped when the last process reports, the counter a file next to
the lock, and every process reaped. Lost updates must be 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from benchmarks.stats import median
from benchmarks.subjects import lockkit_spec, make_locker

if TYPE_CHECKING:
    from benchmarks.settings import Sizes
    from benchmarks.subjects import Subject

__all__ = ["ContendedRow", "ContendedRun", "measure", "peer_worker", "run_peer_increments"]


@dataclasses.dataclass
class ContendedRun:
    """One increment run.

    Attributes:
        final: The counter at the end (``processes * increments`` when nothing was lost).
        seconds: From the start barrier to the last process reporting.
        error: Errors from the run (a process that failed, a timeout), if any.
    """

    final: int = 0
    seconds: float = float("nan")
    error: str = ""

    def pairs_per_second(self) -> float:
        """Locked increments per second across all processes."""
        return self.final / self.seconds if self.seconds > 0 else float("nan")


@dataclasses.dataclass
class ContendedRow:
    """One subject's contended result: ``Sizes.contended_repeats`` runs.

    Attributes:
        subject: The subject's name.
        kind: ``raw``, ``lockkit`` or ``peer``.
        family: Its family.
        processes: Contending processes.
        increments: Increments per process.
        runs: Every run, in order.
    """

    subject: str
    kind: str
    family: str
    processes: int
    increments: int
    runs: list[ContendedRun] = dataclasses.field(default_factory=list)

    @property
    def error(self) -> str:
        """The errors of all runs, if any."""
        return "; ".join(run.error for run in self.runs if run.error)

    @property
    def lost(self) -> int:
        """Increments lost over all runs; must be 0."""
        return sum(self.processes * self.increments - run.final for run in self.runs)

    @property
    def pairs_per_second(self) -> float:
        """The median run's locked increments per second across all processes."""
        rates = [run.pairs_per_second() for run in self.runs if not run.error]
        return median(rates)


def _read_counter(path: str) -> int:
    with open(path, "rb") as handle:  # noqa: PTH123
        data = handle.read()
    return int(data) if data.strip() else 0


def peer_worker(  # noqa: PLR0917 - multiprocessing passes arguments positionally
    factory: str,
    lock_path: str,
    counter_path: str,
    redis_url: str | None,
    increments: int,
    barrier: Any,
    results: Any,
) -> None:
    """Child process body: ``increments`` read-modify-write cycles under the lock."""
    error = ""
    locker = None
    try:
        locker = make_locker(factory, lock_path, redis_url)
        barrier.wait()
        acquire, release = locker.acquire, locker.release
        for _ in range(increments):
            acquire()
            try:
                value = _read_counter(counter_path)
                with open(counter_path, "wb") as handle:  # noqa: PTH123
                    handle.write(str(value + 1).encode())
            finally:
                release()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        error = f"{type(exc).__name__}: {exc}"
        barrier.abort()
    finally:
        if locker is not None:
            with contextlib.suppress(Exception):
                locker.close()
    results.put((os.getpid(), error))


def run_peer_increments(
    directory: str, subject: Subject, redis_url: str | None, sizes: Sizes
) -> ContendedRun:
    """The increment run of `lockkit._stress.run_increments`, for any `Subject`."""
    run = ContendedRun()
    ctx = multiprocessing.get_context("spawn")
    lock_path = os.path.join(directory, f"contended-{subject.slug}.lock")  # noqa: PTH118
    counter_path = os.path.join(directory, f"contended-{subject.slug}.count")  # noqa: PTH118
    with open(counter_path, "wb") as handle:  # noqa: PTH123
        handle.write(b"0")
    barrier = ctx.Barrier(sizes.processes + 1)
    results = ctx.Queue()
    children = [
        ctx.Process(
            target=peer_worker,
            args=(
                subject.factory,
                lock_path,
                counter_path,
                redis_url,
                sizes.increments,
                barrier,
                results,
            ),
            daemon=True,
        )
        for _ in range(sizes.processes)
    ]
    errors: list[str] = []
    try:
        for child in children:
            child.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=sizes.contended_timeout)
        start = time.monotonic()
        deadline = start + sizes.contended_timeout
        for _ in children:
            _, error = results.get(timeout=max(0.1, deadline - time.monotonic()))
            if error:
                errors.append(error)
        run.seconds = time.monotonic() - start
        for child in children:
            child.join(timeout=max(0.1, deadline - time.monotonic()))
        run.final = _read_counter(counter_path)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            if child.pid is not None:
                child.join()
        results.close()
        results.join_thread()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(counter_path)  # noqa: PTH108
    run.error = "; ".join(errors)
    return run


def _run_lockkit(
    directory: str, subject: Subject, redis_url: str | None, sizes: Sizes
) -> ContendedRun:
    from lockkit._stress import run_increments  # noqa: PLC0415 - only when measured

    try:
        result = run_increments(
            directory,
            lockkit_spec(subject, redis_url),
            processes=sizes.processes,
            increments=sizes.increments,
            timeout=sizes.contended_timeout,
            name=f"contended-{subject.slug}",
        )
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return ContendedRun(error=f"{type(exc).__name__}: {exc}")
    return ContendedRun(result.final, result.seconds, "; ".join(result.errors))


def measure(
    subjects: list[Subject], directory: str, redis_url: str | None, sizes: Sizes
) -> list[ContendedRow]:
    """Run the increment check ``Sizes.contended_repeats`` times per waiting subject.

    The repetitions are interleaved (every subject once, then again in reverse order),
    so that load from elsewhere on the machine spreads over all subjects.
    """
    waiting = [s for s in subjects if s.waits]
    rows = {
        s.name: ContendedRow(s.name, s.kind, s.family, sizes.processes, sizes.increments)
        for s in waiting
    }
    for repeat in range(sizes.contended_repeats):
        for subject in waiting if repeat % 2 == 0 else reversed(waiting):
            run = _run_lockkit if subject.kind == "lockkit" else run_peer_increments
            rows[subject.name].runs.append(run(directory, subject, redis_url, sizes))
    return list(rows.values())
