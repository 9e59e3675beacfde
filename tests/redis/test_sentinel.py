"""Redis behind Sentinel: a real primary, two replicas and three sentinels on loopback.

Failovers are real: the primary is killed with SIGKILL, the sentinels promote a
replica, and the old primary comes back as a replica (`SentinelDeployment.fail_over`).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

import lockkit
from benchmarks.redissentinel import command
from lockkit.backends.redis import RedisBackend
from lockkit.backends.redis._sentinel import pool_kwargs
from lockkit.errors import BackendUnavailable, SettingsError
from tests.helpers.fencing import FencedRun, run_fenced

if TYPE_CHECKING:
    from benchmarks.redissentinel import SentinelDeployment

pytestmark = [pytest.mark.redis]

SECRET = "s3cr3t-Pa55"  # noqa: S105 - a test value


# -- URLs --------------------------------------------------------------------------------


def test_url_names_sentinels_service_db_and_options() -> None:
    topology = pool_kwargs(
        "redis+sentinel://me:pw@10.0.0.1:26379,10.0.0.2,[::1]:26380/cache/3"
        "?socket_timeout=1.5&sentinel_password=spw"
    )
    assert topology.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)]
    assert topology.service == "cache"
    assert topology.connection["db"] == 3
    assert topology.connection["username"] == "me"
    assert topology.connection["password"] == "pw"  # noqa: S105 - a test value
    assert topology.connection["socket_timeout"] == 1.5
    assert topology.sentinel["password"] == "spw"  # noqa: S105 - a test value
    assert "password" not in repr(topology)
    tls = pool_kwargs("rediss+sentinel://h:1/s")
    assert tls.connection["ssl"] is True
    assert tls.sentinel["ssl"] is True


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "names no service"),
        ("redis+sentinel://h:26379/", "names no service"),
        ("redis+sentinel:///svc", "names no sentinel"),
        ("redis+sentinel://h:notaport/svc", "invalid sentinel address"),
        ("redis+sentinel://h:70000/svc", "invalid sentinel address"),
        ("redis+sentinel://h:1/svc/zero", "is not a number"),
        ("redis+sentinel://h:1/svc?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://h:1/svc?min_replicas=two", "not a whole number"),
        ("redis+sentinel://h:1/svc?min_replicas=999", "out of range"),
        ("redis+sentinel://h:1/svc?replica_timeout=0", "replica_timeout"),
    ],
)
def test_bad_urls_are_settings_errors(url: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        RedisBackend.from_url(url)


def test_min_replicas_is_refused_for_a_redlock() -> None:
    with pytest.raises(SettingsError, match="Redlock"):
        RedisBackend(["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"], min_replicas=1)
    with pytest.raises(TypeError, match="min_replicas must be an int"):
        RedisBackend("redis://127.0.0.1:1/0", min_replicas=1.5)  # type: ignore[arg-type]


def test_password_never_shown() -> None:
    url = f"redis+sentinel://user:{SECRET}@127.0.0.1:1,127.0.0.1:2/svc/zero"
    with pytest.raises(SettingsError) as caught:
        RedisBackend.from_url(url)
    assert SECRET not in str(caught.value)
    backend = RedisBackend.from_url(f"redis+sentinel://user:{SECRET}@127.0.0.1:1,127.0.0.1:2/svc")
    assert SECRET not in repr(backend)
    assert "127.0.0.1:1,127.0.0.1:2" in repr(backend)
    # Nobody listens there: the error names the sentinels, never the password.
    lock = lockkit.Lock("x", backend=backend, timeout=0.5)
    try:
        with pytest.raises(BackendUnavailable) as unreachable:
            lock.acquire()
    finally:
        backend.close()
    assert SECRET not in str(unreachable.value)
    assert "No master found" in str(unreachable.value)


# -- a real deployment -------------------------------------------------------------------


def test_lock_is_taken_on_the_primary_and_replicated(
    sentinel_deployment: SentinelDeployment,
) -> None:
    backend = RedisBackend.from_url(sentinel_deployment.url(min_replicas=2))
    primary = sentinel_deployment.primary_port()
    assert primary is not None
    with lockkit.Lock("sentinel/plain", backend=backend, timeout=5) as lock:
        assert lock.lease is not None
        # WAIT 2 confirmed it: both replicas hold the key now.
        for server in sentinel_deployment.servers:
            reply = command(server.port, "EXISTS", "lockkit:{sentinel/plain}")
            assert reply == b":1\r\n", server.port
    backend.close()


@pytest.mark.slow
@pytest.mark.multiprocess
def test_eight_processes_lose_no_update(sentinel_deployment: SentinelDeployment) -> None:
    run = run_fenced(
        sentinel_deployment.url(min_replicas=1), processes=8, acquisitions=300, name="s/8x300"
    )
    assert run.escaped == ()
    assert run.acquisitions == 2400
    assert run.lost_updates == 0
    assert run.double_holders == 0
    assert run.non_increasing == 0


def test_unconfirmed_acquisition_is_given_back(sentinel_deployment: SentinelDeployment) -> None:
    """Replicas that cannot confirm (stopped): the attempt fails and leaves no key."""
    backend = RedisBackend.from_url(sentinel_deployment.url(min_replicas=1, replica_timeout=0.2))
    primary = sentinel_deployment.primary_port()
    replicas = [s for s in sentinel_deployment.servers if s.port != primary]
    lock = lockkit.Lock("sentinel/unconfirmed", backend=backend, timeout=0)
    lock.acquire()  # connected, scripts loaded
    lock.release()
    for replica in replicas:
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(BackendUnavailable, match="only 0 replica"):
            lock.acquire()
    finally:
        for replica in replicas:
            assert replica.process is not None
            os.kill(replica.process.pid, signal.SIGCONT)
    assert primary is not None
    assert command(primary, "EXISTS", "lockkit:{sentinel/unconfirmed}") == b":0\r\n"
    assert not lock.locked
    backend.close()


def _contend_through_failovers(
    deployment: SentinelDeployment,
    tmp_path: pathlib.Path,
    *,
    failovers: int,
    **options: object,
) -> tuple[FencedRun, list[tuple[int, int]]]:
    """6 processes contend on one lock while the primary is killed ``failovers`` times."""
    done: list[tuple[int, int]] = []
    counter = tmp_path / "counter"

    def progress() -> int:
        try:
            return int(counter.read_text() or "0")
        except (OSError, ValueError):
            return 0

    def fail_over_repeatedly() -> None:
        for _ in range(failovers):
            before = progress()
            done.append(deployment.fail_over())
            # Contention goes on through the new primary before the next failover.
            deadline = time.monotonic() + 60
            while progress() < before + 30 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling a file the workers write; no event to wait on

    run = run_fenced(
        deployment.url(**options),
        processes=6,
        acquisitions=10**6,
        name=f"s/failover-{len(options)}",
        milestone_at=20,
        during=fail_over_repeatedly,
        stop_after_during=True,
        directory=str(tmp_path),
    )
    return run, done


@pytest.mark.slow
@pytest.mark.multiprocess
def test_failovers_with_min_replicas_keep_one_holder_and_rising_tokens(
    sentinel_deployment: SentinelDeployment, tmp_path: pathlib.Path
) -> None:
    run, done = _contend_through_failovers(
        sentinel_deployment, tmp_path, failovers=5, min_replicas=1
    )
    assert len(done) == 5
    assert all(old != new for old, new in done)
    assert run.escaped == ()
    assert run.acquisitions > 150
    assert run.double_holders == 0
    assert run.non_increasing == 0
    assert run.lost_updates == 0


@pytest.mark.slow
def test_unreplicated_lock_has_two_holders_after_failover_without_min_replicas(
    sentinel_deployment: SentinelDeployment,
) -> None:
    """The gap `min_replicas` closes, shown: a lock the replicas never saw is granted again.

    The replicas are stopped and their links cut (``CLIENT KILL TYPE replica``) right
    before the lock is taken and the primary is killed: the replica promoted has no
    key. The fencing token still rises (the clock floor of `_scripts`), so a fenced
    resource refuses the first holder.
    """
    url = sentinel_deployment.url(failover_timeout=30)
    first = lockkit.Lock("sentinel/gap", backend=url, timeout=5)
    first.acquire()
    first.release()  # connected, scripts loaded: the next acquisition is one round trip
    taken: list[lockkit.Lease] = []

    replicas: list[int] = []

    def grant_unreplicated(port: int) -> None:
        # Stopped replicas cannot reconnect (and catch up) before the primary dies; a
        # few milliseconds, far below the sentinels' down-after time.
        for server in sentinel_deployment.servers:
            if server.port != port and server.process is not None:
                os.kill(server.process.pid, signal.SIGSTOP)
                replicas.append(server.process.pid)
        command(port, "CLIENT", "KILL", "TYPE", "replica")
        first.acquire()
        assert first.lease is not None
        taken.append(first.lease)

    def resume() -> None:
        for pid in replicas:
            os.kill(pid, signal.SIGCONT)

    try:
        sentinel_deployment.fail_over(before_kill=grant_unreplicated, after_kill=resume)
    finally:
        resume()
    second = lockkit.Lock("sentinel/gap", backend=url, timeout=5)
    second.acquire()  # granted again: the new primary never saw the first holder
    try:
        assert first.locked  # the first holder has not noticed yet...
        assert not first.is_held()  # ...and asking the new primary says it is gone
        assert second.lease is not None
        assert second.lease.fencing_token > taken[0].fencing_token  # type: ignore[operator]
    finally:
        second.release()
        first.release()  # reported lost, not raised


@pytest.mark.slow
def test_holder_and_waiter_ride_through_a_failover(
    sentinel_deployment: SentinelDeployment,
) -> None:
    """Neither caller notices the failover beyond a delay: no error, no lost lock."""
    url = sentinel_deployment.url(min_replicas=1)
    lost: list[object] = []
    holder = lockkit.Lock("sentinel/ride", backend=url, ttl=10, on_lost=lost.append)
    waiter = lockkit.Lock("sentinel/ride", backend=url, timeout=60)
    outcome: list[BaseException | int | None] = []
    started = threading.Event()

    def wait_for_it() -> None:
        started.set()
        try:
            with waiter:
                assert waiter.lease is not None
                outcome.append(waiter.lease.fencing_token)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome.append(exc)

    thread = threading.Thread(target=wait_for_it)

    def start_waiting(port: int) -> None:
        del port
        thread.start()
        assert started.wait(5)

    holder.acquire()
    assert holder.lease is not None
    before = holder.lease.fencing_token
    assert before is not None
    try:
        sentinel_deployment.fail_over(before_kill=start_waiting)
        # The holder's key reached a replica before the acquisition counted: the new
        # primary has it, and renewals go there.
        assert holder.is_held()
        assert not outcome  # still waiting for the holder
    finally:
        holder.release()
    thread.join(60)
    assert len(outcome) == 1
    assert isinstance(outcome[0], int), outcome
    assert outcome[0] > before
    assert lost == []


def test_asynclock_through_sentinel(sentinel_deployment: SentinelDeployment) -> None:
    url = sentinel_deployment.url(min_replicas=1)

    async def take_after(second: lockkit.AsyncLock) -> int:
        async with second:
            assert second.lease is not None
            assert second.lease.fencing_token is not None
            return second.lease.fencing_token

    async def main() -> tuple[int, int]:
        first = lockkit.AsyncLock("sentinel/async", backend=url)
        second = lockkit.AsyncLock("sentinel/async", backend=url, timeout=10)
        async with first:
            assert first.lease is not None
            assert first.lease.fencing_token is not None
            before = first.lease.fencing_token
            waiting = asyncio.create_task(take_after(second))
            await asyncio.sleep(0)
            assert not waiting.done()  # the first still holds it
        return before, await waiting

    before, after = asyncio.run(main())
    assert after > before


def _doctor(url: str, directory: pathlib.Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "lockkit", "doctor", str(directory), "--backend", url),
            *("--processes", "2", "--increments", "5", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_doctor_shows_the_topology_and_warns_without_min_replicas(
    sentinel_deployment: SentinelDeployment, tmp_path: pathlib.Path
) -> None:
    primary = sentinel_deployment.primary_port()
    plain = _doctor(sentinel_deployment.url(), tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert f"topology sentinel service 'lockkit': primary 127.0.0.1:{primary}" in plain.stdout
    assert plain.stdout.count("topology   replica 127.0.0.1:") == 2
    assert "without min_replicas a lock granted just before the primary fails" in plain.stdout
    # Asking for every replica: nothing can be lost in a failover, so no warning.
    everyone = _doctor(sentinel_deployment.url(min_replicas=2), tmp_path, "--json")
    assert everyone.returncode == 0, everyone.stderr
    report = json.loads(everyone.stdout)
    (checked,) = [b for b in report["backends"] if b["name"] == "redis"]
    assert len(checked["topology"]) == 3
    assert checked["notes"] == []
    # Asking for more replicas than there are: every acquisition would fail, and says so.
    too_many = _doctor(sentinel_deployment.url(min_replicas=3, replica_timeout=0.1), tmp_path)
    assert "has 2 replica(s) online but min_replicas=3" in too_many.stdout
    assert "only 2 replica(s) confirmed" in too_many.stdout


def test_doctor_on_a_standalone_server_names_its_role(
    redis_url: str, tmp_path: pathlib.Path
) -> None:
    shown = _doctor(redis_url, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"topology server {redis_url}: master, 0 replica(s) online" in shown.stdout
    asked = _doctor(redis_url + "?min_replicas=1&replica_timeout=0.1", tmp_path)
    assert "has 0 replica(s) online but min_replicas=1" in asked.stdout
    assert "only 0 replica(s) confirmed" in asked.stdout


@pytest.mark.slow
def test_a_demoted_primary_is_left_for_the_new_one(
    sentinel_deployment: SentinelDeployment,
) -> None:
    """``SENTINEL FAILOVER`` demotes a live primary: kept connections meet ``READONLY``."""
    backend = RedisBackend.from_url(sentinel_deployment.url(min_replicas=1))
    try:
        lock = lockkit.Lock("sentinel/demoted", backend=backend, timeout=10)
        with lock:  # a connection to the primary, kept by this thread
            pass
        old, new = sentinel_deployment.switch_over()
        assert old != new
        with lock:
            assert lock.lease is not None
        assert command(new, "EXISTS", "lockkit:{sentinel/demoted}:fence") == b":1\r\n"
        assert command(old, "ROLE").startswith(b"*5\r\n$5\r\nslave")
    finally:
        backend.close()
