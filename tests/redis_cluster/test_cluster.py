"""Locks in a real Redis Cluster: routing, redirections, wake-ups, a slot moved, a node killed.

The session's cluster (``tests/redis_cluster_server.py``) has 3 masters with a replica
each, all on loopback. Tests that move a slot or kill a node put the cluster back as
they found it (a killed master comes back as a replica of the one that took over).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lockkit
from benchmarks.rediscluster import RedisCluster, command
from lockkit._info import Owner
from lockkit.backends.redis import _scripts
from lockkit.backends.redis._cluster import (
    ClusterServer,
    RedisClusterBackend,
    _Node,
    _Retry,
    cluster_error,
    cluster_text,
    failover_warnings_of,
)
from lockkit.backends.redis._single import RedisBackend
from lockkit.errors import BackendUnavailable, InvalidLockName, SettingsError
from tests.helpers.fencing import run_fenced

pytestmark = pytest.mark.redis


def _key(name: str) -> str:
    return f"lockkit:{{{name}}}"


def _until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds.

    For states that give no event (a queue entry on a server, a counter advancing in
    other processes): checked every few milliseconds.
    """
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {within} s"
        time.sleep(0.005)


def _advanced(token: Callable[[], int], to: int) -> bool:
    return token() >= to


def _backend(url: str) -> RedisClusterBackend:
    backend = RedisBackend.from_url(url)
    assert isinstance(backend, RedisClusterBackend)
    return backend


@pytest.fixture
def other_master(redis_cluster: RedisCluster) -> Iterator[Callable[[str], Any]]:
    """``other_master(name)``: a master that does not serve the lock's slot.

    Every slot moved through it is moved back to where it was after the test.
    """
    moved: list[tuple[int, Any]] = []

    def pick(name: str) -> Any:
        slot = redis_cluster.keyslot(_key(name))
        source = redis_cluster.owner(slot)
        moved.append((slot, source))
        return next(m for m in redis_cluster.masters() if m.node_id != source.node_id)

    yield pick
    for slot, source in moved:
        node = next(n for n in redis_cluster.masters() if n.port == source.port)
        if redis_cluster.owner(slot).node_id != node.node_id:
            redis_cluster.move_slot(slot, node)


# -- scripts and URLs (no server) ------------------------------------------------------


def test_cluster_scripts_publish_to_shard_channels_and_standalone_ones_do_not() -> None:
    for text in ClusterServer.SCRIPTS.values():
        variant = cluster_text(text)
        assert "'publish'" not in variant
        assert variant.count("'spublish'") == text.count("'publish'")
        assert "spublish" not in text
    # Both PUBLISHes of the hand-off (a wake-up, a grant) become SPUBLISH, and the
    # hand-off stops where a migrating slot's old master refuses a key (pcall).
    release = cluster_text(_scripts.RELEASE)
    assert release.count("redis.call('spublish', ") == 2
    assert release.count("redis.pcall(") == 2
    for name in ("RELEASE", "LEAVE", "BREAK", "ACQUIRE_SHARED", "RELEASE_SHARED"):
        text = getattr(_scripts, name)
        assert "redis.pcall(" not in text
        assert cluster_text(text).count("redis.pcall(") == 2, name


def test_cluster_replies_become_their_redis_py_classes_on_any_redis_py() -> None:
    import redis.exceptions as errors

    moved = cluster_error(errors.ResponseError("MOVED 8231 127.0.0.1:7002"))
    assert isinstance(moved, errors.MovedError)
    assert (moved.slot_id, moved.host, moved.port) == (8231, "127.0.0.1", 7002)
    ask = cluster_error(errors.ResponseError("ASK 5 10.0.0.1:7000"))
    assert type(ask) is errors.AskError
    assert isinstance(cluster_error(errors.ResponseError("TRYAGAIN later")), errors.TryAgainError)
    down = cluster_error(errors.ResponseError("CLUSTERDOWN The cluster is down"))
    assert isinstance(down, errors.ClusterDownError)
    other = errors.ResponseError("ERR unknown command")
    assert cluster_error(other) is other
    already = errors.MovedError("1 h:2")
    assert cluster_error(already) is already


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://", "no host:port seed"),
        ("redis+cluster://:hunter2@", "no host:port seed"),
        ("redis+cluster://127.0.0.1:99999", "is not host:port"),
        ("redis+cluster://127.0.0.1:7000/2", "database 0 only"),
        ("redis+cluster://127.0.0.1:7000?db=3", "database 0 only"),
        ("redis+cluster://:hunter2@127.0.0.1:7000,redis://h2:7001", "not supported"),
        ("redis://h2:7001,redis+cluster://:hunter2@127.0.0.1:7000", "not supported"),
        ("redis+cluster://:hunter2@127.0.0.1:7000?socket_timeout=soon", "percent-encode"),
        ("redis+cluster://127.0.0.1:7000?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_wrong_cluster_urls_are_settings_errors(url: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RedisBackend.from_url(url)
    assert says in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SettingsError):
        lockkit.Lock("x", backend=url).acquire(timeout=0)


