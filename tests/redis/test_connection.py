"""The connections each thread (and event loop) keeps to Redis for lock scripts.

`lockkit.backends.redis._conn` replaces redis-py's per-command pool checkout, so these
tests pin what a checkout gave: scripts load again after the server forgot them, a
connection the server closed is replaced, a thread's connection goes back to the pool
when the thread ends, a forked child never talks on its parent's socket, and a late
reply never reaches the next command. They also pin that a command whose reply was
lost is not sent again.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend
from lockkit.backends.redis import _conn as _redis_conn
from lockkit.backends.redis._conn import pack_command
from lockkit.errors import BackendUnavailable
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from lockkit._info import Lease

pytestmark = pytest.mark.redis


@pytest.fixture
def make_backend() -> Iterator[Callable[[str], RedisBackend]]:
    """Backends for a URL, closed after the test: their sockets are not left to the GC."""
    made: list[RedisBackend] = []

    def make(url: str) -> RedisBackend:
        made.append(RedisBackend.from_url(url))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def _pair(backend: RedisBackend, name: str) -> Lease:
    lease = backend.try_acquire(name, Owner.current(), 30.0)
    assert lease is not None, f"{name} was not free"
    assert backend.release(lease)
    return lease


def _client(backend: RedisBackend) -> Any:
    return backend._servers[0].client  # noqa: SLF001 - the server the scripts run on


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "abc", 2, "k1", "k2", "payload"),
        ("SET", "ключ", "é\n\r\0", "PX", -1),
        ("GET", b"\xff\x00bytes", ""),
    ],
)
def test_pack_command_matches_redis_py(args: tuple[str | bytes | int, ...]) -> None:
    from redis import connection

    # redis-py's own packer (untyped, and its Encoder is not re-exported: Any).
    redis_connection: Any = connection
    encode = redis_connection.Encoder("utf-8", "strict", decode_responses=False).encode
    expected = b"".join(redis_connection.PythonRespSerializer(6000, encode).pack(*args))
    assert pack_command(args) == expected


def test_script_runs_again_after_the_server_forgot_it(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    name = f"flushed-{uuid.uuid4().hex}"
    first = _pair(backend, name)
    _client(backend).script_flush()
    second = _pair(backend, name)
    assert first.fencing_token is not None
    assert (second.fencing_token or 0) > first.fencing_token  # the counter, or the clock


def test_connection_closed_by_the_server_is_replaced_after_idle(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    name = f"killed-idle-{uuid.uuid4().hex}"
    _pair(backend, name)
    killed = _client(backend).client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    # Every connection counts as idle: it is checked (and reconnected) before use.
    monkeypatch.setattr(_redis_conn, "IDLE_CHECK", -1.0)
    lease = _pair(backend, name)
    assert lease.fencing_token is not None


def test_reply_lost_is_not_sent_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    name = f"killed-busy-{uuid.uuid4().hex}"
    first = _pair(backend, name)
    monkeypatch.setattr(_redis_conn, "IDLE_CHECK", 3600.0)  # the connection counts as busy
    assert _client(backend).client_kill_filter(_type="normal", skipme=True) >= 1
    # Sending works (the socket is open on our side); the reply never comes. Whether the
    # server ran the script is unknown, so it is reported, not silently run twice.
    with pytest.raises(BackendUnavailable, match="cannot reach Redis"):
        backend.try_acquire(name, Owner.current(), 30.0)
    # The dead connection was dropped: the next command works, and the lock is free
    # (the server closed the connection before running anything).
    second = _pair(backend, name)
    assert first.fencing_token is not None
    assert (second.fencing_token or 0) > first.fencing_token  # the counter, or the clock


def test_failed_send_is_sent_again_on_a_connection_of_its_own(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    connection = backend._servers[0].acquire.connection  # noqa: SLF001
    assert connection.execute("ECHO", "before") == b"before"
    held = connection.held
    assert held is not None
    # Our side of the socket stops writing: the next send fails with EPIPE, so the
    # command reached nobody and is sent again on a fresh connection.
    held.conn._sock.shutdown(socket.SHUT_WR)  # noqa: SLF001
    assert connection.execute("ECHO", "again") == b"again"
    del held  # the dropped connection's holder is gone: it was given back once
    mine = connection.held
    assert mine is not None
    pool = _client(backend).connection_pool
    # Given back twice, the pool would count the thread's connection as free too, and
    # hand it to the next caller: two users on one socket.
    assert mine.conn not in pool._available_connections  # noqa: SLF001
    other = pool.get_connection()
    try:
        assert other is not mine.conn
    finally:
        pool.release(other)


def test_async_server_down_is_unavailable_then_back(
    redis_server: RedisServer, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(f"{redis_server.url}?socket_connect_timeout=0.5")
    name = f"down-async-{uuid.uuid4().hex}"

    async def main() -> None:
        await _async_pair(backend, name)
        redis_server.kill()
        await asyncio.sleep(_redis_conn.IDLE_CHECK * 2)  # idle: the close is noticed
        for _ in range(2):  # the second attempt starts from an empty stack
            with pytest.raises(BackendUnavailable, match="cannot reach Redis"):
                await backend.try_acquire_async(name, Owner.current(), 30.0)
        redis_server.start()
        await _async_pair(backend, name)

    asyncio.run(main())


def test_thread_connections_go_back_to_the_pool(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    pool = _client(backend).connection_pool
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(20):
                _pair(backend, f"threads-{index}-{uuid.uuid4().hex}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    gc.collect()
    assert errors == []
    assert len(pool._in_use_connections) == 0  # noqa: SLF001 - nothing leaked
    assert 1 <= len(pool._available_connections) <= 8  # noqa: SLF001 - reused, not remade


_FORKED = """
import os, sys
from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend

