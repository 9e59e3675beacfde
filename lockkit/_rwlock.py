"""``lockkit.ReadWriteLock``: shared readers, exclusive writers, and writers are not starved.

Readers hold the lock *shared* and writers *exclusively*, on any backend with the
``shared`` capability. On its own that lets a steady stream of readers keep a writer
out forever: there is always some reader holding. So every acquisition first passes a
**gate**, an ordinary exclusive lock next to the main one (``<name>.gate``):

* a writer takes the gate, waits for the main lock exclusively *while holding the
  gate*, and lets the gate go once it holds the main lock;
* a reader takes the gate, takes the main lock shared, and lets the gate go at once.

While a writer waits, the gate is its, so new readers queue at the gate behind it; the
readers already inside finish, the writer gets in, and the queue moves on. Readers
only pass through the gate (it is held for one attempt), so they still overlap each
other. One deadline covers both steps.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Literal, Self

from lockkit._lock import Lock, effective_timeout, reader_lock
from lockkit._log import log
from lockkit.errors import LockError, LockNotHeld, LockTimeout, SharedLocksUnsupported

if TYPE_CHECKING:
    import os
    from types import TracebackType

    from lockkit._info import Lease, LockInfo
    from lockkit._select import Selection
    from lockkit.spec import Backend

__all__ = ["GATE_SUFFIX", "Hold", "ReadWriteLock"]


GATE_SUFFIX = ".gate"
"""The gate of lock ``x.lock`` is ``x.lock.gate`` (a sibling file for file backends)."""


class ReadWriteLock:
    """An inter-process read/write lock: many readers at once, or one writer.

    ```python
    rw = lockkit.ReadWriteLock("/srv/app/catalog.lock", timeout=10)
    with rw.read():
        data = load_catalog()
    with rw.write():
        save_catalog(data)
    ```

    Needs a backend with the ``shared`` capability (``filelock``, ``redis``); any other
    raises `SharedLocksUnsupported` naming the ones that have it. Backend selection
    is the same as for `Lock`.

    **Writers are not starved**: a writer that waits blocks new readers, which queue
    behind it; the readers already holding finish, then the writer gets in (see
    *Read/write locks* in the docs).

    **Threads and nesting.** One object can be shared by threads: each thread is its
    own reader or writer, as a separate process would be (two threads may read at
    once; a writing thread excludes the others). Within one thread, holds nest and must
    be released in reverse order (``with`` blocks do that): a ``read()`` or ``write()``
    inside a ``write()`` and a ``read()`` inside a ``read()`` only count, while a
    ``write()`` inside a ``read()`` raises `LockError`, since upgrading a read lock
    deadlocks as soon as two readers try it. Two ``ReadWriteLock`` objects for the same
    name exclude each other even in one thread: share one object per name.

    Args:
        name: The lock: for file backends the path of the lock file (its directory must
            exist; the gate is a second file next to it, ``<name>.gate``), for server
            backends any name.
        backend: As for `Lock`: a backend name, a URL, ``"auto"``, a `Backend` instance,
            or ``None`` to let the deployment decide.
        timeout: Default seconds ``read()`` and ``write()`` wait; ``0`` makes a single
            attempt. ``None`` takes the settings' ``timeout``, else waits forever.
        ttl: As for `Lock`: expiry (renewed while held) for backends with ``ttl``.
        stale: As for `Lock`: age after which a lock held from another machine without
            an expiry counts as stale.

    Raises:
        SharedLocksUnsupported: The selected backend cannot take shared locks.
    """

    def __init__(
        self,
        name: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        stale: float | None = None,
    ) -> None:
        """Choose the backend, check it can share, and validate both names."""
        # A Lock makes the selection (argument, env, settings, auto-detection) exactly as
        # for plain locks; the per-thread locks then reuse its backend instance.
        main = Lock(name, backend=backend, timeout=timeout, ttl=ttl, stale=stale)
        chosen = main.backend
        if not chosen.capabilities.shared:
            raise SharedLocksUnsupported(chosen.name, _shared_backends(), _why_not(main))
        self._backend = chosen
        self._selection = main.selection
        self._name = main.name
        self._gate_name = chosen.normalize_name(main.name + GATE_SUFFIX)
        self.timeout = main.timeout
        self.ttl = main.ttl
        self.stale = main.stale
        self._local = threading.local()
        self._main = main  # for inspect(); never acquired

    @property
    def name(self) -> str:
        """The canonical lock name (an absolute path for file backends)."""
        return self._name

    @property
    def gate_name(self) -> str:
        """The gate lock's name: its holder is a waiting writer, or a reader passing."""
        return self._gate_name

    @property
    def backend(self) -> Backend:
        """The backend this lock uses."""
        return self._backend

    @property
    def selection(self) -> Selection:
        """Which backend this lock uses and where that choice came from."""
        return self._selection

    def read(self, timeout: float | None = None) -> Hold:
        """Take the lock shared (several readers at once), waiting up to ``timeout``.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's default, a negative value
                or ``math.inf`` waits forever, ``0`` makes a single attempt.

        Returns:
            A `Hold`, already acquired: a context manager that releases it on exit.

        Raises:
            LockTimeout: A writer held the lock (or was waiting for it) until the
                timeout ran out; carries the main lock's holder.
        """
        state = self._thread_state()
        if state.holds:
            # This thread already reads or writes: a nested read has nothing to wait for.
            return state.push(Hold(self, "read", state.holds[0].lease, acquired=False))
        lease = self._take(state.reader, state.gate, timeout)
        return state.push(Hold(self, "read", lease, acquired=True))

    def write(self, timeout: float | None = None) -> Hold:
        """Take the lock exclusively, waiting up to ``timeout`` and blocking new readers.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's default, a negative value
                or ``math.inf`` waits forever, ``0`` makes a single attempt.

        Returns:
            A `Hold`, already acquired: a context manager that releases it on exit.

        Raises:
            LockTimeout: Readers or a writer held the lock until the timeout ran out;
                carries the main lock's holder.
            LockError: This thread holds the read lock (an upgrade would deadlock).
        """
        state = self._thread_state()
        if state.reader.locked:
            raise LockError(
                f"cannot take the write lock of {self._name!r} while this thread holds its "
                "read lock: upgrading deadlocks when two readers try it. Release the read "
                "lock first, or take the write lock from the start"
            )
        if state.writer.locked:
            return state.push(Hold(self, "write", state.holds[0].lease, acquired=False))
        lease = self._take(state.writer, state.gate, timeout)
        return state.push(Hold(self, "write", lease, acquired=True))

    def inspect(self) -> LockInfo | None:
        """Ask the backend who holds the main lock now (``None`` when free).

        While readers hold it, the answer has ``shared=True``.

        Raises:
            BackendUnavailable: The backend could not be read (an I/O error).
        """
        return self._main.inspect()

    def _take(self, lock: Lock, gate: Lock, timeout: float | None) -> Lease:
        timeout = effective_timeout(timeout, self.timeout, blocking=True)
        deadline = time.monotonic() + timeout
        try:
            gate.acquire(timeout=timeout)
        except LockTimeout as exc:
            # Report the lock the caller asked for, and who holds *it*.
            raise LockTimeout(self._name, timeout, self._holder() or exc.holder) from None
        try:
            # A writer keeps the gate while it waits here: that is what queues new readers.
            lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except LockTimeout as exc:
            raise LockTimeout(self._name, timeout, exc.holder) from None
        finally:
            _let_go(gate)
        lease = lock.lease
        assert lease is not None  # acquire succeeded in this thread
        return lease

    def _release(self, hold: Hold) -> None:
        state = self._thread_state()
        if not state.holds or hold not in state.holds:
            raise LockNotHeld(
                f"this {hold.mode} hold of {self._name!r} is not held by this thread "
                "(released already, or taken by another thread)"
            )
        if state.holds[-1] is not hold:
            raise LockError(
                f"holds of {self._name!r} must be released in reverse order; release the "
                f"{state.holds[-1].mode} hold taken after this one first"
            )
        state.holds.pop()
        if hold.acquired:
            (state.reader if hold.mode == "read" else state.writer).release()

    def _holder(self) -> LockInfo | None:
        try:
            return self.inspect()
        except OSError:
            return None

    def _thread_state(self) -> _ThreadState:
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            state = _ThreadState(
                gate=self._lock(self._gate_name),
                reader=self._lock(self._name, shared=True),
                writer=self._lock(self._name),
            )
            self._local.state = state
        return state

    def _lock(self, name: str, *, shared: bool = False) -> Lock:
        make = reader_lock if shared else Lock
        return make(
            name, backend=self._backend, timeout=self.timeout, ttl=self.ttl, stale=self.stale
        )

    def __repr__(self) -> str:
        """Show the name and backend; never a token."""
        return f"<lockkit.ReadWriteLock {self._name!r} backend={self._backend.name!r}>"