def test_a_cluster_password_is_never_shown() -> None:
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"redis+cluster://lockkit:hunter2@127.0.0.1:{port},127.0.0.1:{port}"
    backend = _backend(url)
    assert "hunter2" not in repr(backend)
    assert f"lockkit:***@127.0.0.1:{port},127.0.0.1:{port}" in repr(backend)
    assert "hunter2" not in repr(backend.cluster)
    with pytest.raises(BackendUnavailable) as caught:
        lockkit.Lock("x", backend=url).acquire(timeout=0)
    assert "cannot reach Redis" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_tls_cluster_url_makes_tls_connections_to_every_node() -> None:
    import redis

    cluster = _backend("rediss+cluster://127.0.0.1:7000,[::1]:7001?ssl_cert_reqs=none").cluster
    assert cluster.seeds == [("127.0.0.1", 7000), ("::1", 7001)]
    for address in [*cluster.seeds, ("10.0.0.9", 7005)]:  # a node learnt from the map
        pool = cluster.node_at(address).pool
        assert issubclass(pool.connection_class, redis.SSLConnection)
        assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == address
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"


def test_failover_warnings_of_a_master_without_replica() -> None:
    nodes = "\n".join(
        [
            "a" * 40 + " 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8000",
            "b" * 40 + " 10.0.0.2:7001@17001 master - 0 0 2 connected 8001-16000",
            "c" * 40 + f" 10.0.0.3:7002@17002 slave {'a' * 40} 0 0 1 connected",
            "d" * 40 + f" 10.0.0.4:7003@17003 slave,fail {'b' * 40} 0 0 2 disconnected",
        ]
    )
    warnings = failover_warnings_of(nodes)
    assert warnings == [
        (
            "master 10.0.0.2:7001 (slots 8001-16000) has no working replica: if it fails, "
            "its slots stay down and the locks kept there are lost"
        ),
        "383 of 16384 slots are served by no master: locks whose names hash there cannot be taken",
    ]


# -- one cluster -------------------------------------------------------------------------


