"""ReadWriteLock in one process, and the filelock backend's shared locks it rests on."""

from __future__ import annotations

import os
import pathlib
import threading
import time
from collections.abc import Callable

import pytest

import lockkit
from lockkit import _notify
from lockkit._info import Owner
from lockkit.backends.excl import ExclBackend
from lockkit.backends.filelock import FilelockBackend
from lockkit.errors import LockError, LockNotHeld, LockTimeout, SharedLocksUnsupported

pytestmark = [pytest.mark.fs]


@pytest.fixture
def path(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "rw.lock")


def _in_thread(action: Callable[[], object]) -> BaseException | None:
    """Run ``action`` in another thread; return what it raised, if anything."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return caught[0] if caught else None


# -- the filelock backend's shared locks ------------------------------------------------


def test_capabilities_say_who_can_share() -> None:
    assert FilelockBackend.capabilities.shared
    assert not ExclBackend.capabilities.shared


def test_shared_leases_coexist_and_release_only_their_own_flock(path: str) -> None:
    backend = FilelockBackend()
    first = backend.try_acquire(path, Owner.current(), None, shared=True)
    second = backend.try_acquire(path, Owner.current(), None, shared=True)
    assert first is not None
    assert second is not None
    assert backend.try_acquire(path, Owner.current(), None) is None
    assert backend.release(first) is True
    # The second reader still holds: a writer is still refused, a reader let in.
    assert backend.try_acquire(path, Owner.current(), None) is None
    third = backend.try_acquire(path, Owner.current(), None, shared=True)
    assert third is not None
    assert backend.release(second) is True
    assert backend.release(third) is True
    writer = backend.try_acquire(path, Owner.current(), None)
    assert writer is not None
    backend.release(writer)


def test_an_exclusive_holder_refuses_shared_attempts(path: str) -> None:
    backend = FilelockBackend()
    writer = backend.try_acquire(path, Owner.current(), None)
    assert writer is not None
    try:
        assert backend.try_acquire(path, Owner.current(), None, shared=True) is None
        info = backend.inspect(path)
        assert info is not None
        assert not info.shared
        assert info.owner is not None
        assert info.owner.token == writer.token
    finally:
        backend.release(writer)
    reader = backend.try_acquire(path, Owner.current(), None, shared=True)
    assert reader is not None
    backend.release(reader)


def test_inspect_while_readers_hold_reports_shared_and_keeps_the_payload(path: str) -> None:
    backend = FilelockBackend()
    writer = backend.try_acquire(path, Owner.current(), None)
    assert writer is not None
    backend.release(writer)
    payload = pathlib.Path(path).read_bytes()
    assert backend.inspect(path) is None
    readers = [backend.try_acquire(path, Owner.current(), None, shared=True) for _ in range(2)]
    try:
        info = backend.inspect(path)
        assert info is not None
        # The file still names the earlier writer; a reader holding must not report it.
        assert info.shared
        assert info.owner is None
        assert "readers" in info.describe()
        assert pathlib.Path(path).read_bytes() == payload
    finally:
        for lease in readers:
            assert lease is not None
            backend.release(lease)
    assert backend.inspect(path) is None
    assert pathlib.Path(path).read_bytes() == payload


@pytest.mark.skipif(not _notify.available(), reason="needs inotify")
def test_a_readers_release_is_the_event_a_waiting_writer_sleeps_on(path: str) -> None:
    backend = FilelockBackend()
    reader = backend.try_acquire(path, Owner.current(), None, shared=True)
    assert reader is not None
    armed = threading.Event()
    woken: list[bool | None] = []

    def still_busy() -> bool:
        armed.set()  # the watch is in place: a release from now on must be seen
        return True

    def watch() -> None:
        directory, filename = os.path.split(path)
        woken.append(
            _notify.wait_for_event(directory, filename, _notify.IN_CLOSE_WRITE, still_busy, 30)
        )

    thread = threading.Thread(target=watch)
    thread.start()
    assert armed.wait(30)
    backend.release(reader)
    thread.join(30)
    assert woken == [True]


# -- ReadWriteLock ----------------------------------------------------------------------


def test_a_backend_without_shared_locks_is_refused_naming_those_with_them(path: str) -> None:
    with pytest.raises(SharedLocksUnsupported) as caught:
        lockkit.ReadWriteLock(path, backend="excl")
    assert caught.value.backend == "excl"
    assert "filelock" in caught.value.supported
    message = str(caught.value)
    assert "'excl' cannot take shared (read) locks" in message
    assert "filelock" in message
    assert isinstance(caught.value, lockkit.LockError)


def test_the_refusal_says_where_the_backend_choice_came_from(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", "excl")
    with pytest.raises(SharedLocksUnsupported, match="chosen by LOCKKIT_BACKEND"):
        lockkit.ReadWriteLock(path)


def test_names_and_the_gate(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock")
    assert rw.name == path
    assert rw.gate_name == path + ".gate"
    assert rw.backend.name == "filelock"
    assert rw.selection.source == "argument"
    assert "rw.lock" in repr(rw)


def test_threads_of_one_object_read_together_and_a_writer_waits(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock", timeout=30)
    inside = threading.Barrier(3, timeout=30)

    def read() -> None:
        with rw.read():
            inside.wait()  # both readers inside at once, or this breaks

    threads = [threading.Thread(target=read) for _ in range(2)]
    with rw.read():
        for thread in threads:
            thread.start()
        inside.wait()
        refused = _in_thread(lambda: rw.write(timeout=0))
        assert isinstance(refused, LockTimeout)
    for thread in threads:
        thread.join(30)
    with rw.write(timeout=5) as hold:
        assert hold.mode == "write"
        assert isinstance(_in_thread(lambda: rw.read(timeout=0)), LockTimeout)


def test_a_timeout_names_the_lock_and_its_readers(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock")
    with rw.read():
        error = _in_thread(lambda: rw.write(timeout=0.05))
    assert isinstance(error, LockTimeout)
    assert error.name == path
    assert error.holder is not None
    assert error.holder.shared
    assert "held by readers" in str(error)


def test_a_reader_queued_behind_a_waiting_writer_times_out_naming_the_lock(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock")
    results: list[BaseException | None] = []
    with rw.read():
        writer = threading.Thread(
            target=lambda: results.append(_in_thread(lambda: rw.write().release()))
        )
        writer.start()
        deadline = time.monotonic() + 30
        while rw.backend.inspect(rw.gate_name) is None and time.monotonic() < deadline:
            time.sleep(0.002)  # polling the gate's state, which the writer thread sets
        # Only readers hold the lock, yet a new reader waits: the writer is first.
        error = _in_thread(lambda: rw.read(timeout=0.2))
    assert isinstance(error, LockTimeout)
    assert error.name == path
    assert error.timeout == pytest.approx(0.2)
    writer.join(30)
    assert results == [None]


def test_nested_holds_count_and_upgrades_are_refused(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock")
    with rw.read() as outer:
        with rw.read() as inner:
            assert inner.lease is outer.lease
        with pytest.raises(LockError, match="upgrading deadlocks"):
            rw.write(timeout=0)
        info = rw.inspect()
        assert info is not None
        assert info.shared
    with rw.write() as outer:
        with rw.read() as inner, rw.write() as again:
            assert inner.lease is outer.lease
            assert again.lease is outer.lease
        info = rw.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
    assert rw.inspect() is None


def test_holds_are_released_once_in_reverse_order_by_their_thread(path: str) -> None:
    rw = lockkit.ReadWriteLock(path, backend="filelock")
    outer = rw.write()
    inner = rw.read()
    with pytest.raises(LockError, match="reverse order"):
        outer.release()
    assert isinstance(_in_thread(inner.release), LockNotHeld)
    inner.release()
    with pytest.raises(LockNotHeld, match="already released"):
        inner.release()
    outer.release()
    assert rw.inspect() is None