class Hold:
    """One acquisition of a `ReadWriteLock`, returned by ``read()`` and ``write()``.

    A context manager that releases the acquisition on exit; ``release()`` does the
    same by hand. ``with rw.read() as hold:`` binds the hold itself.

    Attributes:
        lock: The `ReadWriteLock` it belongs to.
        mode: ``"read"`` or ``"write"``.
        lease: The backend lease covering this hold (for a nested hold, the outer
            one's): its ``fencing_token`` is what to pass along on backends that have
            one.
    """

    __slots__ = ("_released", "acquired", "lease", "lock", "mode")

    def __init__(
        self,
        lock: ReadWriteLock,
        mode: Literal["read", "write"],
        lease: Lease | None,
        *,
        acquired: bool,
    ) -> None:
        """Record an acquisition; ``acquired`` is false for a nested one that only counts."""
        self.lock = lock
        self.mode = mode
        self.lease = lease
        self.acquired = acquired
        self._released = False

    def release(self) -> None:
        """Release this hold; the backend lock is freed when the outermost hold is.

        Raises:
            LockNotHeld: Released already, or by a thread that did not take it.
            LockError: A hold taken after this one in the same thread is still held.
        """
        if self._released:
            raise LockNotHeld(f"this {self.mode} hold of {self.lock.name!r} was already released")
        self.lock._release(self)  # noqa: SLF001 - the lock keeps the per-thread stack
        self._released = True

    def __enter__(self) -> Self:
        """Return the hold, already acquired."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the hold."""
        self.release()

    def __repr__(self) -> str:
        """Show the mode and lock; never a token."""
        state = "released" if self._released else "held"
        return f"<lockkit ReadWriteLock {self.mode} hold of {self.lock.name!r} {state}>"


