"""``lockkit.Lock``: timeouts, waiting, reentrancy and events on top of any backend."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import TYPE_CHECKING, Self

from lockkit._info import Owner
from lockkit.errors import LockNotHeld, LockTimeout

if TYPE_CHECKING:
    import os
    from types import TracebackType

    from lockkit._info import Lease, LockInfo
    from lockkit._registry import Registry
    from lockkit.spec import Backend

__all__ = ["DEFAULT_BACKEND", "AcquireResult", "Lock"]

DEFAULT_BACKEND = "excl"
"""The backend used when none is chosen (selection by env and settings comes later)."""


class Lock(contextlib.ContextDecorator):
    """An inter-process lock with a pluggable backend.

    Use it as a context manager, a decorator, or with `acquire`/`release`:

    ```python
    with lockkit.Lock("state.json.lock", timeout=10):
        update_state()
    ```

    **Reentrancy.** One ``Lock`` object is reentrant within the thread that holds it,
    like `threading.RLock` and ``filelock.FileLock``: nested ``acquire`` calls
    only count, and the lock is released when the count drops back to zero. Another
    thread using the *same* object waits like any other contender. Two ``Lock`` objects
    for the same path exclude each other even within one thread, so acquiring a second
    one while the first is held deadlocks until the timeout: share one object instead.

    Args:
        name: The lock: for file backends, the path of the lock file (its directory must
            exist); for server backends, any name.
        backend: A backend name (``"excl"``, ``"hardlink"``, ``"filelock"``...) or a
            `lockkit.spec.Backend` instance. Defaults to ``"excl"``.
        timeout: Default seconds ``acquire`` waits; ``None`` waits forever, ``0`` makes a
            single attempt.
        ttl: Seconds after which the lock counts as stale, for backends that support it.
    """

    def __init__(
        self,
        name: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
    ) -> None:
        """Resolve the backend and validate the name; nothing is acquired yet."""
        # Imported here so `import lockkit` does not import pluggy and the registry.
        from lockkit._registry import get_registry  # noqa: PLC0415

        self._registry: Registry = get_registry()
        if backend is None:
            backend = DEFAULT_BACKEND
        if isinstance(backend, str):
            backend = self._registry.backend(backend)
        self._backend: Backend = backend
        self._name = backend.normalize_name(name)
        self.timeout = timeout
        self.ttl = ttl
        self._guard = threading.Lock()
        self._holder: int | None = None  # thread ident of the holder
        self._count = 0
        self._lease: Lease | None = None
        self._acquired_at = 0.0

    @property
    def name(self) -> str:
        """The canonical lock name (an absolute path for file backends)."""
        return self._name

    @property
    def backend(self) -> Backend:
        """The backend this lock uses."""
        return self._backend

    @property
    def locked(self) -> bool:
        """Whether this object currently holds the lock (in any thread)."""
        return self._lease is not None

    @property
    def lease(self) -> Lease | None:
        """The current lease, or ``None`` when not held."""
        return self._lease

    def acquire(self, timeout: float | None = None, *, blocking: bool = True) -> AcquireResult:
        """Acquire the lock, waiting up to ``timeout`` seconds.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's default, a negative value
                or ``math.inf`` waits forever, ``0`` makes a single attempt.
            blocking: ``False`` makes a single attempt whatever the timeout.

        Returns:
            A context manager that releases this acquisition on exit, so
                ``with lock.acquire(timeout=5):`` holds the lock for the block only.

        Raises:
            LockTimeout: The lock stayed busy; carries the holder's `LockInfo`.
        """
        me = threading.get_ident()
        if self._holder == me:
            self._count += 1
            return AcquireResult(self)
        if timeout is None:
            timeout = self.timeout
        if not blocking:
            timeout = 0.0
        if timeout is None or timeout < 0:
            timeout = math.inf
        deadline = time.monotonic() + timeout
        # Serialise threads sharing this object: the second waits here like a contender,
        # and the time it waits counts against the same deadline.
        if not self._guard.acquire(timeout=-1 if math.isinf(timeout) else timeout):
            raise LockTimeout(self._name, timeout, self._inspect_quietly())
        try:
            self._lease = self._acquire_backend(timeout, deadline)
        except BaseException:
            self._guard.release()
            raise
        self._holder = me
        self._count = 1
        self._acquired_at = time.monotonic()
        return AcquireResult(self)

    def _acquire_backend(self, timeout: float, deadline: float) -> Lease:
        backend = self._backend
        start = time.monotonic()
        attempt = 0
        while True:
            lease = backend.try_acquire(self._name, Owner.current(), self.ttl)
            if lease is not None:
                if self._registry.has_event_hooks:
                    self._registry.acquired(
                        self._name, backend.name, lease, time.monotonic() - start
                    )
                return lease
            attempt += 1
            if attempt == 1 and self._registry.has_event_hooks:
                self._registry.contended(self._name, backend.name, self._inspect_quietly())
            if time.monotonic() >= deadline:
                raise LockTimeout(self._name, timeout, self._inspect_quietly())
            backend.wait(self._name, deadline, attempt)

    def _inspect_quietly(self) -> LockInfo | None:
        try:
            return self._backend.inspect(self._name)
        except OSError:
            return None

    def release(self, *, force: bool = False) -> None:
        """Release one level of acquisition; the lock is freed at the outermost level.

        Args:
            force: Release completely, whatever the nesting depth.

        Raises:
            LockNotHeld: This object does not hold the lock in this thread.
        """
        if self._holder != threading.get_ident() or self._lease is None:
            raise LockNotHeld(f"lock {self._name!r} is not held by this thread")
        self._count = 0 if force else self._count - 1
        if self._count > 0:
            return
        lease = self._lease
        self._lease = None
        self._holder = None
        try:
            if self._backend.release(lease):
                if self._registry.has_event_hooks:
                    held = time.monotonic() - self._acquired_at
                    self._registry.released(self._name, self._backend.name, lease, held)
            elif self._registry.has_event_hooks:
                self._registry.lost(self._name, self._backend.name, lease)
        finally:
            self._guard.release()

    def inspect(self) -> LockInfo | None:
        """Ask the backend who holds the lock now (``None`` when free)."""
        return self._backend.inspect(self._name)

    def __enter__(self) -> Self:
        """Acquire with the default timeout."""
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release one level."""
        self.release()

    def __repr__(self) -> str:
        """Show the name, backend and state; never a token."""
        state = "locked" if self.locked else "unlocked"
        return f"<lockkit.Lock {self._name!r} backend={self._backend.name!r} {state}>"

    def __del__(self) -> None:
        """Free a lock the program forgot to release, so files and descriptors do not leak."""
        lease = getattr(self, "_lease", None)
        if lease is not None:
            with contextlib.suppress(Exception):
                self._backend.release(lease)


class AcquireResult:
    """What `Lock.acquire` returns: a context manager that releases that acquisition.

    ``with lock.acquire(timeout=5):`` then behaves like ``with lock:`` with a timeout,
    instead of leaving one level of reentrancy held (filelock's ``AcquireReturnProxy``
    solves the same problem).
    """

    __slots__ = ("lock",)

    def __init__(self, lock: Lock) -> None:
        """Wrap the lock that was just acquired."""
        self.lock = lock

    def __enter__(self) -> Lock:
        """Return the lock, already held."""
        return self.lock

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the acquisition this object stands for."""
        self.lock.release()
