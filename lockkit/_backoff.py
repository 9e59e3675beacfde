"""The one backoff rule of waiting: 2 ms doubling to 50 ms (a leaf module: no imports).

Re-exported by `lockkit.spec`, where plugin authors find it.
"""

from __future__ import annotations

__all__ = ["POLL_MAX", "POLL_MIN", "poll_delay"]

POLL_MIN = 0.002
"""The first pause of a polling wait, in seconds."""
POLL_MAX = 0.05
"""The longest pause of a polling wait, in seconds: a release is seen within it."""


def poll_delay(attempt: int) -> float:
    """The pause before attempt ``attempt + 1`` of a polling wait: 2 ms doubling to 50 ms.

    The one backoff rule of lockkit: `lockkit.spec.Waiter`, the file backends' bounded
    waits and the asyncio waits all use it.
    """
    delay: float = min(0.001 * 2.0 ** min(max(attempt, 1), 16), POLL_MAX)
    return delay
