"""The connection each thread keeps to Redis for lock scripts (`_redis_conn`).

It replaces redis-py's per-command pool checkout and retries, so these tests pin what
those gave: scripts load again after the server forgot them, a connection the server
closed is replaced, a thread's connection goes back to the pool when the thread ends,
and a forked child never talks on its parent's socket. They also pin what lockkit does
differently: a command whose reply was lost is not sent again.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from lockkit._info import Owner
from lockkit.backends import _redis_conn
from lockkit.backends._redis_conn import pack_command
from lockkit.backends.redis import RedisBackend
from lockkit.errors import BackendUnavailable

if TYPE_CHECKING:
    from lockkit._info import Lease

pytestmark = pytest.mark.redis


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


def test_script_runs_again_after_the_server_forgot_it(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url)
    name = f"flushed-{uuid.uuid4().hex}"
    first = _pair(backend, name)
    _client(backend).script_flush()
    second = _pair(backend, name)
    assert first.fencing_token is not None
    assert second.fencing_token == first.fencing_token + 1


def test_connection_closed_by_the_server_is_replaced_after_idle(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend.from_url(redis_url)
    name = f"killed-idle-{uuid.uuid4().hex}"
    _pair(backend, name)
    killed = _client(backend).client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    # Every connection counts as idle: the pool checks it (and reconnects) before use.
    monkeypatch.setattr(_redis_conn, "IDLE_CHECK", -1.0)
    lease = _pair(backend, name)
    assert lease.fencing_token is not None


def test_reply_lost_is_not_sent_again(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = RedisBackend.from_url(redis_url)
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
    assert second.fencing_token == first.fencing_token + 1


def test_thread_connections_go_back_to_the_pool(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url)
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
