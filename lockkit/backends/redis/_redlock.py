"""`RedlockBackend`: one lock over several independent Redis masters (quorum N/2+1).

Made by `RedisBackend.from_url` (or ``RedisBackend([...])``) from several URLs. Each
operation runs the single-server scripts on every server; a lock is held while a
quorum of servers holds its value. It takes no shared locks (readers would need a
quorum and a validity rule of their own), so its capabilities have no ``shared``.

Waiters queue plain entries on the one server they listen to and are only woken (a
grant on one server is not a Redlock); asyncio callers run the blocking methods in
worker threads and poll.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from lockkit.backends.redis._payload import Reader, holder_info, version_of, version_text
from lockkit.backends.redis._scripts import queued_args
from lockkit.backends.redis._single import RedisBackend
from lockkit.backends.redis._threaded import AsyncInThreads
from lockkit.backends.redis._waiter import RedisWaiter
from lockkit.errors import BackendUnavailable, SharedLocksUnsupported
from lockkit.spec import Capabilities

if TYPE_CHECKING:
    from lockkit._info import Lease, LockInfo, Owner
    from lockkit.backends.redis._payload import Offer
    from lockkit.spec import Waiter

__all__ = ["RedlockBackend"]


class RedlockBackend(AsyncInThreads, RedisBackend, several_servers=True):  # type: ignore[misc]
    """Redlock over several Redis/Valkey masters: quorum, drift allowance, fencing rounds."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, released_on_crash=True, ttl=True, fencing=True, notify=True
    )
    """As `RedisBackend`'s, without ``shared``."""

    def try_acquire(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """``SET`` on every server; ours if a quorum agrees twice, in time.

        Round one takes the key (and ``INCR``s the fence) on each server; the token is
        the largest counter of the servers that said yes. Round two
        (`._scripts.FENCE`, on every server) raises each counter to that token, checks
        that the key is still ours and stamps it with the token; only a quorum of yes
        in round two makes the lease, so fencing tokens strictly increase from holder
        to holder. A waiter's plain entry is queued, on the server it listens to, by
        the same script as the attempt there.
        """
        if shared:
            raise SharedLocksUnsupported(
                f"{self.name} (a Redlock over {len(self.servers)} servers)",
                ["filelock", f"{self.name} with one server URL"],
            )
        if self._unchecked:
            self.check_eviction()
        mine = waiter if isinstance(waiter, RedisWaiter) and waiter.backend is self else None
        offer = self.offer(name, owner, ttl)
        keys = self.keys(name)
        start = time.monotonic()
        fences, failures = self._round_one(offer, mine)
        if len(fences) >= self.quorum and self._valid(offer, start):
            token = max(fences)
            confirmed, failures = self._raise_fences(keys, offer.payload, token)
            if confirmed >= self.quorum and self._valid(offer, start):
                return offer.lease(token)
        if fences:
            # A partial Redlock must leave no keys behind on the servers that said yes.
            self._release_counted(name, offer.payload)
        if len(failures) > len(self.servers) - self.quorum:
            raise failures[0]
        return None

    def _round_one(
        self, offer: Offer, waiter: RedisWaiter | None
    ) -> tuple[list[int], list[BackendUnavailable]]:
        """``SET`` on every server: the fences of those that said yes, and the failures."""
        keys = self.keys(offer.name)
        fences: list[int] = []
        failures: list[BackendUnavailable] = []
        for index, server in enumerate(self.servers):
            try:
                if waiter is not None and index == waiter.server and waiter.can_queue():
                    fence = self._attempt_queued(index, offer, waiter)
                else:
                    args = [offer.payload, offer.ttl_ms]
                    found = self.call(server, server.acquire, keys[:2], args)
                    fence = None if found is None or isinstance(found, list) else int(found)
            except BackendUnavailable as exc:
                failures.append(exc)
                continue
            if fence is not None:
                fences.append(fence)
        return fences, failures

    def _attempt_queued(self, index: int, offer: Offer, waiter: RedisWaiter) -> int | None:
        """Round one on the server ``waiter`` listens to: take the key or queue the waiter."""
        server = self.servers[index]
        channel = waiter.channel()
        args = queued_args(offer, channel, woken=waiter.woken, queued=waiter.entry)
        try:
            result = self.call(server, server.acquire_queued, self.keys(offer.name), args)
        except BaseException:
            waiter.drop_listener()
            raise
        if result is None or len(result) == 3:  # noqa: PLR2004 - busy: {value, pttl, counter}
            waiter.queue(channel, None)
            return None
        waiter.forget()  # the script took our entry out of the queue
        return int(result[0])

    @staticmethod
    def _valid(offer: Offer, start: float) -> bool:
        """Redlock validity: time left of the ttl after the time spent, minus drift."""
        drift = offer.ttl * 0.01 + 0.002
        return offer.ttl - (time.monotonic() - start) - drift > 0

    def _raise_fences(
        self, keys: tuple[str, str, str], payload: str, token: int
    ) -> tuple[int, list[BackendUnavailable]]:
        """Round two of an acquisition (`._scripts.FENCE`) on every server.

        Returns how many servers raised their counter to ``token`` while still holding
        our key, and the servers that could not be asked.
        """
        confirmed = 0
        failures: list[BackendUnavailable] = []
        for server in self.servers:
            try:
                confirmed += int(self.call(server, server.fence, keys[:2], [payload, token]))
            except BackendUnavailable as exc:
                failures.append(exc)
        return confirmed, failures

    def _release_counted(self, name: str, payload: str) -> tuple[int, int]:
        """Compare-and-delete on every server: (keys deleted, servers unreachable)."""
        keys = self.keys(name)
        released = unreachable = 0
        for server in self.servers:
            try:
                released += int(self.call(server, server.release, keys, [payload, name]))
            except BackendUnavailable:
                unreachable += 1  # its copy expires by itself
        return released, unreachable

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete on every server; each wakes its first queued waiter."""
        if isinstance(lease.handle, Reader):
            return False  # never made here
        released, unreachable = self._release_counted(lease.name, lease.handle)
        # An unreachable server's copy expires by itself; only keys found gone or
        # another's on a majority mean the lock had been lost.
        return released + unreachable >= self.quorum and released > 0

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Compare-and-extend on every server; ours while a quorum agrees."""
        key = self.keys(lease.name)[0]
        ttl_ms = max(1, int(ttl * 1000))
        renewed = 0
        failures: list[BackendUnavailable] = []
        for server in self.servers:
            try:
                renewed += int(self.call(server, server.refresh, [key], [lease.handle, ttl_ms]))
            except BackendUnavailable as exc:
                failures.append(exc)
        if renewed >= self.quorum:
            return True
        if failures and renewed + len(failures) >= self.quorum:
            raise failures[0]  # cannot tell yet: the core retries until the expiry
        return False

    def inspect(self, name: str) -> LockInfo | None:
        """The holder a quorum of servers agrees on, else ``None`` (nobody holds it).

        A key on a minority of servers is no lock: it belongs to an attempt that is
        being undone, or to a holder that lost its quorum. Copies are told apart by
        holder token; the version reported is the one most of them carry (a server that
        missed a refresh lags). Raises `BackendUnavailable` when the unreachable
        servers could make up the difference (cannot tell).
        """
        keys = self.keys(name)[:2]
        copies: dict[str, list[tuple[bytes, int | None]]] = {}
        failures: list[BackendUnavailable] = []
        for server in self.servers:
            try:
                reply = self.call(server, server.inspect, keys, [])
            except BackendUnavailable as exc:
                failures.append(exc)
                continue
            value, pttl = reply[0], reply[1]
            if value is not None:
                holder = holder_info(name, self.name, value, pttl, None)
                token = holder.owner.token if holder.owner is not None else ""
                copies.setdefault(token, []).append((value, pttl))
        for seen in copies.values():
            if len(seen) >= self.quorum:
                # Held while a quorum of its keys live: until the quorum-th longest expires.
                pttls = sorted((pttl or 0 for _, pttl in seen), reverse=True)
                versions = [version_of(value) for value, _ in seen]
                common = max(versions, key=versions.count)
                value = next(value for value, _ in seen if version_of(value) == common)
                return holder_info(name, self.name, value, pttls[self.quorum - 1], None)
        most = max((len(seen) for seen in copies.values()), default=0)
        if failures and most + len(failures) >= self.quorum:
            raise failures[0]
        return None

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete every copy that still holds ``expected``'s token and version."""
        if expected.owner is None or not expected.owner.token:
            return False
        keys = self.keys(name)
        args = [expected.owner.token, name, version_text(expected.identity)]
        broken = 0
        for server in self.servers:
            try:
                broken += int(self.call(server, server.break_, keys, args))
            except BackendUnavailable:
                continue
        return broken > 0
