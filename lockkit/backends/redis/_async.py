"""The asyncio side of the redis backend: ``redis.asyncio``, same scripts, same hand-off.

`RedisBackend`'s ``*_async`` methods and its `RedisWaiter`'s ``wait_async`` and
``close_async`` delegate here (a `RedlockBackend` runs the blocking methods in worker
threads instead).
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
import functools
import importlib
import itertools
import os
import time
import weakref
from typing import TYPE_CHECKING, Any

import attrs

from lockkit._deadline import unbounded
from lockkit._log import log
from lockkit._redact import redact_url
from lockkit.backends.redis import _scripts
from lockkit.backends.redis._conn import (
    AsyncScript,
    LoopConnections,
    bounded_class,
    import_redis,
    time_left,
    unavailable,
)
from lockkit.backends.redis._payload import from_inspect, version_text
from lockkit.backends.redis._scripts import queued_args
from lockkit.backends.redis._sentinel import async_pool, is_sentinel_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from lockkit._info import Lease, LockInfo, Owner
    from lockkit.backends.redis._single import RedisBackend
    from lockkit.backends.redis._waiter import RedisWaiter
    from lockkit.errors import BackendUnavailable

__all__ = ["AsyncRedis", "AsyncWait", "for_backend"]


# Commands that must complete although their caller was cancelled (releases, leaving a
# queue, abandoned attempts); the loop keeps only weak references to tasks.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def _import_redis_asyncio() -> Any:  # noqa: ANN401 - the module, typed at the use sites
    """redis-py with its ``redis.asyncio`` package loaded (``import redis`` may not)."""
    redis = import_redis()
    importlib.import_module("redis.asyncio")
    return redis


def _pool(url: str, **options: Any) -> Any:  # noqa: ANN401 - a redis.asyncio pool
    """The loop's pool for ``url`` (its primary's, for a Sentinel URL), bounded classes."""
    if is_sentinel_url(url):
        pool, _ = async_pool(url, bounded_class, options)
        return pool
    redis = _import_redis_asyncio()
    pool = redis.asyncio.ConnectionPool.from_url(url, **options)
    pool.connection_class = bounded_class(pool.connection_class)
    return pool


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
class AsyncWait:
    """An asyncio acquisition's place in one lock's hand-off queue (on its `RedisWaiter`).

    Attributes:
        name: The lock waited for.
        channel: Where a release wakes this waiter (under the loop's pattern).
        side: The event loop's connections it belongs to.
        queued: Its plain entry is in the queue (as far as this side knows).
        woken: A wake-up arrived and the next attempt has not used it yet.
        signalled: A wake-up arrived while no `future` was waiting for it.
        future: Resolved by the listener when a wake-up arrives.
        inflight: A command of this task that may still queue it (an attempt or the
            first enqueue), left running when the task was cancelled.
    """

    name: str
    channel: str
    side: _LoopSide
    queued: bool = False
    woken: bool = False
    signalled: bool = False
    future: asyncio.Future[bool] | None = None
    inflight: asyncio.Future[Any] | None = None

    def wake(self) -> None:
        """A release woke this waiter (called by the loop's listener)."""
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
        pool = _pool(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        # Subscribing may take this long (the URL's socket timeout) whoever waits.
        self.subscribe_within: float | None = pool.connection_kwargs.get("socket_timeout")
        self.client = redis.asyncio.Redis(connection_pool=pool)
        # Scripts run on connections the loop keeps (see `._conn` for why).
        self.connections = LoopConnections(pool)
        self.acquire = AsyncScript(_scripts.ACQUIRE, self.connections)
        self.acquire_queued = AsyncScript(_scripts.ACQUIRE_QUEUED, self.connections)
        self.release = AsyncScript(_scripts.RELEASE, self.connections)
        self.break_ = AsyncScript(_scripts.BREAK, self.connections)
        self.enqueue = AsyncScript(_scripts.ENQUEUE, self.connections)
        self.leave = AsyncScript(_scripts.LEAVE, self.connections)
        self.inspect = AsyncScript(_scripts.INSPECT, self.connections)
        # The listener's reads block until a wake-up comes: no socket timeout there.
        # (Its connections are bounded too, but the listener runs for no acquisition.)
        self._listen_pool = _pool(url, socket_connect_timeout=2.0, socket_timeout=None)
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._closing = False
        self._base = f"{backend.prefix}waiter:{os.urandom(12).hex()}:"
        self._serial = itertools.count()
        self.by_channel: dict[bytes, AsyncWait] = {}
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
        for pool in (self.client.connection_pool, self._listen_pool):
            # A Sentinel pool's manager keeps connections to the sentinels.
            manager = getattr(pool, "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                with contextlib.suppress(Exception):
                    await sentinel.connection_pool.disconnect()

    def new_channel(self) -> str:
        """A channel under this loop's pattern, for one acquisition's waits."""
        return f"{self._base}{next(self._serial)}"

    async def listening(self) -> None:
        """Start the listener unless it runs; return once its pattern is subscribed.

        Waits no longer than the current acquisition may (`time_left`): a server that
        does not answer raises ``TimeoutError``. The start itself is shared by every
        waiting task and bounded by the URL's socket timeout, not by one task's.
        """
        if self._listener is not None and not self._listener.done():
            return
        if self._starting is None or self._starting.done():
            # In a context of its own: the listener it starts outlives this acquisition.
            self._starting = asyncio.get_running_loop().create_task(
                self._start_listener(), context=unbounded()
            )
        left = time_left()
        try:
            if left is None:
                await asyncio.shield(self._starting)
            else:
                await asyncio.wait_for(asyncio.shield(self._starting), max(left, 0.0))
        except TimeoutError:
            redis = import_redis()
            raise redis.TimeoutError("no answer to SUBSCRIBE within the time allowed") from None

    async def _start_listener(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        redis = _import_redis_asyncio()
        pubsub = redis.asyncio.Redis(connection_pool=self._listen_pool).pubsub()
        self._pubsub = pubsub
        try:
            async with asyncio.timeout(self.subscribe_within):
                await pubsub.psubscribe(self._base + "*")
                # Wait for the confirmation: until the server has it, a release's
                # PUBLISH would find nobody listening and skip our waiters.
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "psubscribe":
                        break
        except BaseException:
            if self._pubsub is pubsub:
                self._pubsub = None
            with contextlib.suppress(Exception):
                await asyncio.shield(pubsub.aclose())
            raise
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(pubsub), name="lockkit-redis-listener"
        )

    async def _listen(self, pubsub: Any) -> None:  # noqa: ANN401 - a redis-py PubSub
        redis = import_redis()
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

    async def _wait_of(self, side: _LoopSide, waiter: RedisWaiter) -> AsyncWait:
        """``waiter``'s place on this loop's side, made (and the listener started) once."""
        wait = waiter.tasks
        if wait is None or wait.side is not side:
            await side.listening()
            wait = AsyncWait(waiter.name, side.new_channel(), side)
            # Registered before anything is queued: the listener may see the wake-up
            # before this task sees the script's reply.
            side.by_channel[wait.channel.encode()] = wait
            waiter.tasks = wait
        return wait

    async def _attempt_wait_of(self, side: _LoopSide, waiter: RedisWaiter) -> AsyncWait:
        """`_wait_of` for an attempt: a server that does not answer is unavailable."""
        redis = import_redis()
        try:
            return await self._wait_of(side, waiter)
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(side, exc) from None

    async def try_acquire(
        self,
        backend: RedisBackend,
        name: str,
        owner: Owner,
        ttl: float | None,
        waiter: RedisWaiter | None,
    ) -> Lease | None:
        """One attempt (`._scripts.ACQUIRE`); with a waiter, it queues if busy, as in sync.

        Tasks queue plain entries (their channel): they are woken, never granted.
        """
        side = await self._side(backend)
        redis = import_redis()
        offer = backend.offer(name, owner, ttl)
        keys = backend.keys(name)
        wait = None if waiter is None else await self._attempt_wait_of(side, waiter)
        if wait is not None:
            # Woken by a release and beaten to it: keep our place at the front.
            queued = wait.channel if wait.queued else ""
            args = queued_args(offer, wait.channel, woken=wait.woken, queued=queued)
            command = side.acquire_queued(keys=keys, args=args)
        else:
            command = side.acquire(keys=keys[:2], args=[offer.payload, offer.ttl_ms])
        attempt = asyncio.ensure_future(command)
        if wait is not None:
            wait.inflight = attempt
        try:
            result = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The script may still run: a lock it takes is nobody's, so give it back.
            # `inflight` stays set: leaving the queue waits for the script to land.
            attempt.add_done_callback(
                functools.partial(self._release_abandoned, side, keys, offer.payload, name)
            )
            raise
        except (redis.RedisError, OSError) as exc:
            if wait is not None:
                wait.inflight = None
            raise self._unavailable(side, exc) from None
        busy = _busy(result)
        if wait is not None:
            wait.inflight = None
            wait.woken = False
            wait.queued = busy
        if busy:
            if waiter is not None:
                # The holder, read by the same script: judged without `inspect`.
                waiter.seen = None if result is None else from_inspect(name, backend.name, result)
            return None
        if wait is not None:
            result = result[0]  # the queued script answers {fence, granted}
        return offer.lease(int(result))

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
        if _busy(attempt.result()):
            return  # busy (and queued: the leave takes the entry out)
        # Not bounded by the abandoned acquisition's deadline: this release is nobody's.
        release = side.release(keys=keys, args=[payload, name])
        _keep(asyncio.get_running_loop().create_task(release, context=unbounded()))

    async def release(self, backend: RedisBackend, lease: Lease) -> bool:
        """Compare-and-delete, handing off to the first queued waiter; never abandoned."""
        side = await self._side(backend)
        redis = import_redis()
        keys = backend.keys(lease.name)
        try:
            released = await _shielded(side.release(keys=keys, args=[lease.handle, lease.name]))
        except (redis.RedisError, OSError):
            return False  # its key expires by itself; the lock counts as lost
        return bool(released)

    async def inspect(self, backend: RedisBackend, name: str) -> LockInfo | None:
        """The holder's payload, expiry, fencing token and version (as `RedisBackend.inspect`)."""
        side = await self._side(backend)
        redis = import_redis()
        try:
            reply = await _shielded(side.inspect(keys=backend.keys(name)[:2], args=[]))
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(side, exc) from None
        return from_inspect(name, backend.name, reply)

    async def break_lock(self, backend: RedisBackend, name: str, expected: LockInfo) -> bool:
        """Delete the key if it still holds ``expected``'s token and version."""
        if expected.owner is None or not expected.owner.token:
            return False
        side = await self._side(backend)
        redis = import_redis()
        keys = backend.keys(name)
        args = [expected.owner.token, name, version_text(expected.identity)]
        try:
            broken = await _shielded(side.break_(keys=keys, args=args))
        except (redis.RedisError, OSError):
            return False
        return bool(broken)

    async def wait(self, backend: RedisBackend, waiter: RedisWaiter, deadline: float) -> bool:
        """Await a wake-up for ``waiter``, bounded by ``poll``.

        Its failed attempt queued it; a waiter whose attempt ran in a worker thread (a
        reader) queues here first.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # The bound covers a lost message, a crashed waiter ahead of us, a holder that
        # died (its key expires, nobody releases) or an unreachable server: never hang.
        bound = min(remaining, backend.poll)
        side = await self._side(backend)
        redis = import_redis()
        try:
            wait = await self._wait_of(side, waiter)
            # A wake-up took our entry out of the queue; an attempt made in a worker
            # thread (a reader's) did not put it back.
            if not wait.queued or wait.woken:
                wait.woken = False
                keys = backend.keys(waiter.name)
                args = [wait.channel, _scripts.QUEUE_TTL_MS]
                enqueue = asyncio.ensure_future(side.enqueue(keys=keys, args=args))
                wait.inflight = enqueue
                queued = await asyncio.shield(enqueue)
                wait.inflight = None
                if not queued:
                    return True  # released before we queued: try again now
                wait.queued = True
            else:
                await side.listening()  # restarts a listener that stopped
            return await self._await_wake(wait, bound)
        except (redis.RedisError, OSError):
            # Unreachable: wait out the bound here rather than spin.
            await asyncio.sleep(max(0.0, min(bound, deadline - time.monotonic())))
            return False

    @staticmethod
    async def _await_wake(wait: AsyncWait, bound: float) -> bool:
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

    async def leave(self, backend: RedisBackend, waiter: RedisWaiter) -> None:
        """Leave the queue; a wake-up this waiter did not use goes to the next waiter."""
        wait, waiter.tasks = waiter.tasks, None
        if wait is None:
            return
        wait.side.by_channel.pop(wait.channel.encode(), None)
        if not (wait.queued or wait.woken or wait.signalled or wait.inflight is not None):
            return  # won by an attempt that took our entry out: nothing to leave
        # Shielded: an interrupted leave would leave our channel queued, and a release
        # would then wake nobody (the next waiter would wait out `poll`).
        await _shielded(self._leave(backend, wait))

    @staticmethod
    async def _leave(backend: RedisBackend, wait: AsyncWait) -> None:
        redis = import_redis()
        if wait.inflight is not None:
            # An attempt abandoned by cancellation may still queue us: let it land
            # first, or the leave could run before it and miss the entry.
            await asyncio.wait([wait.inflight])
        keys = backend.keys(wait.name)
        woken = "1" if wait.woken or wait.signalled else "0"
        with contextlib.suppress(redis.RedisError, OSError):
            await wait.side.leave(keys=keys, args=[wait.channel, wait.name, woken, ""])


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


def _busy(result: Any) -> bool:  # noqa: ANN401 - a script's reply
    """Whether an attempt's reply says busy: nil, or the holder ``{value, pttl, counter}``."""
    return result is None or (isinstance(result, list) and len(result) == 3)  # noqa: PLR2004
