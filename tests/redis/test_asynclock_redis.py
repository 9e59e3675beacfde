"""AsyncLock on real Redis/Valkey: redis.asyncio, the same keys and hand-off as Lock.

What must hold: no lost updates between tasks and processes; a cancelled waiter or a
cancelled in-flight attempt leaves no key and no queue entry behind; a release wakes
an asyncio waiter through the hand-off queue (not a poll), whether the holder is
asyncio or blocking code; and waiting never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import pytest

import lockkit
import lockkit.spec
from lockkit._registry import get_registry
from lockkit.errors import LockTimeout
from tests.helpers.cancellation import cancellation_race
from tests.multiprocess.test_asynclock import run_async_increments
from tests.redis_server import RedisServer
from tests.unit.test_asynclock import Recorder, signal_when_contended

if TYPE_CHECKING:
    # Imported where used: the core test sessions (no redis extra) still collect this.
    import redis

pytestmark = pytest.mark.redis


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a test coroutine in a fresh event loop, with a global safety timeout."""

    async def bounded() -> Any:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    import redis

    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def blocking_pools() -> Iterator[list[lockkit.spec.Backend]]:
    """Backends whose blocking connections the test used; closed at teardown.

    Worker threads (a Redlock's async fallback) and blocking locks open connections in
    the backend's blocking pools, which live as long as the backend; closing them here
    keeps their sockets from being found unclosed by the garbage collector later.
    """
    used: list[lockkit.spec.Backend] = []
    yield used
    for backend in used:
        for server in backend._servers:  # type: ignore[attr-defined]  # noqa: SLF001
            server.client.connection_pool.disconnect()


@pytest.fixture
def recorder() -> Recorder:
    plugin = Recorder()
    get_registry().register(plugin, name="async-redis-recorder")
    return plugin


def assert_no_trace(client: redis.Redis, name: str) -> None:
    """No lock key and no queued waiter are left for ``name``."""
    assert client.exists(f"lockkit:{{{name}}}") == 0
    assert client.llen(f"lockkit:{{{name}}}:waiters") == 0


async def queued(client: redis.Redis, name: str) -> None:
    """Return once a waiter is in ``name``'s hand-off queue (polls the server)."""
    for _ in range(2000):
        if client.llen(f"lockkit:{{{name}}}:waiters") >= 1:
            return
        await asyncio.sleep(0.005)
    pytest.fail("no waiter queued within 10 s")


def test_roundtrip_inspect_and_fencing(redis_url: str, client: redis.Redis) -> None:
    async def main() -> list[int]:
        lock = lockkit.AsyncLock("async/roundtrip", backend=redis_url)
        tokens = []
        for _ in range(3):
            async with lock:
                info = await lock.inspect()
                assert info is not None
                assert info.owner is not None
                assert info.owner.pid == os.getpid()
                assert lock.lease is not None
                assert lock.lease.fencing_token is not None
                assert info.fencing_token == lock.lease.fencing_token
                tokens.append(lock.lease.fencing_token)
                assert await lock.is_held()
                with pytest.raises(LockTimeout):
                    await lockkit.AsyncLock("async/roundtrip", backend=redis_url).acquire(timeout=0)
        assert await lock.inspect() is None
        return tokens

    tokens = run(main())
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 3
    assert_no_trace(client, "async/roundtrip")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_no_lost_updates_between_tasks_and_processes(
    redis_url: str, client: redis.Redis, tmp_path: pathlib.Path
) -> None:
    result = run_async_increments("async/counter", tmp_path / "count", redis_url)
    assert result.errors == ()
    assert result.lost == 0
    assert result.final == 4 * 4 * 100
    assert_no_trace(client, "async/counter")


def test_cancelled_waiter_leaves_no_key_and_no_queue_entry(
    redis_url: str, client: redis.Redis, recorder: Recorder
) -> None:
    name = "async/cancel"

    async def main() -> None:
        contended = signal_when_contended(recorder)
        holder = lockkit.AsyncLock(name, backend=redis_url)
        waiter = lockkit.AsyncLock(name, backend=redis_url)
        await holder.acquire()
        task = asyncio.create_task(waiter.acquire(timeout=30))
        await contended.wait()
        await queued(client, name)  # it is really waiting in the queue now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not waiter.locked
        assert client.llen(f"lockkit:{{{name}}}:waiters") == 0  # it left the queue
        await holder.release()
        assert_no_trace(client, name)
        async with await lockkit.AsyncLock(name, backend=redis_url).acquire(timeout=0):
            pass

    run(main())
    assert_no_trace(client, name)


def test_cancelled_attempt_that_wins_later_is_released(redis_url: str, client: redis.Redis) -> None:
    name = "async/inflight"
    fence = f"lockkit:{{{name}}}:fence"

    async def main() -> None:
        lock = lockkit.AsyncLock(name, backend=redis_url)
        async with lock:  # connect and load the scripts before the pause
            pass
        before = int(client.get(fence) or 0)
        # Hold every write on the server for a moment: the attempt is sent, not run.
        client.client_pause(400, all=False)
        task = asyncio.create_task(lock.acquire(timeout=0))
        await asyncio.sleep(0.1)  # on the wire by now (shielded, it would be sent anyway)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not lock.locked
        # Once the pause ends the script runs and wins; the abandoned lock must go.
        for _ in range(400):
            if int(client.get(fence) or 0) > before and client.exists(f"lockkit:{{{name}}}") == 0:
                break
            await asyncio.sleep(0.01)
        assert int(client.get(fence) or 0) > before  # it did win...
        assert_no_trace(client, name)  # ...and gave the lock back

    run(main())


