"""A backend's blocking attempt run in a worker thread for asyncio, safe to cancel.

A leaf of the core (it imports no other lockkit module at run time), shared by the async
adapter (`lockkit._calls`) and spec v1's default ``try_acquire_async``.
"""

from __future__ import annotations

import functools

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from lockkit._info import Lease, Owner
    from lockkit.spec import Backend, Waiter

__all__ = ["try_acquire_in_thread"]


async def try_acquire_in_thread(
    backend: Backend,
    name: str,
    owner: Owner,
    ttl: float | None,
    *,
    shared: bool,
    waiter: Waiter | None,
) -> Lease | None:
    """``try_acquire`` in a worker thread, leaving nothing held if the caller is cancelled.

    A thread cannot be stopped: on cancellation the attempt finishes, and the lease it
    got (if any) is released, in a worker thread too. ``waiter`` is passed on only if
    given: the caller knows whether the backend takes it.
    """
    import asyncio  # noqa: PLC0415 - already imported by the running event loop

    if waiter is not None:
        v2: Any = backend.try_acquire  # `waiter` is an optional keyword of spec v2
        call = asyncio.to_thread(
            functools.partial(v2, waiter=waiter), name, owner, ttl, shared=shared
        )
    else:
        call = asyncio.to_thread(backend.try_acquire, name, owner, ttl, shared=shared)
    attempt = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(lambda done: _release_abandoned(backend, done))
        raise


def _release_abandoned(backend: Backend, attempt: asyncio.Future[Lease | None]) -> None:
    """Release what an attempt got after its caller was cancelled (a done callback)."""
    if attempt.cancelled() or attempt.exception() is not None:
        return
    lease = attempt.result()
    if lease is not None:
        import asyncio  # noqa: PLC0415

        # The executor keeps the work item alive; nobody needs its result.
        try:
            asyncio.get_running_loop().run_in_executor(None, backend.release, lease)
        except RuntimeError:  # the loop is shutting its executor down: do it here
            backend.release(lease)
