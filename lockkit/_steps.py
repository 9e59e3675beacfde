"""The requests the acquisition loop makes of its driver (blocking or ``async``).

The loop (`lockkit._lock._LockCore._contended_steps`) and stale-lock breaking
(`lockkit._breaking.break_steps`) are generators that yield these and receive each
request's result, so the blocking `lockkit.Lock` and `lockkit.AsyncLock` run the very
same logic.
"""

from __future__ import annotations

from lockkit._value import frozen

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from lockkit._info import LockInfo

__all__ = ["Break", "Inspect", "Step", "TryAcquire", "Wait"]


@frozen
class TryAcquire:
    """Request: make one attempt (``Backend.try_acquire``); reply with the lease or ``None``."""


@frozen
class Inspect:
    """Request: read the holder (``Backend.inspect``); reply with it, or ``None`` if unknown."""


@frozen
class Break:
    """Request: break the stale lock ``info`` describes; reply with whether it was broken.

    Attributes:
        info: The holding judged stale.
    """

    info: LockInfo


@frozen
class Wait:
    """Request: wait for a release (``Backend.wait``); reply with whether one was seen.

    Attributes:
        deadline: The acquisition's deadline, a `time.monotonic` value.
        attempt: How many attempts have failed so far (from 1).
    """

    deadline: float
    attempt: int


Step = TryAcquire | Inspect | Break | Wait
"""What the acquisition loop asks its driver to do next."""
