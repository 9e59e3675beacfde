"""The cancellation race shared by the file and Redis AsyncLock tests.

Workers take turns holding one lock while the conductor cancels them at random
moments (waiting, mid-attempt, holding) and starts replacements; every third worker
shares one `AsyncLock` object, so cancellation also hits its per-object guard.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    import lockkit


async def cancellation_race(
    make_lock: Callable[[], lockkit.AsyncLock],
    *,
    acquisitions: int,
    cancellations: int,
    max_pause: float,
) -> dict[str, int]:
    """Run the race until both counts are reached; return the counters.

    ``holders`` must end at 0 and ``max_holders`` at 1: never two holders at once.
    """
    rng = random.Random(8)  # noqa: S311 - seeded for a reproducible schedule, not secrets
    stats = {"holders": 0, "max_holders": 0, "acquired": 0, "cancelled": 0}

    async def worker(lock: lockkit.AsyncLock) -> None:
        while True:
            async with await lock.acquire(timeout=30):
                stats["holders"] += 1
                try:
                    stats["max_holders"] = max(stats["max_holders"], stats["holders"])
                    stats["acquired"] += 1
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)
                finally:
                    stats["holders"] -= 1

    shared = make_lock()

    def spawn(index: int) -> asyncio.Task[None]:
        own = shared if index % 3 == 0 else make_lock()
        return asyncio.create_task(worker(own))

    workers = [spawn(index) for index in range(8)]
    while stats["acquired"] < acquisitions or stats["cancelled"] < cancellations:
        await asyncio.sleep(rng.uniform(0, max_pause))
        index = rng.randrange(len(workers))
        workers[index].cancel()
        with pytest.raises(asyncio.CancelledError):
            await workers[index]
        stats["cancelled"] += 1
        workers[index] = spawn(index)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return stats
