"""A Redis server out of memory, or one that evicts keys, on real servers.

``noeviction`` at ``maxmemory``: the server refuses writes, and lockkit must say so
with a `lockkit.LockError` (never a raw redis-py error). Any other policy lets the
server delete lock keys: lockkit warns (and ``lockkit doctor`` shows it).
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator

import pytest

import lockkit
from lockkit.cli import main
from lockkit.errors import BackendUnavailable, LockkitWarning
from tests.redis_server import RedisServer, _server

pytestmark = pytest.mark.redis


def _client(server: RedisServer) -> object:
    import redis

    return redis.Redis.from_url(server.url)


def _fill(server: RedisServer) -> None:
    """Set maxmemory just above what is used, and fill the server up to it."""
    import redis

    client = redis.Redis.from_url(server.url)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + 100_000))
    with pytest.raises(redis.exceptions.OutOfMemoryError):  # noqa: PT012 - fill until it says so
        for index in range(10_000):
            client.set(f"fill:{index}", "x" * 1000)
    # Well over the limit, so a client disconnecting (its buffers freed) cannot undo it.
    client.config_set("maxmemory", str(used // 2))
    client.close()


@pytest.fixture
def full_server() -> Iterator[RedisServer]:
    with _server("--maxmemory-policy", "noeviction") as server:
        yield server


def test_out_of_memory_is_a_lock_error(full_server: RedisServer) -> None:
    url = full_server.url
    held = lockkit.Lock("before", backend=url, timeout=0)
    held.acquire()
    _fill(full_server)
    lock = lockkit.Lock("oom", backend=url, timeout=0)
    with pytest.raises(BackendUnavailable, match=r"out of memory.*noeviction"):
        lock.acquire()
    assert lock.inspect() is None  # reading still works
    held.release()  # a delete is allowed when out of memory
    assert held.inspect() is None


def test_out_of_memory_is_a_lock_error_in_asyncio(full_server: RedisServer) -> None:
    _fill(full_server)

    async def attempt() -> None:
        lock = lockkit.AsyncLock("oom", backend=full_server.url, timeout=0)
        with pytest.raises(BackendUnavailable, match="out of memory"):
            await lock.acquire()

    asyncio.run(attempt())


def test_out_of_memory_on_one_redlock_server_is_tolerated(
    full_server: RedisServer, redis_server: RedisServer
) -> None:
    _fill(full_server)
    with _server() as third:
        url = ",".join(s.url for s in (full_server, redis_server, third))
        lock = lockkit.Lock("oom", backend=url, timeout=0)
        with lock:
            assert lock.is_held()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-random"])
def test_an_evicting_server_is_warned_about(policy: str) -> None:
    with _server("--maxmemory", "64mb", "--maxmemory-policy", policy) as server:
        lock = lockkit.Lock("evicted", backend=server.url)
        with pytest.warns(LockkitWarning, match=f"maxmemory-policy {policy}"), lock:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with lock:  # once per server
                pass


def test_no_warning_without_maxmemory_or_with_noeviction() -> None:
    with (
        _server("--maxmemory-policy", "allkeys-lru") as unlimited,
        _server("--maxmemory", "64mb") as noeviction,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error")
        for server in (unlimited, noeviction):
            with lockkit.Lock("kept", backend=server.url):
                pass


def test_eviction_policy_read_with_config_when_info_is_disabled() -> None:
    args = ("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    with (
        _server(*args, "--rename-command", "INFO", "INFO-off") as server,
        pytest.warns(LockkitWarning, match="allkeys-lru"),
        lockkit.Lock("a", backend=server.url),
    ):
        pass


def test_nothing_said_when_info_and_config_are_disabled() -> None:
    args = ("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    disabled = ("--rename-command", "INFO", "INFO-off", "--rename-command", "CONFIG", "CONFIG-off")
    with _server(*args, *disabled) as server, warnings.catch_warnings():
        warnings.simplefilter("error")
        with lockkit.Lock("a", backend=server.url):
            pass


def test_doctor_warns_about_eviction(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    with _server("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru") as server:
        argv = ["doctor", str(tmp_path), "--backend", server.url, "--processes", "2"]
        main([*argv, "--increments", "2", "--json"])
        report = json.loads(capsys.readouterr().out)
        notes = report["backends"][0]["notes"]
        assert any("maxmemory-policy allkeys-lru" in note for note in notes), notes
        main([*argv, "--increments", "2"])
        assert "note    Redis at" in capsys.readouterr().out
