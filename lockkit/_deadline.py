"""The deadline of the acquisition in progress, for backends that bound their I/O by it.

`lockkit.Lock.acquire` and `lockkit.AsyncLock.acquire` set it (a `time.monotonic`
value, ``math.inf`` when the caller waits forever) for the calls they make on the
acquisition's behalf; anything else (a release, a renewal, `inspect` called directly)
sees ``math.inf``. A context variable, so each thread and each asyncio task has its
own, and ``asyncio.to_thread`` carries it into its worker.
"""

from __future__ import annotations

import contextvars
import math

__all__ = ["ACQUIRING", "current", "unbounded"]

ACQUIRING: contextvars.ContextVar[float] = contextvars.ContextVar(
    "lockkit_acquiring_until", default=math.inf
)


def current() -> float:
    """The deadline of the acquisition this call is made for (``math.inf``: none)."""
    return ACQUIRING.get()


def unbounded() -> contextvars.Context:
    """A copy of the current context without an acquisition deadline.

    For work that outlives the acquisition that started it (releasing a lock an
    abandoned attempt won, a listener shared by later acquisitions).
    """
    context = contextvars.copy_context()
    context.run(ACQUIRING.set, math.inf)
    return context