class _ThreadState:
    """One thread's locks for one `ReadWriteLock`, and the holds it has taken."""

    __slots__ = ("gate", "holds", "reader", "writer")

    def __init__(self, gate: Lock, reader: Lock, writer: Lock) -> None:
        self.gate = gate
        self.reader = reader
        self.writer = writer
        self.holds: list[Hold] = []

    def push(self, hold: Hold) -> Hold:
        self.holds.append(hold)
        return hold


def _let_go(gate: Lock) -> None:
    """Release the gate; if the backend cannot be reached, leave it to expire.

    Raising here would lose track of a main lock that was just acquired, which is worse
    than a gate that stays until its TTL (server backends) or until this process exits.
    """
    try:
        gate.release()
    except OSError as exc:
        log.warning("lockkit: releasing the gate %s failed: %s", gate.name, exc)


def _shared_backends() -> list[str]:
    """The registered backends with the ``shared`` capability (loads every plugin)."""
    from lockkit._registry import get_registry  # noqa: PLC0415 - only on the error path

    return [entry.name for entry in get_registry().entries() if entry.cls.capabilities.shared]


def _why_not(lock: Lock) -> str:
    """Where the backend choice came from, and whether another setup of it would do."""
    backend, selection = lock.backend, lock.selection
    hints = []
    family = type(backend).__mro__
    if any(getattr(getattr(cls, "capabilities", None), "shared", False) for cls in family):
        # A class it derives from can share, this one cannot (a Redlock over several
        # servers is a RedisBackend that takes no shared locks).
        hints.append(f"{backend.name!r} can in some setups, but not this one ({backend!r}).")
    if selection.source != "argument":
        detail = f": {selection.detail}" if selection.detail else ""
        hints.append(f"It was chosen by {selection.source}{detail}.")
    return " ".join(hints)
