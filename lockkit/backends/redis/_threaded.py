"""asyncio through worker threads, for the Redis backends whose waits need several servers.

The asyncio side of one server (`._async`) keeps one pub/sub listener per event loop on
that server. A Redlock listens on several servers, a cluster on the master of each
lock's slot: there, every operation runs the blocking method in a worker thread, and a
waiting task re-checks with backoff (up to ``poll``) instead of being woken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockkit._spec_v1 import SpecV1Methods
from lockkit._threads import try_acquire_in_thread

if TYPE_CHECKING:
    from lockkit._info import Lease, Owner
    from lockkit.backends.redis._waiter import RedisWaiter
    from lockkit.spec import Backend

__all__ = ["AsyncInThreads"]


class AsyncInThreads:
    """The asyncio methods of a Redis backend, each its blocking method in a thread.

    Mixed in before `RedisBackend` (whose own asyncio methods serve one server).
    """

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """`try_acquire` in a worker thread, without a waiter: asyncio waiters poll.

        Safe to cancel: a lock won by an abandoned attempt is released.
        """
        backend: Backend = self  # type: ignore[assignment]
        return await try_acquire_in_thread(backend, name, owner, ttl, shared=shared, waiter=None)

    release_async = SpecV1Methods.release_async
    inspect_async = SpecV1Methods.inspect_async
    break_lock_async = SpecV1Methods.break_lock_async

    async def wait_async_for(self, waiter: RedisWaiter, deadline: float) -> bool:
        """Poll with backoff (the base `lockkit.spec.Waiter.wait_async`)."""
        from lockkit.spec import Waiter  # noqa: PLC0415

        return await Waiter.wait_async(waiter, deadline)

    async def leave_async(self, waiter: RedisWaiter) -> None:
        """Nothing was queued on the loop's side."""
        del waiter
