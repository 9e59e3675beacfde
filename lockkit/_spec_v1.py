"""What spec v1 had and spec v2 dropped, kept so backends written for v1 work unchanged.

Spec v1 waited through ``Backend.wait``/``stop_waiting`` (state hidden per thread in
the backend) and had six ``*_async`` twins on every backend. Spec v2 replaced them with
a core-owned `lockkit.spec.Waiter` and a core async adapter (`lockkit._calls`). A v1
backend that overrides ``wait`` or ``stop_waiting`` is driven through `LegacyWaiter`,
and a `DeprecationWarning` says so once per class; one that calls
``super().try_acquire_async(...)`` still finds it here. Removed in 1.0.
"""

from __future__ import annotations

import time

from lockkit._backoff import poll_delay

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Any

    from lockkit._info import Lease, LockInfo, Owner

__all__ = ["SpecV1Methods"]


class SpecV1Methods:
    """The v1 methods of `lockkit.spec.Backend`, with their v1 defaults (deprecated).

    Not part of spec v2: the core never calls them on a backend that does not override
    them, and new backends should not use them.
    """

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        """Spec v1: sleep with backoff until ``deadline``; use `lockkit.spec.Waiter`."""
        del name
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(min(poll_delay(attempt), remaining))
        return False

    def stop_waiting(self, name: str) -> None:
        """Spec v1: end what `wait` set up; use `lockkit.spec.Waiter.close`."""
        del name

    async def wait_async(self, name: str, deadline: float, attempt: int) -> bool:
        """Spec v1: `wait` on the event loop; use `lockkit.spec.Waiter.wait_async`."""
        import asyncio  # noqa: PLC0415

        del name
        remaining = deadline - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(min(poll_delay(attempt), remaining))
        return False

    async def stop_waiting_async(self, name: str) -> None:
        """Spec v1: `stop_waiting` for asyncio; use `lockkit.spec.Waiter.close_async`."""
        del name

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Spec v1 default: `try_acquire` in a worker thread (the core adapter's default)."""
        from lockkit._threads import try_acquire_in_thread  # noqa: PLC0415 - asyncio only

        backend: Any = self
        return await try_acquire_in_thread(backend, name, owner, ttl, shared=shared, waiter=None)

    async def release_async(self, lease: Lease) -> bool:
        """Spec v1 default: `release` in a worker thread."""
        import asyncio  # noqa: PLC0415

        backend: Any = self
        released: bool = await asyncio.to_thread(backend.release, lease)
        return released

    async def inspect_async(self, name: str) -> LockInfo | None:
        """Spec v1 default: `inspect` in a worker thread."""
        import asyncio  # noqa: PLC0415

        backend: Any = self
        info: LockInfo | None = await asyncio.to_thread(backend.inspect, name)
        return info

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """Spec v1 default: `break_lock` in a worker thread."""
        import asyncio  # noqa: PLC0415

        backend: Any = self
        broken: bool = await asyncio.to_thread(backend.break_lock, name, expected)
        return broken