def test_lock_roundtrip_routes_to_the_slots_master(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    name = "cluster/roundtrip"
    owner = redis_cluster.owner(redis_cluster.keyslot(_key(name)))
    lock = lockkit.Lock(name, backend=redis_cluster_url)
    with lock:
        assert command(owner.port, "EXISTS", _key(name)) == 1
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        assert lock.lease is not None
        assert info.fencing_token == lock.lease.fencing_token
        with pytest.raises(lockkit.LockTimeout):
            lockkit.Lock(name, backend=redis_cluster_url).acquire(timeout=0)
    assert command(owner.port, "EXISTS", _key(name)) == 0
    assert lock.inspect() is None


def test_a_hundred_lock_names_land_on_all_three_masters(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    names = [f"spread/{index}" for index in range(100)]
    backend = _backend(redis_cluster_url)
    for name in names:
        with lockkit.Lock(name, backend=backend):
            pass
    try:
        # Each master says which fence counters (one per lock, kept) it holds.
        held = {
            master.port: command(master.port, "KEYS", "lockkit:{spread/*}:fence")
            for master in redis_cluster.masters()
        }
        counts = {port: len(keys) for port, keys in held.items()}  # type: ignore[arg-type]
        assert len(counts) == 3
        assert sum(counts.values()) == 100, counts
        assert min(counts.values()) > 0, counts
    finally:
        for name in names:
            backend.forget_keys(name)


def test_a_name_without_a_usable_hash_tag_is_refused(redis_cluster_url: str) -> None:
    with pytest.raises(InvalidLockName, match="hash slot"):
        lockkit.Lock("}x", backend=redis_cluster_url).acquire(timeout=0)


def test_a_release_wakes_a_waiter_through_sharded_pubsub(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    # A waiter re-checks only every 10 s: a hand-off within 1 s is the wake-up's doing.
    url = f"{redis_cluster_url}?poll=10"
    name = "cluster/wake"
    owner = redis_cluster.owner(redis_cluster.keyslot(_key(name)))
    holder = lockkit.Lock(name, backend=url)
    holder.acquire()
    got = threading.Event()
    tokens: list[int | None] = []

    def wait() -> None:
        with lockkit.Lock(name, backend=url, timeout=20) as waiter:
            assert waiter.lease is not None
            tokens.append(waiter.lease.fencing_token)
            got.set()

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        _until(lambda: command(owner.port, "LLEN", f"{_key(name)}:waiters") == 1)
        assert holder.lease is not None
        holder_token = holder.lease.fencing_token
        assert holder_token is not None
        released_at = time.monotonic()
        holder.release()
        assert got.wait(timeout=5), "the waiter was not woken by the release"
        assert time.monotonic() - released_at < 1.0
    finally:
        thread.join(timeout=30)
    # Granted by the release itself: a new fencing token, above the holder's.
    assert len(tokens) == 1
    assert tokens[0] is not None
    assert tokens[0] > holder_token


def test_a_tls_cluster_excludes_and_hands_off(redis_cluster_tls: RedisCluster) -> None:
    url = redis_cluster_tls.url()
    assert url.startswith("rediss+cluster://")
    name = "cluster/tls"
    with lockkit.Lock(name, backend=url) as lock:
        info = lock.inspect()
        assert info is not None
        assert lock.lease is not None
        assert info.fencing_token == lock.lease.fencing_token
    count = 0

    def work() -> None:
        nonlocal count
        contender = lockkit.Lock(name, backend=url, timeout=20)
        for _ in range(100):
            with contender:
                value = count
                time.sleep(0)
                count = value + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert count == 400


def test_wait_replicas_runs_on_the_connection_that_took_the_lock(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    backend = _backend(redis_cluster_url)
    name = "cluster/wait"
    key = backend.keys(name)[0]
    master = redis_cluster.owner(redis_cluster.keyslot(key))
    (replica,) = [n for n in redis_cluster.nodes() if n.master_id == master.node_id]
    process = redis_cluster.server(replica.port).process
    assert process is not None
    with lockkit.Lock(name, backend=backend):
        assert backend.cluster.wait_replicas(key, 1, 5000) == 1
    # With the replica stopped, WAIT counts it only on a connection with no writes
    # since: on the one that took the lock, nobody acknowledges the acquisition.
    process.send_signal(signal.SIGSTOP)
    try:
        with lockkit.Lock(name, backend=backend):
            assert backend.cluster.wait_replicas(key, 1, 200) == 0
    finally:
        process.send_signal(signal.SIGCONT)
    redis_cluster.wait_ready()
    redis_cluster.wait_replicated()


def test_describe_lists_masters_slots_and_replicas(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    cluster = _backend(redis_cluster_url).cluster
    lines = cluster.describe()
    assert "3 masters, 3 replicas, 16384 of 16384 slots served" in lines[0]
    assert len(lines) == 4
    for master in redis_cluster.masters():
        (line,) = [line for line in lines if line.startswith(f"master 127.0.0.1:{master.port} ")]
        first, last = master.slots[0]
        assert f"slots {first}-{last}; replicas: 127.0.0.1:" in line
    warnings = cluster.failover_warnings()
    # Every replica is on its master's host (loopback): said once per master, nothing else.
    assert len(warnings) == 3
    assert all("all run on host 127.0.0.1" in warning for warning in warnings)


def test_asynclock_over_a_cluster_runs_in_worker_threads(redis_cluster_url: str) -> None:
    async def contend() -> int:
        count = 0

        async def worker() -> None:
            nonlocal count
            lock = lockkit.AsyncLock("cluster/async", backend=redis_cluster_url, timeout=20)
            for _ in range(20):
                async with lock:
                    value = count
                    await asyncio.sleep(0)
                    count = value + 1

        await asyncio.gather(*(worker() for _ in range(4)))
        return count

    assert asyncio.run(contend()) == 80


@pytest.mark.multiprocess
def test_eight_processes_300_increments_each_none_lost(redis_cluster_url: str) -> None:
    run = run_fenced(redis_cluster_url, processes=8, acquisitions=300, name="cluster/fenced")
    assert run.escaped == ()
    assert run.errors == ()
    assert run.acquisitions == 2400
    assert run.lost_updates == 0
    assert run.double_holders == 0
    assert run.not_held == 0
    assert run.non_increasing == 0


# -- redirections: MOVED, ASK, TRYAGAIN ------------------------------------------------


def test_a_moved_slot_is_followed(
    redis_cluster: RedisCluster,
    redis_cluster_url: str,
    other_master: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "cluster/moved"
    backend = _backend(redis_cluster_url)
    lock = lockkit.Lock(name, backend=backend)
    with lock:
        pass  # the slot map is read, the connection kept
    target = other_master(name)
    slot = redis_cluster.keyslot(_key(name))
    assert redis_cluster.move_slot(slot, target) == 1  # the fence counter
    seen: list[int] = []
    moved = ClusterServer.moved

    def spy(self: ClusterServer, slot: int, address: tuple[str, int], asked: Any) -> Any:
        seen.append(slot)
        return moved(self, slot, address, asked)

    monkeypatch.setattr(ClusterServer, "moved", spy)
    with lock:
        assert command(target.port, "EXISTS", _key(name)) == 1
    assert seen == [slot]


def test_ask_and_tryagain_during_a_migration_are_followed(
    redis_cluster: RedisCluster,
    redis_cluster_url: str,
    other_master: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "cluster/ask"
    backend = _backend(redis_cluster_url)
    lease = backend.try_acquire(name, Owner.current(), 30.0)
    assert lease is not None
    target = other_master(name)
    slot = redis_cluster.keyslot(_key(name))
    asked: list[bool] = []
    run = _Node.run

    def spy_run(self: _Node, *args: Any, asking: bool) -> Any:
        asked.append(asking)
        return run(self, *args, asking=asking)

    retried = threading.Event()
    pause = _Retry.pause_or_raise

    def spy_pause(self: _Retry) -> None:
        retried.set()
        pause(self)

    monkeypatch.setattr(_Node, "run", spy_run)
    monkeypatch.setattr(_Retry, "pause_or_raise", spy_pause)
    source = redis_cluster.begin_move(slot, target)
    finished = False
    try:
        # The lock's value and fence counter move; the old master answers ASK for them.
        assert redis_cluster.migrate_keys(slot, source, target) == 2
        info = lockkit.Lock(name, backend=backend).inspect()
        assert info is not None
        assert info.fencing_token == lease.fencing_token
        assert asked[-2:] == [False, True]  # the old master, then ASKING on the new one
        # The release names the waiters' queue too, which exists on neither master:
        # the new one answers TRYAGAIN until the slot is its own.
        outcome: list[bool] = []

        def release() -> None:
            outcome.append(backend.release(lease))

        thread = threading.Thread(target=release)
        thread.start()
        assert retried.wait(timeout=5), "no TRYAGAIN was retried"
        redis_cluster.finish_move(slot, target)
        finished = True
        thread.join(timeout=10)
        assert outcome == [True]
        assert command(target.port, "EXISTS", _key(name)) == 0  # released, on the new master
    finally:
        if not finished:
            redis_cluster.finish_move(slot, target)
        redis_cluster.wait_ready()


def test_a_waiter_follows_its_lock_to_the_new_master(
    redis_cluster: RedisCluster, redis_cluster_url: str, other_master: Callable[[str], Any]
) -> None:
    """The move ends the waiter's sharded subscription; it queues anew and is woken there."""
    url = f"{redis_cluster_url}?poll=10"  # a hand-off within 1 s is a wake-up's doing
    name = "cluster/follow"
    waiters = f"{_key(name)}:waiters"
    source = redis_cluster.owner(redis_cluster.keyslot(_key(name)))
    target = other_master(name)
    holder = lockkit.Lock(name, backend=url)
    holder.acquire()
    got = threading.Event()

    def wait() -> None:
        with lockkit.Lock(name, backend=url, timeout=20):
            got.set()

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        _until(lambda: command(source.port, "LLEN", waiters) == 1)
        redis_cluster.move_slot(redis_cluster.keyslot(_key(name)), target)
        # Its entry moved with the slot; told "sunsubscribe", it queued a second one,
        # listening on the new master.
        _until(lambda: command(target.port, "LLEN", waiters) == 2)
        released_at = time.monotonic()
        holder.release()
        assert got.wait(timeout=5), "the waiter was not woken on the new master"
        assert time.monotonic() - released_at < 1.0
    finally:
        thread.join(timeout=30)


@pytest.mark.multiprocess
def test_a_slot_moved_during_contention_loses_nothing(
    redis_cluster: RedisCluster, redis_cluster_url: str, other_master: Callable[[str], Any]
) -> None:
    """The lock's slot moves to another master and back, three times, under contention.

    Each move takes the steps ``redis-cli --cluster reshard`` takes, one right after the
    other: ``SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE`` of the lock's keys, ``SETSLOT
    NODE``. Meanwhile scripts meet ``ASK``, ``TRYAGAIN`` and then ``MOVED``, and waiters
    lose their sharded subscriptions (``sunsubscribe``) and subscribe anew.
    """
    name = "cluster/reshard"
    slot = redis_cluster.keyslot(_key(name))
    source = redis_cluster.owner(slot)
    target = other_master(name)
    probe = lockkit.Lock(name, backend=redis_cluster_url)
    moves: list[tuple[int, int]] = []  # (keys moved, the token when the move ended)

    def token() -> int:
        try:
            info = probe.inspect()
        except BackendUnavailable:
            return 0  # mid-migration, retried too long: ask again
        return 0 if info is None or info.fencing_token is None else info.fencing_token

    def move() -> None:
        for to in (target, source, target):
            keys = redis_cluster.move_slot(slot, to)
            moves.append((keys, token()))
            # Holders come and go on the new master before the next move.
            _until(functools.partial(_advanced, token, moves[-1][1] + 10))

    run = run_fenced(
        redis_cluster_url, processes=6, acquisitions=100, name=name, milestone_at=10, during=move
    )
    assert redis_cluster.owner(slot).node_id == target.node_id
    assert len(moves) == 3
    assert all(keys >= 1 for keys, _ in moves), moves  # the fence counter at least
    assert run.escaped == ()
    assert run.acquisitions == 600
    assert run.lost_updates == 0
    assert run.double_holders == 0
    assert run.non_increasing == 0
    assert run.lost_events == 0  # no release failed for a script stopped mid-way
    # Holders took the lock on the new master after the last move.
    assert max(run.tokens) > moves[-1][1]


# -- a node killed ---------------------------------------------------------------------


def test_an_acquisition_waits_out_a_killed_master(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    """A master killed: the acquisition follows its replica's promotion, without error."""
    name = "cluster/killed"
    master = redis_cluster.owner(redis_cluster.keyslot(_key(name)))
    lock = lockkit.Lock(name, backend=redis_cluster_url)
    with lock:
        assert lock.lease is not None
        before = lock.lease.fencing_token
    server = redis_cluster.server(master.port)
    server.kill()
    try:
        # The replica is promoted (cluster-node-timeout 1 s); the slot map is read anew.
        lock.acquire(timeout=30)
        try:
            assert lock.lease is not None
            assert lock.lease.fencing_token is not None
            assert before is not None
            assert lock.lease.fencing_token > before
        finally:
            lock.release()
        redis_cluster.wait_ready()
        assert redis_cluster.owner(redis_cluster.keyslot(_key(name))).port != master.port
    finally:
        server.start()  # it rejoins as a replica of the master that took over
        redis_cluster.wait_ready()
        redis_cluster.wait_replicated()


def test_min_replicas_confirms_on_the_lock_master_or_gives_the_lock_back(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    name = "cluster/min-replicas"
    url = f"{redis_cluster_url}?min_replicas=1&replica_timeout=0.2"
    key = _key(name)
    # After a failover test, the cluster's view settles: ask the master itself which
    # replica it streams to.
    redis_cluster.wait_ready()
    redis_cluster.wait_replicated()
    master = redis_cluster.owner(redis_cluster.keyslot(key))
    info = redis_cluster.command(master.port, "INFO", "replication")
    assert isinstance(info, dict)
    replica_port = int(info["slave0"]["port"])
    with lockkit.Lock(name, backend=url, timeout=5) as lock:
        assert lock.lease is not None
        # Confirmed: the replica of the lock's master has the key (READONLY: a replica
        # answers reads of its master's slots on that connection).
        import redis

        reader = redis.Redis(port=replica_port, single_connection_client=True)
        try:
            reader.execute_command("READONLY")  # type: ignore[no-untyped-call]
            assert reader.exists(key) == 1
        finally:
            reader.close()
    process = redis_cluster.server(replica_port).process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(BackendUnavailable, match=r"only 0 replica\(s\) confirmed"):
            lockkit.Lock(name, backend=url, timeout=0).acquire()
        assert command(master.port, "EXISTS", key) == 0  # given back, not left held
    finally:
        process.send_signal(signal.SIGCONT)
    redis_cluster.wait_ready()
    redis_cluster.wait_replicated()
