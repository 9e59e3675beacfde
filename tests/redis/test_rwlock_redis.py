"""Shared (read) locks and ReadWriteLock on the redis backend, against a real server."""

from __future__ import annotations

import os
import pathlib
import threading
import time
import uuid

import pytest

import lockkit
from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend
from lockkit.errors import SharedLocksUnsupported
from tests.multiprocess.test_rwlock import (
    CTX,
    WAIT,
    Processes,
    check_exclusion,
    check_writer_preference,
    hold_until_killed,
    processes,
)

pytestmark = pytest.mark.redis

__all__ = ["processes"]  # a fixture, imported for the multiprocess scenarios


@pytest.fixture
def name() -> str:
    """A lock name of this test's own on the session's server."""
    return f"rw-{uuid.uuid4().hex}"


def _backend(redis_url: str) -> RedisBackend:
    backend = lockkit.Lock("probe", backend=redis_url).backend
    assert isinstance(backend, RedisBackend)
    return backend


def test_readers_share_and_writers_exclude(redis_url: str, name: str) -> None:
    backend = _backend(redis_url)
    assert backend.capabilities.shared
    first = backend.try_acquire(name, Owner.current(), 30, shared=True)
    second = backend.try_acquire(name, Owner.current(), 30, shared=True)
    assert first is not None
    assert second is not None
    assert second.fencing_token is not None
    assert first.fencing_token is not None
    assert second.fencing_token > first.fencing_token
    assert backend.try_acquire(name, Owner.current(), 30) is None
    info = backend.inspect(name)
    assert info is not None
    assert info.shared
    assert info.owner is not None
    assert info.owner.pid == os.getpid()
    assert info.expires is not None
    assert "readers" in info.describe()
    assert backend.release(first) is True
    assert backend.release(first) is False  # released already: not ours any more
    assert backend.try_acquire(name, Owner.current(), 30) is None
    assert backend.release(second) is True
    assert backend.inspect(name) is None
    writer = backend.try_acquire(name, Owner.current(), 30)
    assert writer is not None
    assert backend.try_acquire(name, Owner.current(), 30, shared=True) is None
    info = backend.inspect(name)
    assert info is not None
    assert not info.shared
    assert backend.release(writer) is True


def test_a_reader_that_stops_renewing_expires(redis_url: str, name: str) -> None:
    backend = _backend(redis_url)
    reader = backend.try_acquire(name, Owner.current(), 0.3, shared=True)
    assert reader is not None
    assert backend.refresh(reader, 0.3) is True
    started = time.monotonic()
    # No renewal from here on: like a crashed reader. The writer waits for the expiry.
    with lockkit.Lock(name, backend=redis_url).acquire(timeout=10) as writer:
        waited = time.monotonic() - started
        assert writer.is_held()
    assert waited < 5
    assert backend.refresh(reader, 30) is False
    assert backend.release(reader) is False


def test_a_waiting_writer_is_woken_by_the_last_reader(redis_url: str, name: str) -> None:
    # A 5 s poll: a writer that is not handed the lock when the reader leaves waits
    # that long; a hand-off wakes it at once.
    url = f"{redis_url}?poll=5"
    rw = lockkit.ReadWriteLock(name, backend=url)
    backend = rw.backend
    assert isinstance(backend, RedisBackend)
    client = backend._servers[0].client  # noqa: SLF001 - looking at the queue itself
    _, _, waiters = backend._keys(rw.name)  # noqa: SLF001
    acquired: list[float] = []

    def write() -> None:
        with rw.write(timeout=WAIT):
            acquired.append(time.monotonic())

    writer = threading.Thread(target=write)
    with rw.read():
        writer.start()
        # Poll the server until the writer (which took the gate and found readers) has
        # queued for a hand-off.
        deadline = time.monotonic() + WAIT
        while client.llen(waiters) == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert client.llen(waiters) == 1
        released = time.monotonic()
    writer.join(WAIT)
    assert len(acquired) == 1
    assert acquired[0] - released < 2.0
    assert rw.inspect() is None


def test_redlock_has_no_shared_locks(redis_url: str, name: str) -> None:
    urls = f"{redis_url},{redis_url}"
    backend = lockkit.Lock("probe", backend=urls).backend
    assert not backend.capabilities.shared
    assert RedisBackend.capabilities.shared  # one server can
    with pytest.raises(SharedLocksUnsupported) as caught:
        lockkit.ReadWriteLock(name, backend=urls)
    assert "not this one" in str(caught.value)
    assert "redis" in caught.value.supported
    with pytest.raises(SharedLocksUnsupported, match="Redlock"):
        backend.try_acquire(name, Owner.current(), 30, shared=True)


@pytest.mark.multiprocess
def test_readers_arriving_while_a_writer_waits_queue_behind_it(
    redis_url: str, name: str, tmp_path: pathlib.Path, processes: Processes
) -> None:
    log_path = tmp_path / "events.log"
    log_path.touch()
    check_writer_preference(redis_url, name, log_path, processes)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_writers_and_readers_exclude_each_other(
    redis_url: str, name: str, tmp_path: pathlib.Path, processes: Processes
) -> None:
    check_exclusion(redis_url, name, tmp_path, processes, increments=50)


@pytest.mark.multiprocess
def test_a_killed_reader_stops_blocking_writers_after_its_ttl(
    redis_url: str, name: str, processes: Processes
) -> None:
    ready = CTX.Event()
    reader = processes.start(hold_until_killed, redis_url, name, "read", ready, 1.0)
    assert ready.wait(timeout=WAIT)
    rw = lockkit.ReadWriteLock(name, backend=redis_url)
    with pytest.raises(lockkit.LockTimeout, match="readers"):
        rw.write(timeout=0)
    reader.kill()
    reader.join(timeout=WAIT)
    started = time.monotonic()
    with rw.write(timeout=10):
        waited = time.monotonic() - started
    assert waited < 5  # the reader's entry expired within its 1 s ttl (plus a poll)
