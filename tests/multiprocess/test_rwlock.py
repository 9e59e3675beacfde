"""Read/write locks with real processes on the filelock backend.

Readers overlap; a writer waits for the readers holding; while a writer waits, readers
that arrive later queue behind it (no writer starvation); writers exclude readers and
each other (0 lost updates, 0 torn reads); a reader or a waiting writer killed with
SIGKILL frees what it held. Every event is logged with ``O_APPEND`` lines, so the
order of enters and exits across processes can be checked afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import threading
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from typing import TYPE_CHECKING

import pytest

import lockkit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = [pytest.mark.fs, pytest.mark.multiprocess]

BACKEND = "filelock"
WAIT = 60.0  # generous bound for barriers and events: a hang fails, it never passes
CTX = multiprocessing.get_context("spawn")


def _log(log_path: str, line: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def records(log_path: pathlib.Path) -> list[tuple[str, int]]:
    pairs = (line.split() for line in log_path.read_text().splitlines())
    return [(event, int(pid)) for event, pid in pairs]


# -- process bodies ----------------------------------------------------------------------


def hold_read(backend: str, path: str, log_path: str, inside: Barrier, leave: Event) -> None:
    """Take the read lock, meet everyone at ``inside`` while holding, wait for ``leave``."""
    rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT)
    me = os.getpid()
    with rw.read():
        _log(log_path, f"read-enter {me}")
        inside.wait(timeout=WAIT)  # breaks (and fails the test) if readers exclude
        if not leave.wait(timeout=WAIT):
            raise TimeoutError("never told to leave")
        _log(log_path, f"read-exit {me}")


def write_once(backend: str, path: str, log_path: str) -> None:
    """Take the write lock once and log entering and leaving."""
    rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT)
    me = os.getpid()
    with rw.write():
        _log(log_path, f"write-enter {me}")
        _log(log_path, f"write-exit {me}")


def read_late(backend: str, path: str, log_path: str, tried: Barrier) -> None:
    """Arrive while a writer waits: a non-blocking read must fail, a blocking one queue."""
    rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT)
    me = os.getpid()
    try:
        hold = rw.read(timeout=0)
    except lockkit.LockTimeout:
        _log(log_path, f"late-refused {me}")
    else:
        _log(log_path, f"late-let-in {me}")  # a writer-preferring lock never gets here
        hold.release()
    tried.wait(timeout=WAIT)
    with rw.read():
        _log(log_path, f"late-enter {me}")


def write_increments(  # noqa: PLR0917 - multiprocessing passes args positionally
    backend: str,
    path: str,
    a_path: str,
    b_path: str,
    increments: int,
    start: Barrier,
    results: Queue[str],
) -> None:
    """Read-modify-write two files that must always be equal, under the write lock."""
    error = ""
    try:
        rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT)
        start.wait(timeout=WAIT)
        for _ in range(increments):
            with rw.write():
                value = _read_int(a_path)
                assert value is not None
                # Two separate writes: between them a reader without the lock sees a != b.
                pathlib.Path(a_path).write_text(str(value + 1))
                pathlib.Path(b_path).write_text(str(value + 1))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        error = f"{type(exc).__name__}: {exc}"
        start.abort()
    results.put(f"writer {error}")


def read_pairs(  # noqa: PLR0917 - multiprocessing passes args positionally
    backend: str,
    path: str,
    a_path: str,
    b_path: str,
    start: Barrier,
    writers_done: Event,
    results: Queue[str],
) -> None:
    """Read both files under the read lock until the writers are done; count torn reads."""
    reads = torn = 0
    error = ""
    try:
        rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT)
        start.wait(timeout=WAIT)
        while not writers_done.is_set() or reads < 20:
            with rw.read():
                a, b = _read_int(a_path), _read_int(b_path)
            reads += 1
            if a is None or a != b:
                torn += 1
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        error = f"{type(exc).__name__}: {exc}"
        start.abort()
    results.put(f"reader {reads} {torn} {error}")


def hold_until_killed(
    backend: str, path: str, mode: str, ready: Event, ttl: float | None = None
) -> None:
    """Take the lock in ``mode`` ("read" or "write"), say so, and block until SIGKILL."""
    rw = lockkit.ReadWriteLock(path, backend=backend, timeout=WAIT, ttl=ttl)
    if mode == "read":
        rw.read()
    else:
        rw.write()
    ready.set()
    threading.Event().wait()


def _read_int(path: str) -> int | None:
    text = pathlib.Path(path).read_text()
    return int(text) if text.strip() else None


# -- helpers ---------------------------------------------------------------------------


class Processes:
    """Spawned processes that are always killed and reaped at the end of the test."""

    def __init__(self) -> None:
        self.started: list[SpawnProcess] = []

    def start(self, target: Callable[..., object], *args: object) -> SpawnProcess:
        process = CTX.Process(target=target, args=args, daemon=True)
        process.start()
        self.started.append(process)
        return process

    def join_all(self) -> list[int | None]:
        for process in self.started:
            process.join(timeout=WAIT)
        return [process.exitcode for process in self.started]


@pytest.fixture
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        for process in group.started:
            if process.is_alive():
                process.kill()
            process.join()


def wait_until_gate_held_by(rw: lockkit.ReadWriteLock, writer: SpawnProcess) -> None:
    """Return once ``writer`` holds the gate, i.e. it waits for the main lock.

    The state lives in another process, so this polls the gate's payload (no event to
    wait on); it proves the writer is queued, whatever the timing.
    """
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and writer.is_alive():
        info = rw.backend.inspect(rw.gate_name)
        if info is not None and info.owner is not None and info.owner.pid == writer.pid:
            return
        time.sleep(0.002)
    pytest.fail(f"process {writer.pid} never started waiting at the gate {rw.gate_name}")


# -- scenarios, shared with the redis tests ------------------------------------------------


def check_writer_preference(
    backend: str, name: str, log_path: pathlib.Path, processes: Processes
) -> None:
    """Readers hold; a writer waits for them; readers arriving meanwhile queue behind it."""
    rw = lockkit.ReadWriteLock(name, backend=backend)
    inside = CTX.Barrier(3)
    leave = CTX.Event()
    for _ in range(2):
        processes.start(hold_read, backend, name, str(log_path), inside, leave)
    # Both readers and this process meet while both readers hold the read lock.
    inside.wait(timeout=WAIT)
    writer = processes.start(write_once, backend, name, str(log_path))
    wait_until_gate_held_by(rw, writer)
    # The writer waits: it has not got in, and the readers still hold shared.
    info = rw.inspect()
    assert info is not None
    assert info.shared
    late = 3
    tried = CTX.Barrier(late + 1)
    for _ in range(late):
        processes.start(read_late, backend, name, str(log_path), tried)
    # Each late reader has made a non-blocking attempt (while only readers hold the main
    # lock) and is now queueing for a blocking one.
    tried.wait(timeout=WAIT)
    events = [event for event, _ in records(log_path)]
    assert events.count("late-refused") == late
    assert "late-let-in" not in events
    assert "write-enter" not in events
    assert writer.is_alive()
    leave.set()
    assert processes.join_all() == [0] * (3 + late)

    events = [event for event, _ in records(log_path)]
    assert events[:2] == ["read-enter"] * 2
    write_at = events.index("write-enter")
    # The writer got in after the first readers left and before any late reader.
    assert [i for i, event in enumerate(events) if event == "read-exit"] < [write_at] * 2
    late_at = [i for i, event in enumerate(events) if event == "late-enter"]
    assert len(late_at) == late
    assert min(late_at) > events.index("write-exit") > write_at


def check_exclusion(
    backend: str,
    name: str,
    directory: pathlib.Path,
    processes: Processes,
    *,
    writers: int = 3,
    readers: int = 3,
    increments: int = 100,
) -> None:
    """Writers increment two files that must stay equal; readers check them: 0 lost, 0 torn."""
    a_path, b_path = str(directory / "a"), str(directory / "b")
    pathlib.Path(a_path).write_text("0")
    pathlib.Path(b_path).write_text("0")
    start = CTX.Barrier(writers + readers)
    writers_done = CTX.Event()
    results: Queue[str] = CTX.Queue()
    for _ in range(writers):
        processes.start(write_increments, backend, name, a_path, b_path, increments, start, results)
    for _ in range(readers):
        processes.start(read_pairs, backend, name, a_path, b_path, start, writers_done, results)
    reports = [results.get(timeout=WAIT * 2) for _ in range(writers)]
    writers_done.set()
    reports.extend(results.get(timeout=WAIT) for _ in range(readers))
    assert processes.join_all() == [0] * (writers + readers)

    assert sorted(r for r in reports if r.startswith("writer")) == ["writer "] * writers
    reader_reports = [r.split(" ", 3) for r in reports if r.startswith("reader")]
    assert [error for *_, error in reader_reports] == [""] * readers
    torn = sum(int(count) for _, _, count, _ in reader_reports)
    reads = [int(count) for _, count, _, _ in reader_reports]
    lost = writers * increments - (_read_int(a_path) or 0)
    assert (lost, torn) == (0, 0)
    assert _read_int(b_path) == writers * increments
    assert min(reads) >= 20


# -- tests (filelock) -------------------------------------------------------------------


@pytest.fixture
def paths(tmp_path: pathlib.Path) -> tuple[str, pathlib.Path]:
    log_path = tmp_path / "events.log"
    log_path.touch()
    return str(tmp_path / "data.lock"), log_path


def test_readers_hold_the_lock_at_the_same_time(
    paths: tuple[str, pathlib.Path], processes: Processes
) -> None:
    path, log_path = paths
    readers = 4
    inside = CTX.Barrier(readers + 1)
    leave = CTX.Event()
    for _ in range(readers):
        processes.start(hold_read, BACKEND, path, str(log_path), inside, leave)
    # All four readers and this process meet at the barrier while every reader holds
    # the read lock: impossible if readers excluded each other.
    inside.wait(timeout=WAIT)
    info = lockkit.ReadWriteLock(path, backend=BACKEND).inspect()
    assert info is not None
    assert info.shared
    leave.set()
    assert processes.join_all() == [0] * readers
    events = [event for event, _ in records(log_path)]
    assert events == ["read-enter"] * readers + ["read-exit"] * readers


def test_a_writer_waits_for_the_readers_holding(
    paths: tuple[str, pathlib.Path], processes: Processes
) -> None:
    path, log_path = paths
    rw = lockkit.ReadWriteLock(path, backend=BACKEND)
    inside = CTX.Barrier(3)
    leave = CTX.Event()
    for _ in range(2):
        processes.start(hold_read, BACKEND, path, str(log_path), inside, leave)
    inside.wait(timeout=WAIT)
    writer = processes.start(write_once, BACKEND, path, str(log_path))
    wait_until_gate_held_by(rw, writer)
    # The writer is waiting: it has not got in, and the readers still hold shared.
    assert writer.is_alive()
    assert "write-enter" not in {event for event, _ in records(log_path)}
    info = rw.inspect()
    assert info is not None
    assert info.shared
    leave.set()
    assert processes.join_all() == [0, 0, 0]
    events = [event for event, _ in records(log_path)]
    assert events == ["read-enter"] * 2 + ["read-exit"] * 2 + ["write-enter", "write-exit"]


def test_readers_arriving_while_a_writer_waits_queue_behind_it(
    paths: tuple[str, pathlib.Path], processes: Processes
) -> None:
    path, log_path = paths
    check_writer_preference(BACKEND, path, log_path, processes)


@pytest.mark.slow
def test_writers_and_readers_exclude_each_other(
    tmp_path: pathlib.Path, processes: Processes
) -> None:
    check_exclusion(BACKEND, str(tmp_path / "pair.lock"), tmp_path, processes)


def test_a_killed_reader_frees_the_lock_for_a_writer(
    tmp_path: pathlib.Path, processes: Processes
) -> None:
    path = str(tmp_path / "killed.lock")
    rw = lockkit.ReadWriteLock(path, backend=BACKEND)
    ready = CTX.Event()
    reader = processes.start(hold_until_killed, BACKEND, path, "read", ready)
    assert ready.wait(timeout=WAIT)
    with pytest.raises(lockkit.LockTimeout, match="readers"):
        rw.write(timeout=0)
    reader.kill()  # SIGKILL: the kernel drops its flock
    reader.join(timeout=WAIT)
    with rw.write(timeout=10):
        info = rw.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()


def test_a_killed_waiting_writer_stops_blocking_readers(
    tmp_path: pathlib.Path, processes: Processes
) -> None:
    path = str(tmp_path / "queued.lock")
    rw = lockkit.ReadWriteLock(path, backend=BACKEND)
    held = CTX.Event()
    processes.start(hold_until_killed, BACKEND, path, "read", held)
    assert held.wait(timeout=WAIT)
    never = CTX.Event()  # kept referenced: the child unpickles it after start() returns
    writer = processes.start(hold_until_killed, BACKEND, path, "write", never)
    wait_until_gate_held_by(rw, writer)
    with pytest.raises(lockkit.LockTimeout):
        rw.read(timeout=0)  # queued behind the waiting writer
    writer.kill()  # dies holding the gate: the kernel frees it
    writer.join(timeout=WAIT)
    with rw.read(timeout=10):  # the first reader still holds: readers share again
        info = rw.inspect()
        assert info is not None
        assert info.shared


@pytest.mark.realfs
def test_writer_preference_on_exfat_and_fuse(
    realfs_dir: pathlib.Path, tmp_path: pathlib.Path, processes: Processes
) -> None:
    log_path = tmp_path / "events.log"
    log_path.touch()
    check_writer_preference(BACKEND, str(realfs_dir / "data.lock"), log_path, processes)
    assert sorted(os.listdir(realfs_dir)) == ["data.lock", "data.lock.gate"]
