"""Redis faults on real servers, under contention: what lockkit promises, it keeps.

Each case runs 6 processes taking one lock 40 times (`tests.helpers.fencing`), injects
the fault once the first process is 15 acquisitions in (an event, not a sleep), and
counts lost updates, double holders, non-increasing fencing tokens and errors that are
not a `lockkit.LockError`. Where lockkit promises order (Redlock with a minority
faulty), tokens must strictly increase; where it cannot (one server that forgets its
data), the test asserts the documented behaviour instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pathlib
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator

import pytest

import lockkit
from tests.helpers.fencing import FencedRun, run_fenced
from tests.redis_server import RedisServer, redis_binary

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow]

QUICK = "?socket_connect_timeout=0.5&socket_timeout=1&poll=0.2"


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    started: list[RedisServer] = []

    def start(*extra: str) -> RedisServer:
        binary = redis_binary()
        if binary is None:
            pytest.skip("no redis-server")
        server = RedisServer(binary, pathlib.Path(tempfile.mkdtemp(prefix="lockkit-f-")), *extra)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.process is not None and server.process.poll() is None:
                os.kill(server.process.pid, signal.SIGCONT)  # in case a case stopped it
            server.kill()
            shutil.rmtree(server.directory, ignore_errors=True)


def _run(url: str, during: Callable[[], None] | None = None) -> FencedRun:
    return run_fenced(url, processes=6, acquisitions=40, milestone_at=15, during=during)


def _command(server: RedisServer, *args: str) -> None:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        client.execute_command(*args)  # type: ignore[no-untyped-call]
    except redis.ConnectionError:
        pass  # CLIENT KILL or DEBUG SLEEP may cut our own connection
    finally:
        client.close()


def _assert_safe(run: FencedRun, *, ordered: bool = True, complete: bool = True) -> None:
    assert run.escaped == ()
    if complete:
        assert run.acquisitions == 240
    assert run.lost_updates == 0
    assert run.double_holders == 0
    if ordered:
        assert run.non_increasing == 0


@pytest.mark.parametrize("persistence", ["none", "appendonly"])
def test_redlock_server_restarted_mid_run(
    servers: Callable[..., RedisServer], persistence: str
) -> None:
    extra = ("--appendonly", "yes", "--appendfsync", "always") if persistence != "none" else ()
    group = [servers(*extra), servers(), servers()]

    def restart() -> None:
        group[0].kill()
        group[0].start()

    _assert_safe(_run(",".join(s.url + QUICK for s in group), restart))


def test_redlock_one_of_three_down(servers: Callable[..., RedisServer]) -> None:
    group = [servers(), servers(), servers()]
    group[2].kill()
    _assert_safe(_run(",".join(s.url + QUICK for s in group)))


def test_redlock_one_server_stopped_mid_run(servers: Callable[..., RedisServer]) -> None:
    group = [servers(), servers(), servers()]

    def stop() -> None:
        assert group[1].process is not None
        os.kill(group[1].process.pid, signal.SIGSTOP)

    # Safe, but slow: each command to the stopped server waits out socket_timeout
    # (three per acquisition), so waiters may time out (LockTimeout). Not yet skipped
    # by a circuit breaker; kept short here with a 0.2 s socket timeout.
    fast = "?socket_connect_timeout=0.2&socket_timeout=0.2&poll=0.2"
    url = ",".join(s.url + fast for s in group)
    run = run_fenced(url, processes=3, acquisitions=10, milestone_at=3, during=stop)
    _assert_safe(run, complete=False)
    assert all(error.startswith(("LockTimeout", "BackendUnavailable")) for error in run.errors)


def test_redlock_two_of_three_down_is_a_clean_error(servers: Callable[..., RedisServer]) -> None:
    group = [servers(), servers(), servers()]
    group[0].kill()
    group[1].kill()
    with pytest.raises(lockkit.BackendUnavailable):
        lockkit.Lock("x", backend=",".join(s.url + QUICK for s in group), timeout=0).acquire()


@pytest.mark.parametrize(
    "fault",
    [("CLIENT", "KILL", "TYPE", "normal"), ("DEBUG", "SLEEP", "0.5")],
    ids=["client-kill", "debug-sleep"],
)
def test_one_server_connection_faults(
    servers: Callable[..., RedisServer], fault: tuple[str, ...]
) -> None:
    server = servers("--enable-debug-command", "local")
    _assert_safe(_run(server.url + QUICK, lambda: _command(server, *fault)))


def test_one_server_flushall_is_documented_loss(servers: Callable[..., RedisServer]) -> None:
    # FLUSHALL drops the holder's key and the fencing counter: a second holder may get
    # in (documented: one server cannot keep that promise). What must hold: nothing but
    # LockError escapes, every acquisition completes, and fencing tokens keep rising (a
    # lost counter restarts from the server's clock), so storage that checks them
    # refuses the late holder's writes.
    server = servers()
    run = _run(server.url + QUICK, lambda: _command(server, "FLUSHALL"))
    assert run.escaped == ()
    assert run.acquisitions == 240
    # Tokens are logged in the order holders write them. A holder whose key FLUSHALL
    # dropped may still write after the next holder (a double holder): its one late,
    # smaller token is what a fencing check in storage refuses. What must not happen is
    # a counter restarting low, which would put every later token behind the earlier
    # ones (reverting the clock floor: ~200 behind).
    behind, highest = 0, 0
    for token in run.tokens:
        behind += token <= highest
        highest = max(highest, token)
    assert behind <= run.double_holders, (behind, run.double_holders)
    assert len(set(run.tokens)) == len(run.tokens)


def test_one_server_restarted_without_its_data_keeps_tokens_rising(
    servers: Callable[..., RedisServer],
) -> None:
    server = servers()
    url = server.url + QUICK
    lock = lockkit.Lock("restart/fence", backend=url)
    tokens = []
    for _ in range(3):
        with lock:
            assert lock.lease is not None
            tokens.append(lock.lease.fencing_token)
    server.kill()
    server.start()  # the same port, no persistence: the counter is gone
    # The pooled connection died with the old server: the first call may say so.
    with contextlib.suppress(lockkit.BackendUnavailable), lock.acquire(timeout=10):
        assert lock.lease is not None
        tokens.append(lock.lease.fencing_token)
    for _ in range(3):
        with lock.acquire(timeout=10):
            assert lock.lease is not None
            tokens.append(lock.lease.fencing_token)
    numbers = [t for t in tokens if isinstance(t, int)]
    assert len(numbers) == len(tokens), tokens
    assert all(b > a for a, b in itertools.pairwise(numbers)), numbers
    assert all(0 < t < 2**53 for t in numbers), numbers  # exact in JavaScript
