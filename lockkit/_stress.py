"""A short multi-process increment check: P processes x K locked increments of a counter.

``lockkit doctor`` uses it to prove a backend works in a directory, the tests use it to
count lost updates, and the benchmarks to measure contended throughput. Processes are
started with ``spawn`` (a clean interpreter, as a real second program would be), start
together behind a barrier, and are always reaped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
import warnings
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
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
    """

    backend: str
    expected: int
    final: int
    seconds: float
    warnings: tuple[tuple[str, ...], ...]
    errors: tuple[str, ...] = ()

    @property
    def lost(self) -> int:
        """Increments that did not survive: must be 0 for a correct lock."""
        return self.expected - self.final

    @property
    def ops_per_second(self) -> float:
        """Locked increments per second across all processes."""
        return self.final / self.seconds if self.seconds > 0 else 0.0


def _read_counter(path: str) -> int:
    with open(path, "rb") as handle:  # noqa: PTH123
        data = handle.read()
    return int(data) if data.strip() else 0


def increment_worker(  # noqa: PLR0917 - multiprocessing passes args positionally
    lock_path: str,
    counter_path: str,
    backend: str,
    increments: int,
    barrier: Barrier,
    results: Queue[tuple[int, tuple[str, ...], str]],
) -> None:
    """Child process body: ``increments`` read-modify-write cycles under the lock."""
    from lockkit import Lock  # noqa: PLC0415 - imported in the child
    from lockkit.errors import LockkitWarning  # noqa: PLC0415

    seen: list[str] = []
    error = ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LockkitWarning)
            lock = Lock(lock_path, backend=backend, timeout=120)
            barrier.wait()
            for _ in range(increments):
                with lock:
                    # Deliberately racy read-modify-write: only the lock keeps it exact.
                    value = _read_counter(counter_path)
                    with open(counter_path, "wb") as handle:  # noqa: PTH123
                        handle.write(str(value + 1).encode())
            seen = [str(w.message) for w in caught if issubclass(w.category, LockkitWarning)]
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        error = f"{type(exc).__name__}: {exc}"
        # Do not leave the others (and the parent) waiting at the barrier for us.
        barrier.abort()
    results.put((os.getpid(), tuple(seen), error))


def run_increments(
    directory: str,
    backend: str,
    *,
    processes: int = 4,
    increments: int = 100,
    timeout: float = 300.0,
    name: str = "lockkit-stress",
) -> StressResult:
    """Run the increment check in ``directory`` and report what happened.

    Creates ``<name>.lock`` (while held) and ``<name>.count`` in ``directory``; the
    counter file is removed afterwards.
    """
    ctx = multiprocessing.get_context("spawn")
    lock_path = os.path.join(directory, f"{name}.lock")  # noqa: PTH118
    counter_path = os.path.join(directory, f"{name}.count")  # noqa: PTH118
    with open(counter_path, "wb") as handle:  # noqa: PTH123
        handle.write(b"0")
    barrier = ctx.Barrier(processes + 1)
    results: Queue[tuple[int, tuple[str, ...], str]] = ctx.Queue()
    children = [
        ctx.Process(
            target=increment_worker,
            args=(lock_path, counter_path, backend, increments, barrier, results),
            daemon=True,
        )
        for _ in range(processes)
    ]
    collected: list[tuple[int, tuple[str, ...], str]] = []
    try:
        for child in children:
            child.start()
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
    return StressResult(
        backend=backend,
        expected=processes * increments,
        final=final,
        seconds=seconds,
        warnings=tuple(seen for _, seen, _ in collected),
        errors=tuple(error for _, _, error in collected if error),
    )
