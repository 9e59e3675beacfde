"""The Redis hand-off queue: a release grants the lock to the first queued waiter.

A waiter's queue entry carries the payload of its failed attempt; the release script
sets it, increments the fence and tells the waiter, all in one step. These tests pin
what that promises: nobody can slip in between a release and the waiter it grants,
a grant nobody uses is passed on, a stale grant message is never mistaken for a new
one, and a waiter that died is skipped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pathlib
import random
import signal
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import pytest

import lockkit
from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend, RedisWaiter
from lockkit.errors import LockTimeout

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.connection import Connection

    # redis-py is imported where used: the no-redis test sessions collect this module.
    import redis

pytestmark = pytest.mark.redis


@pytest.fixture
def name() -> str:
    """A lock name of this test's own on the session's server."""
    return f"handoff-{uuid.uuid4().hex}"


@pytest.fixture
def backends(redis_url: str) -> Iterator[tuple[RedisBackend, RedisBackend]]:
    """Two independent backends (their own connections and waiting state): holder, waiter."""
    pair = (RedisBackend.from_url(redis_url), RedisBackend.from_url(redis_url))
    yield pair
    for backend in pair:
        backend.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client, to look at the keys."""
    import redis  # the module imports it only for type checking

    plain = redis.Redis.from_url(redis_url)
    yield plain
    plain.close()


