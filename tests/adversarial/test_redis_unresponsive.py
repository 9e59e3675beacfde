"""Redis servers that accept connections and never answer: every call stays bounded.

Two kinds of silence: a real redis-server frozen with SIGSTOP (the kernel still
accepts connections into its backlog; resumed with SIGCONT at teardown, whatever
happens), and a raw listener that accepts and never reads or replies.

The promise: an acquisition raises `BackendUnavailable` (naming the URL without its
password) or `LockTimeout` within its timeout plus `GRACE` (one second, so an attempt
started just before the deadline can finish its round trip) -- asserted with a margin
of `SLACK`, this is a fault test, not a benchmark. Calls made for no acquisition (a
release, ``timeout=None``) are bounded by the URL's ``socket_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lockkit
from lockkit.backends.redis._conn import GRACE
from lockkit.errors import BackendUnavailable, LockTimeout
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.redis]

SLACK = 0.5
"""Seconds allowed past the documented bound: scheduling, a slow CI machine."""

CAP = 30.0
"""A call still running after this long hangs: the test fails instead of waiting."""

PASSWORD = "s3cret-pw"  # noqa: S105 - a test password, checked never to be shown


@contextlib.contextmanager
def _stopped(server: RedisServer) -> Iterator[None]:
    """``server`` frozen with SIGSTOP; always resumed (never leak a stopped server)."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def frozen(redis_server: RedisServer) -> Iterator[str]:
    """The host:port of a real redis-server stopped with SIGSTOP for the test."""
    with _stopped(redis_server):
        yield f"127.0.0.1:{redis_server.port}"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """The host:port of a listener that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture(params=["frozen", "blackhole"])
def silent(request: pytest.FixtureRequest) -> str:
    """Either kind of server that does not answer."""
    address: str = request.getfixturevalue(request.param)
    return address


def _timed(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """Run ``call`` in a thread; its duration and what it raised. Fails if it hangs."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(CAP)
    elapsed = time.monotonic() - start
    assert not thread.is_alive(), f"still running after {CAP} s"
    return elapsed, outcome[0]


def _acquire(url: str, timeout: float | None, *, asynchronous: bool) -> Callable[[], Any]:
    if not asynchronous:
        return lambda: lockkit.Lock("silent", backend=url).acquire(timeout=timeout)

    async def main() -> None:
        await lockkit.AsyncLock("silent", backend=url).acquire(timeout=timeout)

    return lambda: asyncio.run(main())


def _assert_unavailable(exc: BaseException | None, address: str) -> None:
    assert isinstance(exc, (BackendUnavailable, LockTimeout)), repr(exc)
    if isinstance(exc, BackendUnavailable):
        assert address in str(exc)
        assert PASSWORD not in str(exc)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Lock", "AsyncLock"])
@pytest.mark.parametrize("timeout", [1.0, 0.0])
def test_acquire_ends_within_its_timeout(
    silent: str, timeout: float, *, asynchronous: bool
) -> None:
    url = f"redis://:{PASSWORD}@{silent}/0"
    elapsed, exc = _timed(_acquire(url, timeout, asynchronous=asynchronous))
    _assert_unavailable(exc, silent)
    assert elapsed < timeout + GRACE + SLACK


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Lock", "AsyncLock"])
def test_waiting_forever_ends_within_the_socket_timeout(silent: str, *, asynchronous: bool) -> None:
    # timeout=None: no acquisition deadline; every call is bounded by the URL's.
    url = f"redis://:{PASSWORD}@{silent}/0?socket_timeout=1"
    elapsed, exc = _timed(_acquire(url, None, asynchronous=asynchronous))
    _assert_unavailable(exc, silent)
    assert elapsed < 1 + SLACK


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Lock", "AsyncLock"])
def test_release_against_a_frozen_server_is_bounded(
    redis_server: RedisServer, *, asynchronous: bool
) -> None:
    # The release script's fate is unknown: the lock counts as lost (on_lost), and the
    # call ends within the URL's socket timeout.
    url = f"{redis_server.url}?socket_timeout=1"
    lost: list[object] = []
    if asynchronous:
        lock: Any = lockkit.AsyncLock("held", backend=url, on_lost=lost.append)

        async def main() -> float:
            await lock.acquire(timeout=1)
            with _stopped(redis_server):
                start = time.monotonic()
                await lock.release()
                return time.monotonic() - start

        elapsed = asyncio.run(main())
    else:
        lock = lockkit.Lock("held", backend=url, on_lost=lost.append)
        took: list[float] = []

        def hold_and_release() -> None:
            lock.acquire(timeout=1)
            with _stopped(redis_server):
                start = time.monotonic()
                lock.release()
                took.append(time.monotonic() - start)

        assert _timed(hold_and_release)[1] is None
        elapsed = took[0]
    assert elapsed < 1 + SLACK
    assert lost == [lock]


def test_a_waiter_with_no_timeout_resumes_with_the_server(redis_server: RedisServer) -> None:
    # Frozen for less than the socket timeout: the waiter neither spins nor gives up,
    # and takes the lock once the server answers again and the holder releases.
    holder = lockkit.Lock("resume", backend=redis_server.url)
    holder.acquire(timeout=1)
    waiter = lockkit.Lock("resume", backend=redis_server.url)
    got: list[BaseException | None] = []

    def wait_then_release() -> None:
        with waiter:  # timeout=None
            pass

    thread = threading.Thread(target=lambda: got.append(_timed(wait_then_release)[1]))
    thread.start()
    time.sleep(0.3)  # waiting, queued
    cpu = time.process_time()
    with _stopped(redis_server):
        time.sleep(2)
    assert time.process_time() - cpu < 0.5  # it waited, it did not spin
    holder.release()
    thread.join(CAP)
    assert got == [None]


def test_doctor_against_a_silent_server_finishes(blackhole: str) -> None:
    # Bounded by the URL's socket timeout (5 s by default) plus starting Python: the
    # lock check gives up, and keys are not cleaned up on a server that did not answer.
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "lockkit", "doctor", "--backend", f"redis://{blackhole}/0"],
        capture_output=True,
        text=True,
        timeout=CAP,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert "cannot reach Redis" in result.stdout
    assert elapsed < 5 + 3


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Lock", "AsyncLock"])
def test_a_release_is_not_bounded_by_the_acquisitions_deadline(
    redis_server: RedisServer, *, asynchronous: bool
) -> None:
    # The deadline belongs to the acquisition only: a release made after it (and its
    # grace) has passed still runs against a server that answers.
    lost: list[object] = []
    if asynchronous:

        async def main() -> None:
            lock = lockkit.AsyncLock("late", backend=redis_server.url, on_lost=lost.append)
            await lock.acquire(timeout=0)
            await asyncio.sleep(GRACE + 0.3)
            await lock.release()

        asyncio.run(main())
    else:
        lock = lockkit.Lock("late", backend=redis_server.url, on_lost=lost.append)
        lock.acquire(timeout=0)
        time.sleep(GRACE + 0.3)
        lock.release()
    assert lost == []
    assert lockkit.Lock("late", backend=redis_server.url).inspect() is None