backend = RedisBackend.from_url(sys.argv[1])
def pairs(name, count):
    fences = []
    for _ in range(count):
        lease = backend.try_acquire(name, Owner.current(), 30.0)
        assert lease is not None and backend.release(lease)
        fences.append(lease.fencing_token)
    assert fences == sorted(set(fences)), fences
pairs(sys.argv[2] + "-before", 5)  # the parent's thread now keeps a connection
pid = os.fork()
pairs(sys.argv[2] + ("-child" if pid == 0 else "-parent"), 300)
if pid == 0:
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.multiprocess
def test_forked_child_uses_a_connection_of_its_own(redis_url: str) -> None:
    # A child writing on its parent's socket would read the parent's replies (or hang),
    # so 300 pairs in each process at once, each checking its fences, would fail.
    # Forked from a fresh interpreter: this one (pytest's) may run threads.
    name = f"forked-{uuid.uuid4().hex}"
    done = subprocess.run(
        [sys.executable, "-c", _FORKED, redis_url, name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr


def test_interrupted_read_never_reaches_the_next_command(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    from redis.exceptions import TimeoutError as RedisTimeout

    backend = make_backend(f"{redis_url}?socket_timeout=0.1")
    connection = backend._servers[0].acquire.connection  # noqa: SLF001
    empty = f"empty-{uuid.uuid4().hex}"
    # The server answers BLPOP after 0.5 s, long after the client gave up on it: that
    # late reply must not be read as the answer to the next command.
    with pytest.raises(RedisTimeout):
        connection.execute("BLPOP", empty, "0.5")
    assert connection.execute("ECHO", "after") == b"after"


def _async_pair(backend: RedisBackend, name: str) -> Any:
    async def pair() -> Lease:
        lease = await backend.try_acquire_async(name, Owner.current(), 30.0)
        assert lease is not None, f"{name} was not free"
        assert await backend.release_async(lease)
        return lease

    return pair()


def test_async_script_runs_again_after_the_server_forgot_it(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    name = f"flushed-async-{uuid.uuid4().hex}"

    async def main() -> tuple[Lease, Lease]:
        first = await _async_pair(backend, name)
        _client(backend).script_flush()
        return first, await _async_pair(backend, name)

    first, second = asyncio.run(main())
    assert first.fencing_token is not None
    assert (second.fencing_token or 0) > first.fencing_token  # the counter, or the clock


def test_async_connection_closed_by_the_server(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, make_backend: Callable[[str], RedisBackend]
) -> None:
    backend = make_backend(redis_url)
    name = f"killed-async-{uuid.uuid4().hex}"

    idle_check = _redis_conn.IDLE_CHECK

    async def main() -> None:
        await _async_pair(backend, name)
        # Busy (not idle): the reply is lost, which is reported, not run again...
        monkeypatch.setattr(_redis_conn, "IDLE_CHECK", 3600.0)
        assert _client(backend).client_kill_filter(_type="normal", skipme=True) >= 1
        with pytest.raises(BackendUnavailable, match="cannot reach Redis"):
            await backend.try_acquire_async(name, Owner.current(), 30.0)
        # ...and then the lock is free on a fresh connection.
        await _async_pair(backend, name)
        # Idle: the idle check finds the closed connection and reconnects it. Really
        # idle: the loop must run to see the server's close (the check reads it).
        monkeypatch.setattr(_redis_conn, "IDLE_CHECK", idle_check)
        assert _client(backend).client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(idle_check * 2)
        await _async_pair(backend, name)

    asyncio.run(main())


def test_async_interrupted_read_never_reaches_the_next_command(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    from lockkit.backends.redis._async import for_backend

    backend = make_backend(redis_url)
    empty = f"empty-async-{uuid.uuid4().hex}"

    async def main() -> tuple[bytes, Any]:
        await _async_pair(backend, f"warm-{empty}")  # the loop's side exists now
        loop = asyncio.get_running_loop()
        connections = for_backend(backend)._loops[loop].connections  # noqa: SLF001
        # Cancelled while the server still holds the BLPOP (it answers after 0.5 s).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connections.execute("BLPOP", empty, "0.5"), 0.1)
        echoed = await connections.execute("ECHO", "after")
        return echoed, connections

    echoed, connections = asyncio.run(main())
    assert echoed == b"after"
    assert connections.idle == []  # given back to the pool when the loop shut down


def test_async_tasks_share_the_loop_connections(
    redis_url: str, make_backend: Callable[[str], RedisBackend]
) -> None:
    from lockkit.backends.redis._async import for_backend

    backend = make_backend(redis_url)

    async def main() -> tuple[int, int]:
        names = [f"tasks-{i}-{uuid.uuid4().hex}" for i in range(8)]
        for _ in range(5):
            await asyncio.gather(*(_async_pair(backend, name) for name in names))
        side = for_backend(backend)._loops[asyncio.get_running_loop()]  # noqa: SLF001
        pool = side.client.connection_pool
        return len(side.connections.idle), len(pool._in_use_connections)  # noqa: SLF001

    idle, in_use = asyncio.run(main())
    # Eight tasks at once need at most eight connections, all idle between commands.
    assert 1 <= idle <= 8
    assert in_use == idle
