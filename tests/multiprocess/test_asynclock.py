"""4 processes x 4 asyncio tasks, each incrementing a counter under AsyncLock: 0 lost.

The increment is a deliberately racy read-modify-write with an ``await`` between the
read and the write, so tasks of one process interleave there unless the lock keeps
them apart; only the lock keeps the final count exact. Two tasks of each process share
one lock object (they meet at its per-task guard), two have their own (they contend
through the backend like separate processes). Each process also reports how many
threads it ever ran: waiting on a file backend must not start any.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import threading
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import attrs
import pytest

import lockkit

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

PROCESSES = 4
TASKS = 4
INCREMENTS = 100


@attrs.frozen
class AsyncIncrements:
    """What `run_async_increments` saw.

    Attributes:
        final: The counter at the end.
        expected: ``processes * tasks * increments``.
        errors: Per failed process, its error.
        max_threads: Per process, the most threads it ran at once.
    """

    final: int
    expected: int
    errors: tuple[str, ...]
    max_threads: tuple[int, ...]

    @property
    def lost(self) -> int:
        return self.expected - self.final


def _read(path: str) -> int:
    with open(path, "rb") as handle:
        data = handle.read()
    return int(data) if data.strip() else 0


def _write(path: str, value: int) -> None:
    with open(path, "wb") as handle:
        handle.write(str(value).encode())


def async_incrementer(  # noqa: PLR0917 - multiprocessing passes args positionally
    lock_name: str,
    counter: str,
    backend: str,
    tasks: int,
    increments: int,
    barrier: Barrier,
    results: Queue[tuple[str, int]],
) -> None:
    """Child process: ``tasks`` asyncio tasks doing ``increments`` locked increments each."""
    import asyncio

    most_threads = threading.active_count()

    async def incrementer(lock: lockkit.AsyncLock) -> None:
        nonlocal most_threads
        for _ in range(increments):
            async with lock:
                value = _read(counter)
                await asyncio.sleep(0)  # let the other tasks run between read and write
                _write(counter, value + 1)
            most_threads = max(most_threads, threading.active_count())

    async def main() -> None:
        shared = lockkit.AsyncLock(lock_name, backend=backend, timeout=120)
        locks = [shared, shared] + [
            lockkit.AsyncLock(lock_name, backend=backend, timeout=120) for _ in range(tasks - 2)
        ]
        # Blocking, but nothing else runs in this loop yet: all start together.
        barrier.wait(60)
        await asyncio.gather(*(incrementer(lock) for lock in locks))

    error = ""
    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        error = f"{type(exc).__name__}: {exc}"
        barrier.abort()
    results.put((error, most_threads))


def run_async_increments(
    lock_name: str,
    counter: pathlib.Path,
    backend: str,
    *,
    processes: int = PROCESSES,
    tasks: int = TASKS,
    increments: int = INCREMENTS,
) -> AsyncIncrements:
    """Run the check with spawned processes and reap them whatever happens."""
    ctx = multiprocessing.get_context("spawn")
    counter.write_bytes(b"0")
    barrier = ctx.Barrier(processes)
    results: Queue[tuple[str, int]] = ctx.Queue()
    children = [
        ctx.Process(
            target=async_incrementer,
            args=(lock_name, str(counter), backend, tasks, increments, barrier, results),
            daemon=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            child.start()
        collected = [results.get(timeout=240) for _ in children]
        for child in children:
            child.join(timeout=60)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()
        results.close()
    return AsyncIncrements(
        final=_read(str(counter)),
        expected=processes * tasks * increments,
        errors=tuple(error for error, _ in collected if error),
        max_threads=tuple(threads for _, threads in collected),
    )


@pytest.mark.fs
@pytest.mark.parametrize("backend", ["excl", "hardlink", "filelock"])
def test_no_lost_updates_between_tasks_and_processes(local_dir: pathlib.Path, backend: str) -> None:
    counter = local_dir / "async.count"
    result = run_async_increments(str(local_dir / "async.lock"), counter, backend)
    assert result.errors == ()
    assert result.final == PROCESSES * TASKS * INCREMENTS
    assert result.lost == 0
    # Waiting used the event loop's inotify descriptor only: no thread in any process.
    assert result.max_threads == (1,) * PROCESSES
    counter.unlink()
    if backend == "filelock":
        # Its lock file stays by design; it must be unlocked.
        assert os.listdir(local_dir) == ["async.lock"]
        assert lockkit.Lock(local_dir / "async.lock", backend="filelock").inspect() is None
    else:
        assert os.listdir(local_dir) == []
