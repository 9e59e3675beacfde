"""The hand-off as an explicit waiter: one `RedisWaiter` per acquisition that may wait.

A waiter holds everything one acquisition's waiting needs: the listener it borrowed
(a subscriber connection and its channel), its entry in the lock's queue, the offer a
grant entry registered, and what a release sent it (a wake-up, or a grant and its
fencing token). The backend itself keeps no waiting state between calls.

The attempt queues (``try_acquire(..., waiter=w)`` runs `._scripts.ACQUIRE_QUEUED`), so
`RedisWaiter.wait` only listens; `RedisWaiter.close` leaves the queue and passes on a
grant or wake-up nobody used.

**Listeners** are pooled per server (`Listeners`): subscribing is a round trip, so a
waiter borrows an idle listener and gives it back when it closes. A message left
unread on a reused listener cannot mislead the next waiter: wake-ups name the lock
(waking early only costs an attempt) and grants name the entry's token.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from lockkit.backends.redis._conn import redis_module, time_left
from lockkit.backends.redis._payload import granted_fence
from lockkit.errors import BackendUnavailable
from lockkit.spec import Waiter

if TYPE_CHECKING:
    from lockkit.backends.redis._async import AsyncWait
    from lockkit.backends.redis._conn import Server
    from lockkit.backends.redis._payload import Offer
    from lockkit.backends.redis._single import RedisBackend

__all__ = ["Listener", "Listeners", "RedisWaiter"]

_IDLE_LISTENERS = 64
"""Idle listeners kept per server; more are closed when given back."""


class Listener:
    """A subscriber connection, subscribed to a channel of its own.

    Attributes:
        pubsub: redis-py's ``PubSub``.
        channel: Where releases wake or grant the waiter using it.
        pid: The process it belongs to (a forked child never uses its parent's).
    """

    __slots__ = ("channel", "pid", "pubsub")

    def __init__(self, pubsub: Any, channel: str) -> None:  # noqa: ANN401 - a redis-py PubSub
        """Wrap ``pubsub``, already subscribed to ``channel``."""
        self.pubsub = pubsub
        self.channel = channel
        self.pid = os.getpid()

    def close(self) -> None:
        """Unsubscribe and disconnect: a grant sent to the channel from now on is undone."""
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):
                self.pubsub.close()


class Listeners:
    """The idle listeners of one server, lent to waiters (one process's)."""

    def __init__(self, server: Server, prefix: str, confirm_within: float) -> None:
        """Subscribe new listeners on ``server`` under ``prefix``, confirmed within a bound."""
        self.server = server
        self.prefix = prefix
        self.confirm_within = confirm_within
        self._idle: list[Listener] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self, name: str = "") -> Listener:
        """An idle listener, or a new one (a round trip to subscribe).

        ``name`` (the lock waited for) matters only in a cluster, whose channels belong
        to the lock's slot (`._cluster.ClusterListeners`); here every channel serves any
        lock. Raises redis-py's errors when the server cannot be reached.
        """
        del name
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: its parent's connections are not its own.
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        channel = f"{self.prefix}waiter:{os.urandom(12).hex()}"
        pubsub = self.server.client.pubsub()
        try:
            pubsub.subscribe(channel)
            # Wait for the confirmation: until the server has it, a release's PUBLISH
            # would find nobody listening and skip us.
            # No longer than the acquisition it is taken for may wait (`time_left`).
            left = time_left()
            within = self.confirm_within if left is None else min(self.confirm_within, left)
            confirm_by = time.monotonic() + within
            while (left := confirm_by - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=left)
                if message is not None and message.get("type") == "subscribe":
                    break
        except BaseException:
            with contextlib.suppress(Exception):
                pubsub.close()
            raise
        return Listener(pubsub, channel)

    def has_idle(self, name: str = "") -> bool:
        """Whether `take` would lend an idle listener (no round trip), as far as known now."""
        del name
        return bool(self._idle) and self._pid == os.getpid()

    def give_back(self, listener: Listener) -> None:
        """Keep ``listener`` for the next waiter (or close it, past `_IDLE_LISTENERS`)."""
        if listener.pid != os.getpid():
            return
        with self._lock:
            if self._pid == listener.pid and len(self._idle) < _IDLE_LISTENERS:
                self._idle.append(listener)
                return
        listener.close()

    def close(self) -> None:
        """Close every idle listener."""
        with self._lock:
            idle, self._idle = self._idle, []
        for listener in idle:
            listener.close()


class RedisWaiter(Waiter):
    """One acquisition's place in a Redis lock's hand-off queue.

    Made by `RedisBackend.waiter`; the attempts fill it in (the failed attempt queues
    its entry) and `wait` only listens.

    Attributes:
        backend: The backend it waits through.
        server: Index of the server listened to (a Redlock moves on when one is down).
        listener: The borrowed listener, once an attempt needed a channel.
        entry: The queue entry exactly as queued (``""``: not queued).
        queued: The offer a grant entry registered (``None`` for a plain entry).
        woken: A plain wake-up arrived and no attempt has used it yet.
        granted: The fencing token of a grant that no attempt has used yet.
        offer: The offer of a failed attempt that could not queue (no listener was at
            hand): `wait` queues it as a grant entry.
        tasks: The asyncio side's state, when an asyncio caller waits.
    """

    __slots__ = (
        "backend",
        "entry",
        "granted",
        "listener",
        "offer",
        "queued",
        "server",
        "tasks",
        "woken",
    )

    def __init__(self, backend: RedisBackend, name: str) -> None:
        """A waiter for ``name`` through ``backend``; it connects nothing yet."""
        super().__init__(name)
        self.backend = backend
        self.server = 0
        self.listener: Listener | None = None
        self.entry = ""
        self.queued: Offer | None = None
        self.woken = False
        self.granted: int | None = None
        self.offer: Offer | None = None
        self.tasks: AsyncWait | None = None

    def can_queue(self) -> bool:
        """Whether an attempt can queue this waiter without subscribing first.

        True once it has a listener, or when an idle one is at hand. The first
        acquisition of a process that ever waits subscribes in `wait` instead (and
        queues there): an uncontended acquisition never pays for a subscription.
        """
        listener = self.listener
        if listener is not None and listener.pid == os.getpid():
            return True
        return self.backend.listeners[self.server].has_idle(self.name)

    def channel(self) -> str:
        """This waiter's channel, borrowing a listener first if it has none.

        Raises `BackendUnavailable` when the server cannot be reached.
        """
        listener = self.listener
        if listener is None or listener.pid != os.getpid():
            server = self.backend.servers[self.server]
            try:
                listener = self.backend.listeners[self.server].take(self.name)
            except (redis_module().RedisError, OSError) as exc:
                from lockkit.backends.redis._conn import unavailable  # noqa: PLC0415

                raise unavailable(server.shown, exc) from None
            self.listener = listener
        return listener.channel

    def queue(self, entry: str, offer: Offer | None) -> None:
        """Record that an attempt queued ``entry`` (registering ``offer`` if a grant entry)."""
        self.entry, self.queued = entry, offer
        self.offer = None
        self.woken = False
        self.granted = None

    def forget(self) -> None:
        """Record that the entry left the queue (an attempt won, or a grant was used)."""
        self.entry = ""
        self.queued = None
        self.woken = False
        self.granted = None
        self.offer = None

    def take_grant(self) -> tuple[Offer, int] | None:
        """The grant a release sent and `wait` read, once: (offer, fencing token)."""
        offer, fence = self.queued, self.granted
        if offer is None or fence is None:
            return None
        self.forget()
        return offer, fence

    def wait(self, deadline: float) -> bool:  # noqa: PLR0911 - one return per outcome
        """Listen until a release wakes or grants this waiter, bounded by ``poll``.

        The failed attempt queued the entry; only a waiter whose attempt did not queue
        it (no listener was at hand yet, a Redlock attempt that won one server, a
        server that failed) subscribes and queues here.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        backend = self.backend
        # The bound covers a lost message, a crashed waiter ahead of us, a holder that
        # died (its key expires, nobody releases) or an unreachable server: never hang.
        bound = min(remaining, backend.poll)
        redis = redis_module()
        try:
            if not self.entry and not backend.enqueue(self):
                return True  # released before we queued: try again now
            listener = self.listener
            if listener is None:
                return False  # nothing to listen on (cannot happen once queued)
            end = time.monotonic() + bound
            plain = self.name.encode()
            while (left := end - time.monotonic()) > 0:
                message = listener.pubsub.get_message(timeout=left)
                kind = None if message is None else message.get("type")
                if kind == "sunsubscribe":
                    # A cluster moved the lock's slot and ended our sharded
                    # subscription: nobody hears grants sent to our entry any more
                    # (they are undone). Try again now; the next wait subscribes anew.
                    self.drop_listener()
                    return True
                if message is None or kind not in {"message", "smessage"}:
                    continue
                data = message["data"]
                if data == plain:
                    self.woken = True
                    return True
                fence = granted_fence(data, self.name, self.queued)
                if fence is not None:
                    self.granted = fence
                    return True
        except (redis.RedisError, OSError, BackendUnavailable):
            # That server is down: listen on the next one from now on (a Redlock
            # releases on all of them), and wait out the bound here rather than spin.
            self.drop_listener()
            self.server = (self.server + 1) % len(backend.servers)
            time.sleep(max(0.0, min(bound, deadline - time.monotonic())))
        return False

    def drop_listener(self) -> None:
        """Close the listener (not given back): a grant sent to its channel is undone.

        Also forgets the entry: with nobody listening, a release skips it.
        """
        listener, self.listener = self.listener, None
        self.forget()
        if listener is not None:
            listener.close()

    def close(self) -> None:
        """Leave the queue (a grant or wake-up not used goes on) and give the listener back."""
        listener = self.listener
        try:
            if self.entry or self.woken or self.granted is not None:
                self.backend.leave(self)
        except (redis_module().RedisError, OSError, BackendUnavailable):
            # Our entry may still be queued: close the channel, so a grant to it is undone.
            self.drop_listener()
            return
        self.forget()
        self.listener = None
        if listener is not None:
            self.backend.listeners[self.server].give_back(listener)

    async def wait_async(self, deadline: float) -> bool:
        """`wait` over ``redis.asyncio``: the same queue, one listener per event loop."""
        waiting: bool = await self.backend.wait_async_for(self, deadline)
        return waiting

    async def close_async(self) -> None:
        """`close` for asyncio callers: leave the queue, pass on an unused wake-up."""
        if self.tasks is not None:
            await self.backend.leave_async(self)
        if self.listener is not None or self.entry:
            import asyncio  # noqa: PLC0415 - the caller's loop imported it

            await asyncio.to_thread(self.close)