def _until(condition: object, what: str, timeout: float = 10.0) -> None:
    """Poll an outside condition (another process's progress) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _waiter_of(backend: RedisBackend, name: str) -> RedisWaiter:
    """A waiter whose attempts can queue at once: an idle listener is at hand."""
    listeners = backend.listeners[0]
    if not listeners.has_idle():
        listeners.give_back(listeners.take())
    waiter = backend.waiter(name)
    assert isinstance(waiter, RedisWaiter)
    return waiter


def _queue_behind(backend: RedisBackend, name: str, owner: Owner | None = None) -> RedisWaiter:
    """Make ``backend`` fail an attempt with a waiter, which queues it (no wait yet)."""
    waiter = _waiter_of(backend, name)
    assert backend.try_acquire(name, owner or Owner.current(), 30, waiter=waiter) is None
    assert waiter.entry  # queued by the failed attempt itself
    return waiter


def _waiter(url: str, name: str, conn: Connection) -> None:
    """Acquire (queueing behind the holder), report the fencing token, hold until told."""
    lock = lockkit.Lock(name, backend=url)
    with lock.acquire(timeout=30):
        assert lock.lease is not None
        conn.send(lock.lease.fencing_token)
        conn.recv()


def test_a_release_hands_the_lock_to_the_queued_waiter_before_anyone_else(
    redis_url: str, name: str, client: redis.Redis
) -> None:
    holder = lockkit.Lock(name, backend=redis_url)
    holder.acquire()
    assert holder.lease is not None
    fence = holder.lease.fencing_token
    assert fence is not None
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=_waiter, args=(redis_url, name, theirs))
    child.start()
    try:
        _until(lambda: client.llen(f"lockkit:{{{name}}}:waiters") == 1, "the waiter to queue")
        holder.release()
        # The release script granted the key to the waiter: a newcomer arriving right
        # after it cannot take the lock, though the waiter has not answered yet.
        with pytest.raises(LockTimeout) as caught:
            lockkit.Lock(name, backend=redis_url).acquire(blocking=False)
        assert caught.value.holder is not None
        assert caught.value.holder.owner is not None
        assert caught.value.holder.owner.pid == child.pid
        assert mine.poll(10)
        assert mine.recv() > fence  # the grant's own fencing token, a new one
        assert client.llen(f"lockkit:{{{name}}}:waiters") == 0
        mine.send("release")
        child.join(10)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    assert lockkit.Lock(name, backend=redis_url).inspect() is None


def test_a_grant_found_by_the_next_attempt_is_used(
    backends: tuple[RedisBackend, RedisBackend], name: str, client: redis.Redis
) -> None:
    holder, waiter = backends
    held = holder.try_acquire(name, Owner.current(), 30)
    assert held is not None
    queued_owner = Owner.current()
    wait = _queue_behind(waiter, name, queued_owner)  # not listening when the release comes
    assert holder.release(held)
    info = holder.inspect(name)
    assert info is not None
    assert info.owner is not None
    assert info.owner.token == queued_owner.token  # granted to the queued entry
    lease = waiter.try_acquire(name, Owner.current(), 30, waiter=wait)
    assert lease is not None
    assert lease.token == queued_owner.token
    assert lease.fencing_token > held.fencing_token  # type: ignore[operator]
    wait.close()  # no round trip: the grant took it out of the queue
    assert waiter.inspect(name) is not None
    assert waiter.release(lease)
    assert client.llen(f"lockkit:{{{name}}}:waiters") == 0


def test_a_stale_grant_message_is_not_taken_for_a_new_grant(
    backends: tuple[RedisBackend, RedisBackend], name: str
) -> None:
    holder, waiter = backends
    held = holder.try_acquire(name, Owner.current(), 30)
    assert held is not None
    wait = _queue_behind(waiter, name)
    holder.release(held)  # grants; the message waits unread in the waiter's connection
    first = waiter.try_acquire(name, Owner.current(), 30, waiter=wait)  # finds the grant
    assert first is not None
    assert wait.listener is not None
    channel = wait.listener.channel
    wait.close()  # gives the listener back, the grant message still unread on it
    waiter.release(first)
    # A new acquisition of the same lock, on the same listener: the old grant message
    # must not count.
    held = holder.try_acquire(name, Owner.current(), 30)
    assert held is not None
    again = _waiter_of(waiter, name)
    assert waiter.try_acquire(name, Owner.current(), 30, waiter=again) is None
    assert again.listener is not None
    assert again.listener.channel == channel  # the same listener
    assert not again.wait(time.monotonic() + 0.3)
    assert waiter.try_acquire(name, Owner.current(), 30, waiter=again) is None
    again.close()
    info = waiter.inspect(name)
    assert info is not None
    assert info.owner is not None
    assert info.owner.token == held.token
    holder.release(held)


def test_an_unused_grant_goes_to_the_next_waiter(
    backends: tuple[RedisBackend, RedisBackend], redis_url: str, name: str, client: redis.Redis
) -> None:
    holder, waiter = backends
    third = RedisBackend.from_url(redis_url)
    try:
        held = holder.try_acquire(name, Owner.current(), 30)
        assert held is not None
        first = _queue_behind(waiter, name)
        next_owner = Owner.current()
        second = _queue_behind(third, name, next_owner)
        assert client.llen(f"lockkit:{{{name}}}:waiters") == 2
        holder.release(held)  # granted to the first waiter...
        first.close()  # ...which gives up (timed out, cancelled)
        info = holder.inspect(name)
        assert info is not None
        assert info.owner is not None
        assert info.owner.token == next_owner.token  # passed on to the next in line
        assert second.wait(time.monotonic() + 5)  # and it is told
        lease = third.try_acquire(name, Owner.current(), 30, waiter=second)
        assert lease is not None
        assert lease.token == next_owner.token
        second.close()
        third.release(lease)
        assert client.llen(f"lockkit:{{{name}}}:waiters") == 0
        assert holder.inspect(name) is None
    finally:
        third.close()


def _queue_and_hang(url: str, name: str) -> None:
    lockkit.Lock(name, backend=url).acquire(timeout=60)


def test_a_grant_to_a_killed_waiter_is_undone(
    redis_url: str, name: str, client: redis.Redis
) -> None:
    holder = lockkit.Lock(name, backend=redis_url)
    holder.acquire()
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_queue_and_hang, args=(redis_url, name))
    child.start()
    try:
        waiters = f"lockkit:{{{name}}}:waiters"
        _until(lambda: client.llen(waiters) == 1, "the waiter to queue")
        entry = cast("bytes | None", client.lindex(waiters, 0))
        assert entry is not None
        channel = entry.split(b"\n", 1)[0]
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        # Once the server has seen its connection close, nobody listens on its channel.
        _until(
            lambda: dict(client.pubsub_numsub(channel)).get(channel) == 0,
            "the server to drop the killed waiter's subscription",
        )
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    holder.release()
    # The grant found nobody listening, so it was undone: the lock is free.
    assert client.llen(waiters) == 0
    assert holder.inspect() is None
    with contextlib.closing(RedisBackend.from_url(redis_url)) as other:
        lease = other.try_acquire(name, Owner.current(), 30)
        assert lease is not None
        other.release(lease)


def test_inspect_never_answers_from_a_failed_attempt(
    backends: tuple[RedisBackend, RedisBackend], name: str
) -> None:
    holder, waiter = backends
    held = holder.try_acquire(name, Owner.current(), 30)
    assert held is not None
    wait = _waiter_of(waiter, name)
    assert waiter.try_acquire(name, Owner.current(), 30, waiter=wait) is None
    holder.release(held)  # granted to the waiter's entry
    seen = waiter.inspect(name)  # asks Redis: the holder now is the grant
    assert seen is not None
    assert seen.owner is not None
    assert seen.owner.token != held.token
    wait.close()  # the unused grant is undone
    assert waiter.inspect(name) is None


def test_an_attempt_does_not_depend_on_what_the_thread_did_before(
    backends: tuple[RedisBackend, RedisBackend], name: str, client: redis.Redis
) -> None:
    # Another acquisition's waiter (left open) must not make this attempt queue or take
    # its grant: waiting state lives on the waiter, not on the thread.
    holder, waiter = backends
    held = holder.try_acquire(name, Owner.current(), 30)
    assert held is not None
    wait = _queue_behind(waiter, name)
    assert waiter.try_acquire(name, Owner.current(), 30) is None
    assert client.llen(f"lockkit:{{{name}}}:waiters") == 1
    holder.release(held)  # granted to `wait`'s entry
    assert waiter.try_acquire(name, Owner.current(), 30) is None  # not ours without it
    lease = waiter.try_acquire(name, Owner.current(), 30, waiter=wait)
    assert lease is not None
    wait.close()
    assert waiter.release(lease)
    assert client.llen(f"lockkit:{{{name}}}:waiters") == 0


_IMPATIENT_ROUNDS = 150


def _impatient(url: str, name: str, counter: str, seed: int, start: Any) -> int:
    """Acquire with timeouts of 0-4 ms; increment a counter file under the lock."""
    rng = random.Random(seed)  # noqa: S311 - test timing, not secrets
    lock = lockkit.Lock(name, backend=url)
    start.wait()
    won = 0
    for _ in range(_IMPATIENT_ROUNDS):
        try:
            lock.acquire(timeout=rng.random() * 0.004)
        except LockTimeout:
            continue
        try:
            path = pathlib.Path(counter)
            path.write_text(str(int(path.read_text()) + 1))
            won += 1
        finally:
            lock.release()
    return won


@pytest.mark.multiprocess
def test_waiters_that_give_up_leave_no_grant_behind(
    redis_url: str, name: str, client: redis.Redis, tmp_path: pathlib.Path
) -> None:
    # Waiters time out at random moments, some just as a release grants them the lock:
    # every unused grant must be passed on, never left holding the lock for its TTL.
    counter = tmp_path / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        start = manager.Event()
        results = [
            pool.apply_async(_impatient, (redis_url, name, str(counter), seed, start))
            for seed in range(4)
        ]
        start.set()
        won = [result.get(timeout=120) for result in results]
    assert int(counter.read_text()) == sum(won)  # no lost update
    assert sum(won) > 0
    assert client.llen(f"lockkit:{{{name}}}:waiters") == 0
    # Free now, not after a TTL: no grant was stranded with a waiter that left.
    assert lockkit.Lock(name, backend=redis_url).inspect() is None


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_contended_acquisition_judges_the_holder_its_attempt_read(
    backends: tuple[RedisBackend, RedisBackend],
    name: str,
    driver: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failed attempt reports the holder (Waiter.seen): no separate inspect round trip."""
    import asyncio

    holder, waiting = backends
    held = holder.try_acquire(name, Owner.current(), 30.0)
    assert held is not None
    asked: list[str] = []

    def no_inspect(self: RedisBackend, lock: str) -> None:
        asked.append(lock)
        raise AssertionError("inspect was called")

    monkeypatch.setattr(RedisBackend, "inspect", no_inspect)
    monkeypatch.setattr(RedisBackend, "inspect_async", no_inspect)
    # The holder is alive (this process): the waiter waits, and times out.
    if driver == "sync":
        with pytest.raises(LockTimeout) as caught:
            lockkit.Lock(name, backend=waiting, timeout=0.3).acquire()
    else:

        async def main() -> None:
            await lockkit.AsyncLock(name, backend=waiting, timeout=0.3).acquire()

        with pytest.raises(LockTimeout) as caught:
            asyncio.run(main())
    assert asked == []
    assert caught.value.holder is not None
    assert caught.value.holder.owner is not None
    assert caught.value.holder.owner.token == held.token  # what the attempt read
    assert holder.release(held)
