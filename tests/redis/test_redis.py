"""The redis backend against real Redis/Valkey servers."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import threading

import pytest

import lockkit
from lockkit._stress import run_increments
from lockkit.cli import main
from lockkit.errors import BackendUnavailable, LockTimeout
from tests.helpers.paused import take_over_from_paused_holder
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_lock_roundtrip_and_inspect(redis_url: str) -> None:
    lock = lockkit.Lock("jobs/nightly", backend=redis_url)
    assert lock.selection.backend == "redis"
    with lock:
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        assert info.expires is not None
        assert lock.lease is not None
        assert info.fencing_token == lock.lease.fencing_token
        with pytest.raises(LockTimeout) as caught:
            lockkit.Lock("jobs/nightly", backend=redis_url).acquire(timeout=0)
        assert f"pid {os.getpid()}" in str(caught.value)
    assert lock.inspect() is None


def test_fencing_tokens_increase(redis_url: str) -> None:
    lock = lockkit.Lock("fenced", backend=redis_url)
    tokens = []
    for _ in range(5):
        with lock:
            assert lock.lease is not None
            assert lock.lease.fencing_token is not None
            tokens.append(lock.lease.fencing_token)
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 5


def test_paths_under_root_become_relative_keys(redis_url: str, tmp_path: pathlib.Path) -> None:
    url = f"{redis_url}?root={tmp_path}"
    lock = lockkit.Lock(tmp_path / "agents" / "a1" / "sessions" / "s.jsonl.lock", backend=url)
    assert lock.name == "agents/a1/sessions/s.jsonl.lock"
    other = lockkit.Lock(pathlib.Path("/elsewhere/x.lock"), backend=url)
    assert other.name == "/elsewhere/x.lock"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_no_lost_updates_across_processes(redis_url: str, tmp_path: pathlib.Path) -> None:
    result = run_increments(str(tmp_path), redis_url, processes=8, increments=300, timeout=300)
    assert result.errors == ()
    assert result.lost == 0
    assert result.final == 2400


@pytest.mark.multiprocess
@pytest.mark.slow
def test_no_lost_updates_with_redlock(
    redlock_servers: list[RedisServer], tmp_path: pathlib.Path
) -> None:
    url = ",".join(server.url for server in redlock_servers)
    result = run_increments(str(tmp_path), url, processes=8, increments=300, timeout=300)
    assert result.errors == ()
    assert result.lost == 0
    assert result.final == 2400


def test_release_wakes_the_waiter_without_polling(redis_url: str) -> None:
    # With a 60 s re-check interval, only the release message can wake the waiter
    # before its 20 s timeout.
    url = f"{redis_url}?poll=60"
    holder = lockkit.Lock("wake", backend=url)
    holder.acquire()
    waiting = threading.Event()
    outcome: list[str] = []

    def waiter() -> None:
        lock = lockkit.Lock("wake", backend=url)
        waiting.set()
        try:
            lock.acquire(timeout=20)
        except LockTimeout:
            outcome.append("timeout")
        else:
            outcome.append("acquired")
            lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    # Let the waiter fail its first attempt and join the hand-off queue: watch the
    # queue's length instead of sleeping.
    backend = holder.backend
    queue = f"{backend.prefix}{{wake}}:waiters"  # type: ignore[attr-defined]
    client = backend._servers[0].client  # type: ignore[attr-defined]  # noqa: SLF001
    for _ in range(2000):
        if client.llen(queue) >= 1:
            break
        threading.Event().wait(0.005)
    else:
        pytest.fail("the waiter never joined the queue")
    holder.release()
    thread.join(30)
    assert outcome == ["acquired"]


@pytest.mark.multiprocess
def test_paused_holder_loses_lock_to_a_higher_fencing_token(redis_url: str) -> None:
    waiter, before = take_over_from_paused_holder("paused", redis_url)
    assert before is not None
    assert before.fencing_token is not None
    assert waiter.lease is not None
    assert waiter.lease.fencing_token is not None
    assert waiter.lease.fencing_token > before.fencing_token
    waiter.release()


def test_server_down_then_back(redis_server: RedisServer) -> None:
    url = f"{redis_server.url}?socket_connect_timeout=0.5"
    held = lockkit.Lock("outage", backend=url)
    held.acquire()
    redis_server.kill()
    with pytest.raises(BackendUnavailable) as caught:
        lockkit.Lock("outage-2", backend=url).acquire(timeout=0)
    assert f"127.0.0.1:{redis_server.port}" in str(caught.value)
    redis_server.start()
    # The same process, the same pool: new acquisitions work again.
    with lockkit.Lock("outage-3", backend=url, timeout=5) as lock:
        assert lock.is_held()


def test_redlock_survives_one_of_three_down(redlock_servers: list[RedisServer]) -> None:
    url = ",".join(server.url for server in redlock_servers) + "&socket_connect_timeout=0.5"
    url = url.replace("/0&", "/0?", 1) if "?" not in url else url
    redlock_servers[0].kill()
    with lockkit.Lock("quorum", backend=url, timeout=5) as lock:
        assert lock.is_held()


def test_redlock_with_two_of_three_down_fails_cleanly(
    redlock_servers: list[RedisServer],
) -> None:
    urls = [f"{server.url}?socket_connect_timeout=0.5" for server in redlock_servers]
    redlock_servers[0].kill()
    redlock_servers[1].kill()
    with pytest.raises(BackendUnavailable):
        lockkit.Lock("quorum", backend=",".join(urls)).acquire(timeout=0)
    # The surviving server holds no partial key.
    import redis

    client = redis.Redis.from_url(redlock_servers[2].url)
    assert client.keys("lockkit:*quorum*") in ([], [b"lockkit:{quorum}:fence"])
    assert client.get("lockkit:{quorum}") is None
    client.close()


def test_tls(redis_tls: tuple[RedisServer, pathlib.Path]) -> None:
    server, ca_file = redis_tls
    url = f"{server.url}?ssl_ca_certs={ca_file}"
    with lockkit.Lock("tls", backend=url, timeout=5) as lock:
        assert lock.is_held()


def test_unix_socket(redis_server: RedisServer, tmp_path: pathlib.Path) -> None:
    del tmp_path
    socket_path = redis_server.directory / "redis.sock"
    redis_server.kill()
    redis_server.extra = ("--unixsocket", str(socket_path))
    redis_server.start()
    with lockkit.Lock("unix", backend=f"unix://{socket_path}?db=0", timeout=5) as lock:
        assert lock.is_held()


def test_password_never_leaks(
    redis_server: RedisServer,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "Sup3r-s3cret-pw"  # noqa: S105 - a fake password the test hunts for
    redis_server.kill()
    redis_server.extra = ("--requirepass", secret)
    redis_server.start()
    good = f"redis://:{secret}@127.0.0.1:{redis_server.port}/0"
    bad = f"redis://:wrong-{secret}@127.0.0.1:{redis_server.port}/0"
    caplog.set_level(logging.DEBUG)
    texts = []
    lock = lockkit.Lock("secret", backend=good)
    with lock:
        texts += [repr(lock), repr(lock.backend), repr(lock.selection), repr(lock.lease)]
        texts.append(lock.selection.describe())
    with pytest.raises(BackendUnavailable) as caught:
        lockkit.Lock("secret", backend=bad).acquire(timeout=0)
    texts.append(str(caught.value))
    monkeypatch.setenv("LOCKKIT_BACKEND", good)
    for argv in (
        ["doctor", str(tmp_path), "--increments", "2", "--processes", "2"],
        ["doctor", str(tmp_path), "--json", "--increments", "2", "--processes", "2"],
        ["status", "secret"],
        ["status", "secret", "--json"],
        ["backends"],
    ):
        main(argv)
        captured = capsys.readouterr()
        texts.append(captured.out + captured.err)
    texts += [record.getMessage() for record in caplog.records]
    everything = "\n".join(texts)
    assert secret not in everything
    assert "redis://:***@127.0.0.1" in everything


def test_redis_without_a_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", "redis")
    with pytest.raises(lockkit.SettingsError, match="needs a server URL"):
        lockkit.Lock("x")


def test_valkey_scheme(redis_url: str) -> None:
    url = redis_url.replace("redis://", "valkey://", 1)
    with lockkit.Lock("valkey-scheme", backend=url, timeout=5) as lock:
        assert lock.selection.backend == "redis"
        assert lock.is_held()


def test_redlock_waiter_does_not_spin_when_a_server_is_down(
    redlock_servers: list[RedisServer],
) -> None:
    url = ",".join(f"{s.url}?socket_connect_timeout=0.2&poll=0.2" for s in redlock_servers)
    holder = lockkit.Lock("spin", backend=url)
    holder.acquire()
    redlock_servers[0].kill()
    waiter = lockkit.Lock("spin", backend=url)
    attempts = 0
    original = waiter.backend.try_acquire

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal attempts
        attempts += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    waiter.backend.try_acquire = counting  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(LockTimeout):
            waiter.acquire(timeout=1.0)
    finally:
        del waiter.backend.try_acquire
        holder.release()
    # One attempt per re-check interval (0.2 s) or message, not thousands.
    assert attempts < 30


def test_backends_reports_the_configured_server(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", redis_server.url)
    assert main(["backends", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["redis"]["available"] is True
    assert "configured by LOCKKIT_BACKEND" in rows["redis"]["reason"]
    assert "the server answers" in rows["redis"]["reason"]
    redis_server.stop()
    assert main(["backends", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["redis"]["available"] is False
    assert "cannot reach Redis" in rows["redis"]["reason"]


def test_doctor_leaves_no_keys_behind(
    redis_server: RedisServer,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import redis

    monkeypatch.setenv("LOCKKIT_BACKEND", redis_server.url)
    assert main(["doctor", str(tmp_path), "--increments", "3", "--processes", "2"]) == 0
    assert "lost" in capsys.readouterr().out  # it did run the increment check
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.keys("lockkit:*") == []
    finally:
        client.close()
