"""One background thread per process that renews every held TTL lock.

A lock with ``ttl`` is renewed every ``ttl / 3`` seconds. When a renewal finds the lock
gone or owned by someone else, the lock is *lost*: the lock object is told, and it
fires ``lockkit_lost`` and its ``on_lost`` callback. The thread is a daemon, starts on
the first TTL lock, and is rebuilt in a forked child (threads do not survive fork).
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref

from lockkit._log import log

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Protocol

    class Renewable(Protocol):
        """What the renewer needs from a lock."""

        def _renew(self) -> float | None:
            """Renew now; return the monotonic time of the next renewal, or ``None`` to stop."""
            ...


__all__ = ["renewer"]


# The thread never sleeps longer than this, so a renewal due later (ttl >= 3 s) is added
# without waking it: waking a sleeping thread costs a thread switch, and TTL locks (every
# Redis lock) are added on every acquire. It exits after `_IDLE_EXIT` seconds with
# nothing to renew, so an idle process does not wake once a second for ever.
_MAX_SLEEP = 1.0
_IDLE_EXIT = 30.0


class _Renewer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, weakref.ref[Renewable]]] = {}
        self._thread: threading.Thread | None = None
        # When the thread will wake by itself; -inf while it is awake (it re-reads
        # _due before sleeping again). `add` wakes it only for a renewal due earlier.
        self._wake_at = -math.inf

    def add(self, lock: Renewable, due: float) -> None:
        with self._cond:
            self._due[id(lock)] = (due, weakref.ref(lock))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="lockkit-renewer", daemon=True
                )
                self._thread.start()
            if due < self._wake_at:
                self._cond.notify()

    def remove(self, lock: Renewable) -> None:
        with self._cond:
            self._due.pop(id(lock), None)

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._cond:
                now = time.monotonic()
                if self._due:
                    idle_since = now
                elif now - idle_since >= _IDLE_EXIT:
                    self._thread = None  # under the lock: the next `add` starts a new one
                    return
                ready = [(key, ref) for key, (due, ref) in self._due.items() if due <= now]
                if not ready:
                    nearest = min((due for due, _ in self._due.values()), default=math.inf)
                    self._wake_at = min(nearest, now + _MAX_SLEEP)
                    self._cond.wait(timeout=max(0.0, self._wake_at - now))
                    self._wake_at = -math.inf
                    continue
                for key, _ in ready:
                    del self._due[key]
            for key, ref in ready:
                lock = ref()
                if lock is None:
                    continue
                try:
                    next_due = lock._renew()  # noqa: SLF001 - the protocol's one method
                except Exception:  # a renewal failure must not kill the thread for all locks
                    log.exception("lockkit: renewing a lock failed")
                    next_due = time.monotonic() + 1.0
                if next_due is not None:
                    with self._cond:
                        self._due.setdefault(key, (next_due, ref))

    def reset_after_fork(self) -> None:
        # The child has no renewer thread and owns none of the parent's locks.
        self._cond = threading.Condition()
        self._due.clear()
        self._thread = None
        self._wake_at = -math.inf


_RENEWER = _Renewer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RENEWER.reset_after_fork)


def renewer() -> _Renewer:
    """The process-wide renewer."""
    return _RENEWER
