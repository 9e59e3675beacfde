"""A short multi-process increment check: P processes x K locked increments of a counter.

``lockkit doctor`` uses it to prove a backend works in a directory, the tests use it to
count lost updates, and the benchmarks to measure contended throughput. Processes are
started with ``spawn`` (a clean interpreter, as a real second program would be), start
together behind a barrier, and are always reaped.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import threading
import time
import warnings
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

__all__ = ["StressResult", "run_increments"]


@attrs.frozen
class StressResult:
    """The outcome of `run_increments`.

    Attributes:
        backend: The backend name used.
        expected: ``processes * increments``.
        final: The counter's value at the end.
        seconds: Wall time from the barrier to the last process finishing.
        warnings: Per process, the lockkit warnings it emitted (e.g. a hardlink fallback).
        errors: Per failed process, its error text.
        timeouts: Acquisitions that timed out (each skips its increment).
        handoffs: Seconds from a release to the next acquisition by another process.
        cross_client: The subset of ``handoffs`` where the two processes locked through
            different lock paths (clients of one share); empty with one.
    """

    backend: str
    expected: int
    final: int
    seconds: float
    warnings: tuple[tuple[str, ...], ...]
    errors: tuple[str, ...] = ()
    timeouts: int = 0
    handoffs: tuple[float, ...] = ()
    cross_client: tuple[float, ...] = ()

    @property
    def lost(self) -> int:
        """Increments made under the lock that did not survive: 0 for a correct lock.

        Acquisitions that timed out made no increment, so they are not counted here.
        """
        return self.expected - self.timeouts - self.final

    @property
    def ops_per_second(self) -> float:
        """Locked increments per second across all processes."""
        return self.final / self.seconds if self.seconds > 0 else 0.0


def _read_counter(path: str) -> int:
    with open(path, "rb") as handle:  # noqa: PTH123
        data = handle.read()
    return int(data) if data.strip() else 0


# What a worker reports: pid, warnings, error, timeouts, (acquired, released) moments.
_Report = tuple[int, tuple[str, ...], str, int, tuple[tuple[float, float], ...]]


def increment_worker(  # noqa: PLR0917 - multiprocessing passes args positionally
    lock_path: str,
    counter_path: str,
    backend: str,
    increments: int,
    barrier: Barrier,
    results: Queue[_Report],
    acquire_timeout: float = 120.0,
) -> None:
    """Child process body: ``increments`` read-modify-write cycles under the lock.

    Records when each acquisition and release happened (``time.monotonic``, one clock
    for every process of the machine), for hand-off latencies.
    """
    from lockkit import Lock  # noqa: PLC0415 - imported in the child
    from lockkit.errors import LockkitWarning, LockTimeout  # noqa: PLC0415

    seen: list[str] = []
    error = ""
    timeouts = 0
    moments: list[tuple[float, float]] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LockkitWarning)
            lock = Lock(lock_path, backend=backend, timeout=acquire_timeout)
            barrier.wait()
            for _ in range(increments):
                try:
                    lock.acquire()
                except LockTimeout:
                    timeouts += 1
                    continue
                acquired = time.monotonic()
                try:
                    # Deliberately racy read-modify-write: only the lock keeps it exact.
                    value = _read_counter(counter_path)
                    with open(counter_path, "wb") as handle:  # noqa: PTH123
                        handle.write(str(value + 1).encode())
                finally:
                    released = time.monotonic()
                    lock.release()
                moments.append((acquired, released))
            seen = [str(w.message) for w in caught if issubclass(w.category, LockkitWarning)]
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        error = f"{type(exc).__name__}: {exc}"
        # Do not leave the others (and the parent) waiting at the barrier for us.
        barrier.abort()
    results.put((os.getpid(), tuple(seen), error, timeouts, tuple(moments)))


def _handoffs(
    reports: list[tuple[int, int, tuple[tuple[float, float], ...]]],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Release-to-acquisition gaps between processes, and those between clients.

    ``reports`` gives each process's pid, client number and (acquired, released)
    moments. Holdings never overlap (the lock excludes), so sorted by acquisition each
    one follows the previous release.
    """
    held = sorted(
        (acquired, released, pid, client)
        for pid, client, moments in reports
        for acquired, released in moments
    )
    pairs = [(before, after) for before, after in itertools.pairwise(held) if before[2] != after[2]]
    return (
        tuple(after[0] - before[1] for before, after in pairs),
        tuple(after[0] - before[1] for before, after in pairs if before[3] != after[3]),
    )


def run_increments(
    directory: str,
    backend: str,
    *,
    processes: int = 4,
    increments: int = 100,
    timeout: float = 300.0,
    name: str = "lockkit-stress",
    lock_dirs: Sequence[str] = (),
    acquire_timeout: float = 120.0,
) -> StressResult:
    """Run the increment check in ``directory`` and report what happened.

    Creates ``<name>.lock`` (while held) and ``<name>.count`` in ``directory``; the
    counter file is removed afterwards. With ``lock_dirs`` (one directory seen through
    several clients of a share, say), the lock lives there instead, the processes are
    dealt round-robin over them, and ``directory`` keeps only the counter.
    """
    ctx = multiprocessing.get_context("spawn")
    lock_name = f"{name}.lock"
    lock_paths = [os.path.join(d, lock_name) for d in lock_dirs or (directory,)]  # noqa: PTH118
    counter_path = os.path.join(directory, f"{name}.count")  # noqa: PTH118
    with open(counter_path, "wb") as handle:  # noqa: PTH123
        handle.write(b"0")
    barrier = ctx.Barrier(processes + 1)
    results: Queue[_Report] = ctx.Queue()
    children = [
        ctx.Process(
            target=increment_worker,
            args=(
                lock_paths[index % len(lock_paths)],
                counter_path,
                backend,
                increments,
                barrier,
                results,
                acquire_timeout,
            ),
            daemon=True,
        )
        for index in range(processes)
    ]
    client_of = {}
    collected: list[_Report] = []
    try:
        for index, child in enumerate(children):
            child.start()
            client_of[child.pid] = index % len(lock_paths)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=timeout)
        start = time.monotonic()
        deadline = start + timeout
        collected.extend(
            results.get(timeout=max(0.1, deadline - time.monotonic())) for _ in children
        )
        seconds = time.monotonic() - start
        for child in children:
            child.join(timeout=max(0.1, deadline - time.monotonic()))
        final = _read_counter(counter_path)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()
        results.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(counter_path)  # noqa: PTH108
    handoffs, cross_client = _handoffs(
        [(report[0], client_of.get(report[0], 0), report[4]) for report in collected]
    )
    return StressResult(
        backend=backend,
        expected=processes * increments,
        final=final,
        seconds=seconds,
        warnings=tuple(report[1] for report in collected),
        errors=tuple(report[2] for report in collected if report[2]),
        timeouts=sum(report[3] for report in collected),
        handoffs=handoffs,
        cross_client=cross_client,
    )
