"""The asyncio side of the redis backend: ``redis.asyncio``, same scripts, same hand-off.

`lockkit.backends.redis.RedisBackend`'s ``*_async`` methods delegate here for a single
server (a Redlock of several runs the blocking methods in worker threads instead).
The keys, the Lua scripts and the hand-off protocol are the blocking side's, so
blocking and asyncio processes contend for the same lock correctly.

**Per event loop** (asyncio connections belong to the loop that opened them), each
backend keeps a ``redis.asyncio`` client built from the same URL and options, and one
pub/sub connection shared by all the loop's waiting tasks. That connection listens on
a pattern of its own (``<prefix>waiter:<random>:*``) and each waiting acquisition gets
a channel under it: one ``PSUBSCRIBE`` per loop, no subscription round trip per wait,
and a release's ``PUBLISH`` still reaches exactly the waiter it popped off the queue.
The connections are closed when the loop shuts its asynchronous generators down
(``asyncio.run`` does, after cancelling the remaining tasks, so their releases go
through first).

**Cancellation.** No redis-py call is awaited directly by the caller's task: each
runs in a task of its own that the caller awaits through `asyncio.shield`. A
cancelled caller so stops waiting at once, while the command, which may already be
on the wire, completes: a lock won by an abandoned attempt is then released, and a
queue entry made by an abandoned wait is removed. This also keeps cancellation
reliable on Python 3.11, where ``asyncio.wait_for`` (used inside redis-py) can swallow
a cancellation that arrives just as the awaited operation completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import importlib
import itertools
import logging
import os
import time
import weakref
from typing import TYPE_CHECKING, Any

import attrs

from lockkit._info import Lease, LockInfo, Owner
from lockkit._redact import redact_url
from lockkit.backends._file import encode_payload
from lockkit.backends._redis_conn import AsyncScript, LoopConnections
from lockkit.backends.redis import (
    _ACQUIRE,
    _ACQUIRE_FAST,
    _BREAK,
    _ENQUEUE,
    _LEAVE,
    _QUEUE_TTL_MS,
    _RELEASE,
    _import_redis,
    holder_info,
    queued_args,
    unavailable,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from lockkit.backends.redis import RedisBackend
    from lockkit.errors import BackendUnavailable

__all__ = ["AsyncRedis", "for_backend"]

log = logging.getLogger("lockkit")

# Commands that must complete although their caller was cancelled (releases, leaving a
# queue, abandoned attempts); the loop keeps only weak references to tasks.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def _import_redis_asyncio() -> Any:  # noqa: ANN401 - the module, typed at the use sites
    """redis-py with its ``redis.asyncio`` package loaded (``import redis`` may not)."""
    redis = _import_redis()
    importlib.import_module("redis.asyncio")
    return redis


def _keep(future: asyncio.Future[Any]) -> None:
    _BACKGROUND.add(future)
    future.add_done_callback(_BACKGROUND.discard)


async def _shielded(command: Awaitable[Any]) -> Any:  # noqa: ANN401 - a Redis reply
    """Await ``command`` so that cancelling the caller does not cancel the command."""
    task = asyncio.ensure_future(command)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _keep(task)
        raise


@attrs.define
class _Wait:
    """One task's place in one lock's hand-off queue (its ``threading.local`` in sync).

    Attributes:
        name: The lock waited for.
        channel: Where a release wakes this waiter.
        woken: A wake-up arrived and the next attempt has not used it yet.
        signalled: A wake-up arrived while no `future` was waiting for it.
        future: Resolved by the listener when a wake-up arrives.
        inflight: A command of this task that may still queue it (an attempt or the
            first enqueue), left running when the task was cancelled.
    """

    name: str
    channel: str
    woken: bool = False
    signalled: bool = False
    future: asyncio.Future[bool] | None = None
    inflight: asyncio.Future[Any] | None = None

    def wake(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(True)
        else:
            self.signalled = True


class _LoopSide:
    """A backend's connections and waiters in one event loop."""

    def __init__(self, backend: RedisBackend) -> None:
        redis = _import_redis_asyncio()
        url = backend.urls[0]
        self.shown = redact_url(url)
        self.prefix = backend.prefix
        pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0
        )
        self.client = redis.asyncio.Redis(connection_pool=pool)
        # Scripts run on connections the loop keeps (see _redis_conn for why).
        self.connections = LoopConnections(pool)
        self.acquire_fast = AsyncScript(_ACQUIRE_FAST, self.connections)
        self.acquire = AsyncScript(_ACQUIRE, self.connections)
        self.release = AsyncScript(_RELEASE, self.connections)
        self.break_ = AsyncScript(_BREAK, self.connections)
        self.enqueue = AsyncScript(_ENQUEUE, self.connections)
        self.leave = AsyncScript(_LEAVE, self.connections)
        # The listener's reads block until a wake-up comes: no socket timeout there.
        self._listen_pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=None
        )
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._closing = False
        self._base = f"{backend.prefix}waiter:{os.urandom(12).hex()}:"
        self._serial = itertools.count()
        self.by_channel: dict[bytes, _Wait] = {}
        self.by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], _Wait] = (
            weakref.WeakKeyDictionary()
        )
        self._closer: AsyncIterator[None] | None = None

    async def register_closer(self, on_close: Any) -> None:  # noqa: ANN401 - a callback
        """Arrange for `close` when the loop shuts down its asynchronous generators."""
        closer = self._close_at_shutdown(on_close)
        await anext(closer)  # its first step registers it with the running loop
        self._closer = closer

    async def _close_at_shutdown(self, on_close: Any) -> AsyncIterator[None]:  # noqa: ANN401
        try:
            yield
        finally:
            on_close()
            await self.close()

    async def close(self) -> None:
        """Stop listening and close both connection pools."""
        self._closing = True
        if self._listener is not None and not self._listener.done():
            self._listener.cancel()
            await asyncio.wait([self._listener], timeout=1.0)
        await self._drop_listener()
        await self.connections.close()
        with contextlib.suppress(Exception):
            await self.client.aclose()
        with contextlib.suppress(Exception):
            await self.client.connection_pool.disconnect()
        with contextlib.suppress(Exception):
            await self._listen_pool.disconnect()

    def new_channel(self) -> str:
        """A channel under this loop's pattern, for one acquisition's waits."""
        return f"{self._base}{next(self._serial)}"

    async def listening(self) -> None:
        """Start the listener unless it runs; return once its pattern is subscribed."""
        if self._listener is not None and not self._listener.done():
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start_listener())
        await asyncio.shield(self._starting)

    async def _start_listener(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        redis = _import_redis_asyncio()
        pubsub = redis.asyncio.Redis(connection_pool=self._listen_pool).pubsub()
        self._pubsub = pubsub
        await pubsub.psubscribe(self._base + "*")
        # Wait for the confirmation: until the server has it, a release's PUBLISH
        # would find nobody listening and skip our waiters.
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message.get("type") == "psubscribe":
                break
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(pubsub), name="lockkit-redis-listener"
        )

    async def _listen(self, pubsub: Any) -> None:  # noqa: ANN401 - a redis-py PubSub
        redis = _import_redis()
        try:
            while not self._closing:
                message = await pubsub.get_message(timeout=None)
                if message is None or message.get("type") != "pmessage":
                    continue
                wait = self.by_channel.get(message["channel"])
                # Wake-ups carry the lock's name, as in the blocking protocol.
                if wait is not None and message.get("data") == wait.name.encode():
                    wait.wake()
        except (redis.RedisError, OSError) as exc:
            # Waiters fall back to their bounded re-checks; the next wait reconnects.
            log.warning("lockkit: Redis wake-up listener at %s stopped: %s", self.shown, exc)
        finally:
            await self._drop_listener()

    async def _drop_listener(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        for wait in list(self.by_channel.values()):
            if wait.future is not None and not wait.future.done():
                wait.future.set_result(False)


class AsyncRedis:
    """The asyncio operations of one `RedisBackend` (single server), per event loop."""

    def __init__(self) -> None:
        """Start with no event loop connected."""
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSide] = (
            weakref.WeakKeyDictionary()
        )
        self._pid = os.getpid()

    async def _side(self, backend: RedisBackend) -> _LoopSide:
        if self._pid != os.getpid():
            # A forked child: the parent's connections are not its own.
            self._loops = weakref.WeakKeyDictionary()
            self._pid = os.getpid()
        loop = asyncio.get_running_loop()
        side = self._loops.get(loop)
        if side is None:
            side = self._loops[loop] = _LoopSide(backend)
            await side.register_closer(functools.partial(self._loops.pop, loop, None))
        return side

    @staticmethod
    def _unavailable(side: _LoopSide, exc: Exception) -> BackendUnavailable:
        return unavailable(side.shown, exc)

    async def try_acquire(
        self, backend: RedisBackend, name: str, owner: Owner, ttl: float | None
    ) -> Lease | None:
        """One ``SET NX PX`` (the acquire script); re-queues a waiting task, as in sync."""
        side = await self._side(backend)
        redis = _import_redis()
        ttl = ttl or backend.default_ttl
        ttl_ms = max(1, int(ttl * 1000))
        keys = backend._keys(name)  # noqa: SLF001 - the same keys as the blocking side
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        payload = encode_payload(owner, backend.name, expires).decode()
        task = asyncio.current_task()
        wait = side.by_task.get(task) if task is not None else None
        queued = wait is not None and wait.name == name
        if queued:
            assert wait is not None
            # Woken by a release and beaten to it: keep our place at the front. Tasks
            # queue plain entries (the channel): they are woken, never granted the lock.
            args = queued_args(payload, ttl_ms, wait.channel, woken=wait.woken, queued=wait.channel)
            command = side.acquire(keys=keys, args=args)
        else:
            command = side.acquire_fast(keys=keys[:2], args=[payload, ttl_ms])
        attempt = asyncio.ensure_future(command)
        if wait is not None and queued:
            wait.inflight = attempt
        try:
            result = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The script may still run: a lock it takes is nobody's, so give it back.
            # `inflight` stays set: leaving the queue waits for the script to land.
            attempt.add_done_callback(
                functools.partial(self._release_abandoned, side, keys, payload, name)
            )
            raise
        except (redis.RedisError, OSError) as exc:
            if wait is not None and queued:
                wait.inflight = None
            raise self._unavailable(side, exc) from None
        if wait is not None and queued:
            wait.woken = False
            wait.inflight = None
        if queued and result is not None:
            result = result[0]  # the queued script answers {fence, granted}
        if not isinstance(result, int):
            return None  # busy (the first attempt's script also says who holds it)
        return Lease(
            name,
            backend.name,
            owner,
            expires=expires,
            fencing_token=int(result),
            ttl=ttl,
            handle=payload,
        )

    @staticmethod
    def _release_abandoned(
        side: _LoopSide,
        keys: tuple[str, str, str],
        payload: str,
        name: str,
        attempt: asyncio.Future[Any],
    ) -> None:
        if attempt.cancelled() or attempt.exception() is not None:
            return
        result = attempt.result()
        if result is None or (isinstance(result, list) and not isinstance(result[0], int)):
            return  # busy: the first attempt's script answers with the holder instead
        _keep(asyncio.ensure_future(side.release(keys=keys, args=[payload, name])))

    async def release(self, backend: RedisBackend, lease: Lease) -> bool:
        """Compare-and-delete, handing off to the first queued waiter; never abandoned."""
        side = await self._side(backend)
        redis = _import_redis()
        keys = backend._keys(lease.name)  # noqa: SLF001
        try:
            released = await _shielded(side.release(keys=keys, args=[lease.handle, lease.name]))
        except (redis.RedisError, OSError):
            return False  # its key expires by itself; the lock counts as lost
        return bool(released)

    async def inspect(self, backend: RedisBackend, name: str) -> LockInfo | None:
        """The holder's payload, expiry and fencing token (as `RedisBackend.inspect`)."""
        side = await self._side(backend)
        redis = _import_redis()
        key, fence, _ = backend._keys(name)  # noqa: SLF001
        try:
            value, pttl, counter = await _shielded(_read_holder(side, key, fence))
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(side, exc) from None
        if value is None:
            return None
        return holder_info(name, backend.name, value, pttl, counter)

    async def break_lock(self, backend: RedisBackend, name: str, expected: LockInfo) -> bool:
        """Delete the key if it still holds ``expected``'s token (the break script)."""
        if expected.owner is None or not expected.owner.token:
            return False
        side = await self._side(backend)
        redis = _import_redis()
        keys = backend._keys(name)  # noqa: SLF001
        try:
            broken = await _shielded(side.break_(keys=keys, args=[expected.owner.token, name]))
        except (redis.RedisError, OSError):
            return False
        return bool(broken)

    async def wait(self, backend: RedisBackend, name: str, deadline: float) -> bool:
        """Queue for the lock and await a hand-off, bounded by ``poll`` (as `wait`)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # The bound covers a lost message, a crashed waiter ahead of us, a holder that
        # died (its key expires, nobody releases) or an unreachable server: never hang.
        bound = min(remaining, backend.poll)
        side = await self._side(backend)
        redis = _import_redis()
        task = asyncio.current_task()
        assert task is not None
        wait = side.by_task.get(task)
        fresh = None
        try:
            await side.listening()
            if wait is None or wait.name != name:
                wait = fresh = _Wait(name, side.new_channel())
                # Registered before queueing: the listener may see the wake-up before
                # this task sees the script's reply; and if this task is cancelled
                # meanwhile, `stop_waiting` finds it and removes the queue entry.
                side.by_channel[wait.channel.encode()] = wait
                side.by_task[task] = wait
                keys = backend._keys(name)  # noqa: SLF001
                enqueue = asyncio.ensure_future(
                    side.enqueue(keys=keys, args=[wait.channel, _QUEUE_TTL_MS])
                )
                wait.inflight = enqueue
                queued = await asyncio.shield(enqueue)
                wait.inflight = None
                if not queued:
                    _forget(side, task, wait)
                    return True  # released before we queued: try again now
            return await self._await_wake(wait, bound)
        except (redis.RedisError, OSError):
            if fresh is not None:
                _forget(side, task, fresh)
            # Unreachable: wait out the bound here rather than spin.
            await asyncio.sleep(max(0.0, min(bound, deadline - time.monotonic())))
            return False

    @staticmethod
    async def _await_wake(wait: _Wait, bound: float) -> bool:
        if wait.signalled:  # it came while we were not looking
            wait.signalled = False
            wait.woken = True
            return True
        loop = asyncio.get_running_loop()
        wait.future = loop.create_future()
        timer = loop.call_later(bound, _expire, wait.future)
        try:
            woken = await wait.future
        finally:
            timer.cancel()
            wait.future = None
        if woken:
            wait.woken = True
        return woken

    async def stop_waiting(self, backend: RedisBackend, name: str) -> None:
        """Leave the queue; a wake-up this task did not use goes to the next waiter."""
        side = self._loops.get(asyncio.get_running_loop())
        task = asyncio.current_task()
        if side is None or task is None:
            return
        wait = side.by_task.get(task)
        if wait is None or wait.name != name:
            return
        del side.by_task[task]
        side.by_channel.pop(wait.channel.encode(), None)
        # Shielded: an interrupted leave would leave our channel queued, and a release
        # would then hand the lock to nobody (the next waiter would wait out `poll`).
        await _shielded(self._leave(backend, side, wait))

    @staticmethod
    async def _leave(backend: RedisBackend, side: _LoopSide, wait: _Wait) -> None:
        redis = _import_redis()
        if wait.inflight is not None:
            # An attempt abandoned by cancellation may still re-queue us: let it land
            # first, or the leave could run before it and miss the entry.
            await asyncio.wait([wait.inflight])
        keys = backend._keys(wait.name)  # noqa: SLF001
        woken = "1" if wait.woken or wait.signalled else "0"
        with contextlib.suppress(redis.RedisError, OSError):
            await side.leave(keys=keys, args=[wait.channel, wait.name, woken, ""])


async def _read_holder(side: _LoopSide, key: str, fence: str) -> tuple[Any, Any, Any]:
    async with side.client.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        pipe.get(fence)
        value, pttl, counter = await pipe.execute()
    return value, pttl, counter


def _forget(side: _LoopSide, task: asyncio.Task[Any], wait: _Wait) -> None:
    """Drop a wait that is not (or no longer known to be) queued."""
    if side.by_task.get(task) is wait:
        del side.by_task[task]
    side.by_channel.pop(wait.channel.encode(), None)


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


_SIDES: weakref.WeakKeyDictionary[RedisBackend, AsyncRedis] = weakref.WeakKeyDictionary()


def for_backend(backend: RedisBackend) -> AsyncRedis:
    """The asyncio side of ``backend``, created on first use."""
    side = _SIDES.get(backend)
    if side is None:
        side = _SIDES[backend] = AsyncRedis()
    return side