def test_cancellation_race_while_handing_off(redis_url: str, client: redis.Redis) -> None:
    name = "async/race"
    stats: dict[str, int] = {}

    async def main() -> None:
        stats.update(
            await cancellation_race(
                lambda: lockkit.AsyncLock(name, backend=redis_url),
                acquisitions=200,
                cancellations=60,
                max_pause=0.005,
            )
        )
        # Shielded releases and leaves may still be on the wire: let them land.
        async with await lockkit.AsyncLock(name, backend=redis_url).acquire(timeout=5):
            pass

    run(main())
    assert stats["max_holders"] == 1
    assert stats["holders"] == 0
    assert_no_trace(client, name)


@pytest.mark.parametrize("holder_kind", ["async", "blocking"])
def test_release_hands_off_to_an_asyncio_waiter(
    redis_url: str,
    client: redis.Redis,
    holder_kind: str,
    blocking_pools: list[lockkit.spec.Backend],
) -> None:
    # With a 60 s re-check interval, only the hand-off can wake the waiter in time.
    url = f"{redis_url}?poll=60"
    name = f"async/handoff-{holder_kind}"

    async def main() -> float:
        waiter = lockkit.AsyncLock(name, backend=url)
        blocking_pools.append(waiter.backend)
        if holder_kind == "async":
            holder = lockkit.AsyncLock(name, backend=url)
            await holder.acquire()
        else:
            blocking = lockkit.Lock(name, backend=url)
            blocking.acquire()

        async def wait_for_lock() -> float:
            async with await waiter.acquire(timeout=20):
                return time.monotonic()

        task = asyncio.create_task(wait_for_lock())
        await queued(client, name)
        released = time.monotonic()
        if holder_kind == "async":
            await holder.release()
        else:
            blocking.release()
        return await task - released

    assert run(main()) < 1.0
    assert_no_trace(client, name)


def test_asyncio_release_hands_off_to_a_blocking_waiter(
    redis_url: str, client: redis.Redis, blocking_pools: list[lockkit.spec.Backend]
) -> None:
    url = f"{redis_url}?poll=60"
    name = "async/to-blocking"
    outcome: list[float] = []

    def blocking_waiter() -> None:
        with lockkit.Lock(name, backend=url).acquire(timeout=20):
            outcome.append(time.monotonic())

    async def main() -> float:
        holder = lockkit.AsyncLock(name, backend=url)
        blocking_pools.append(holder.backend)
        await holder.acquire()
        thread = threading.Thread(target=blocking_waiter)
        thread.start()
        await queued(client, name)
        released = time.monotonic()
        await holder.release()
        await asyncio.to_thread(thread.join, 30)
        return released

    released = run(main())
    assert len(outcome) == 1
    assert outcome[0] - released < 1.0
    assert_no_trace(client, name)


def test_waiting_does_not_block_the_loop(
    redis_url: str, client: redis.Redis, recorder: Recorder
) -> None:
    name = "async/ticker"

    async def main() -> tuple[int, set[int], int]:
        contended = signal_when_contended(recorder)
        holder = lockkit.AsyncLock(name, backend=redis_url)
        waiter = lockkit.AsyncLock(name, backend=redis_url)
        await holder.acquire()  # starts the TTL renewer thread: part of the baseline
        baseline = threading.active_count()
        ticks = 0
        counts: set[int] = set()
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                counts.add(threading.active_count())
                await asyncio.sleep(0.005)

        async def wait_for_lock() -> None:
            async with waiter:
                pass

        ticking = asyncio.create_task(ticker())
        waiting = asyncio.create_task(wait_for_lock())
        await contended.wait()
        start = ticks
        await asyncio.sleep(0.5)
        ticked = ticks - start
        await holder.release()
        await waiting
        done.set()
        await ticking
        return ticked, counts, baseline

    ticked, counts, baseline = run(main())
    assert ticked >= 30
    assert counts == {baseline}  # redis.asyncio waits without threads
    assert_no_trace(client, name)


def test_redlock_falls_back_to_threads(
    redlock_servers: list[RedisServer], blocking_pools: list[lockkit.spec.Backend]
) -> None:
    url = ",".join(server.url for server in redlock_servers)

    async def main() -> None:
        lock = lockkit.AsyncLock("async/redlock", backend=url)
        blocking_pools.append(lock.backend)
        async with lock:
            assert await lock.is_held()
            with pytest.raises(LockTimeout):
                await lockkit.AsyncLock("async/redlock", backend=url).acquire(timeout=0.05)

        async def hold() -> None:
            async with lockkit.AsyncLock("async/redlock", backend=url, timeout=10):
                await asyncio.sleep(0)

        await asyncio.gather(*(hold() for _ in range(4)))

    run(main())
    import redis

    for server in redlock_servers:
        connection = redis.Redis.from_url(server.url)
        assert connection.exists("lockkit:{async/redlock}") == 0
        connection.close()
