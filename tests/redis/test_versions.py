"""Redis lock versions, the Redlock class, and waiters shared by threads.

A holder's value carries its version (fence, renewals): `inspect` reports it as
``LockInfo.identity``, a refresh bumps it, and `break_lock` refuses a reading that is
out of date, on one server and on a Redlock.
"""

from __future__ import annotations

import threading
import uuid

import pytest

import lockkit
from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend, RedisWaiter, RedlockBackend
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def name() -> str:
    """A lock name of this test's own."""
    return f"versions-{uuid.uuid4().hex}"


def _check_versions(backend: RedisBackend, name: str) -> None:
    lease = backend.try_acquire(name, Owner.current(), 30)
    assert lease is not None
    first = backend.inspect(name)
    assert first is not None
    assert first.identity == (lease.fencing_token, 0)
    assert first.fencing_token == lease.fencing_token
    assert backend.refresh(lease, 30)
    second = backend.inspect(name)
    assert second is not None
    assert second.identity == (lease.fencing_token, 1)
    assert not backend.break_lock(name, first)  # refreshed since it was read
    assert backend.inspect(name) is not None
    assert backend.release(lease)  # the version does not get in the release's way
    again = backend.try_acquire(name, Owner.current(), 30)
    assert again is not None
    third = backend.inspect(name)
    assert third is not None
    assert third.identity is not None
    assert third.identity != second.identity  # a new holding, a new version
    assert backend.break_lock(name, third)
    assert backend.inspect(name) is None


def test_versions_on_one_server(redis_url: str, name: str) -> None:
    backend = RedisBackend.from_url(redis_url)
    try:
        _check_versions(backend, name)
    finally:
        backend.close()


def test_versions_on_a_redlock(redlock_servers: list[RedisServer], name: str) -> None:
    backend = RedisBackend.from_url(",".join(server.url for server in redlock_servers))
    try:
        _check_versions(backend, name)
    finally:
        backend.close()


def test_several_urls_make_a_redlock_without_shared_locks(
    redlock_servers: list[RedisServer],
) -> None:
    urls = [server.url for server in redlock_servers]
    for backend in (RedisBackend.from_url(",".join(urls)), RedisBackend(urls)):
        try:
            assert type(backend) is RedlockBackend
            assert not backend.capabilities.shared
            assert backend.quorum == 2
        finally:
            backend.close()
    assert not RedlockBackend.capabilities.shared
    assert RedisBackend.capabilities.shared
    single = RedisBackend.from_url(urls[0])
    try:
        assert type(single) is RedisBackend
    finally:
        single.close()


_THREADS = 6
_ROUNDS = 40


def test_threads_waiting_in_one_process_never_overlap(redis_url: str, name: str) -> None:
    # Each acquisition has its own waiter; the threads' listeners come from one pool.
    backend = RedisBackend.from_url(redis_url)
    counter = [0]
    inside = [0]
    overlaps = [0]
    guard = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(_THREADS)

    def work() -> None:
        try:
            lock = lockkit.Lock(name, backend=backend, timeout=60)
            start.wait()
            for _ in range(_ROUNDS):
                with lock:
                    with guard:
                        inside[0] += 1
                        overlaps[0] += inside[0] > 1
                    value = counter[0]
                    counter[0] = value + 1  # a lost update if another thread were here
                    with guard:
                        inside[0] -= 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(_THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert overlaps[0] == 0
        assert counter[0] == _THREADS * _ROUNDS
        assert len(backend.listeners[0]._idle) <= _THREADS  # noqa: SLF001 - reused, not leaked
        waiter = backend.waiter(name)
        assert isinstance(waiter, RedisWaiter)
        assert waiter.entry == ""  # a fresh waiter starts outside the queue
        assert backend.inspect(name) is None
    finally:
        backend.close()


def test_an_uncontended_acquisition_subscribes_to_nothing(redis_url: str, name: str) -> None:
    # A listener is subscribed when some acquisition first has to wait, not before.
    backend = RedisBackend.from_url(redis_url)
    try:
        lock = lockkit.Lock(name, backend=backend, timeout=10)
        for _ in range(3):
            with lock:
                pass
        assert not backend.listeners[0].has_idle()
        other = lockkit.Lock(name, backend=backend, timeout=10)
        with lock, pytest.raises(lockkit.LockTimeout):
            other.acquire(timeout=0.05)  # waits: subscribes, then gives it back
        assert backend.listeners[0].has_idle()
    finally:
        backend.close()
