"""``lockkit.Lock``: timeouts, waiting, stale locks, TTL renewal and events on any backend.

The acquisition loop (attempt, look at the holder, break it if stale, wait, retry) is
written once, as a generator of backend requests (`TryAcquire`, `Inspect`, `Break`,
`Wait`) that receives each request's result. `Lock` runs it with blocking calls;
`lockkit.AsyncLock` runs the very same generator with ``await``, so the two cannot
drift apart in how they judge stale locks, retry, fire events or time out.
"""

from __future__ import annotations

import _thread
import datetime as dt
import math
import os
import time

from lockkit import _fork
from lockkit._calls import failure, make_waiter, plan, refuse, refused_lease
from lockkit._deadline import ACQUIRING as _ACQUIRING
from lockkit._info import Lease, Owner
from lockkit._log import log
from lockkit._numbers import check
from lockkit._steps import Break, Inspect, Step, TryAcquire, Wait
from lockkit._value import evolve
from lockkit.errors import (
    InvalidLockName,
    LockError,
    LockNotHeld,
    LockTimeout,
)

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from types import TracebackType
    from typing import Any, ParamSpec, Self, TypeVar

    _P = ParamSpec("_P")
    _R = TypeVar("_R")

    from lockkit._calls import Plan
    from lockkit._heartbeat import _Renewer
    from lockkit._info import LockInfo
    from lockkit._registry import Registry
    from lockkit._select import Selection
    from lockkit.spec import Backend, Waiter

__all__ = [
    "AcquireResult",
    "Break",
    "Inspect",
    "Lock",
    "Step",
    "TryAcquire",
    "Wait",
    "reader_lock",
]


_get_ident = _thread.get_ident


def _renewer() -> _Renewer:
    # Imported with the first TTL lock: the renewer is a thread, and threading is not
    # otherwise part of a first lock.
    from lockkit._heartbeat import renewer  # noqa: PLC0415

    return renewer()


_monotonic = time.monotonic

# Immediate retries after a lock vanished or was broken, before waiting like anyone else.
_MAX_QUICK_RETRIES = 3


_TRY = TryAcquire()
_INSPECT = Inspect()


class _LockCore:
    """What `Lock` and `lockkit.AsyncLock` share; not used on its own.

    Selection, state, the acquisition loop, TTL renewal and loss reporting.
    """

    # Set by the subclass: what serialises its users (a threading or an asyncio lock)
    # and who holds it (a thread ident or a task).
    _guard: Any
    _holder: Any

    def __init__(
        self,
        name: str | os.PathLike[str],
        *,
        backend: str | Backend | None,
        timeout: float | None,
        ttl: float | None,
        stale: float | None,
        on_lost: Callable[[Any], object] | None,
    ) -> None:
        """Choose the backend and validate the name; nothing is acquired yet."""
        # Imported here so `import lockkit` does not import pluggy and the registry.
        from lockkit._registry import get_registry  # noqa: PLC0415
        from lockkit._select import choose  # noqa: PLC0415
        from lockkit._settings import load_settings  # noqa: PLC0415

        timeout, ttl, stale = _checked(timeout, ttl, stale)
        self._registry: Registry = get_registry()
        settings = load_settings()
        self._selection, self._backend = choose(name, backend, settings, self._registry)
        self._plan: Plan = plan(self._backend)
        try:
            self._name = self._backend.normalize_name(name)
        except Exception as exc:
            raise failure(exc, "naming", os.fspath(name), self._backend) from exc
        self.timeout = timeout if timeout is not None else getattr(settings, "timeout", None)
        self.ttl = ttl if ttl is not None else getattr(settings, "ttl", None)
        self.stale = stale if stale is not None else getattr(settings, "stale", None)
        self.on_lost = on_lost
        # Ask the backend for a shared (read) lock instead of an exclusive one.
        self._shared: bool = False
        self._state = _thread.allocate_lock()  # guards _lease/_lost against the renewer thread
        self._count = 0
        self._lease: Lease | None = None
        self._lost = False
        self._acquired_at = 0.0
        # The fork this object's state belongs to (see `lockkit._fork`).
        self._generation = _fork.generation

    @property
    def selection(self) -> Selection:
        """Which backend this lock uses and where that choice came from."""
        return self._selection

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
        """Whether this object has acquired the lock and not released it (any thread or task).

        It does not check the backend: see `is_held` for that. In a forked child, a lock
        the parent held is not locked: the parent holds it, not the child.
        """
        return self._lease is not None and self._generation == _fork.generation

    @property
    def lease(self) -> Lease | None:
        """The current lease, or ``None`` when not held (or held by the parent of a fork)."""
        return self._lease if self._generation == _fork.generation else None

    def _inherited(self) -> bool:
        """Forget state copied from the parent of a fork; ``True`` if there was a lease.

        The parent still holds its lock, so the lease is dropped without a word to the
        backend: no release, no renewal, no event. Guards are replaced because a parent
        thread may have held them at the moment of the fork.
        """
        if self._generation == _fork.generation:
            return False
        had_lease = self._lease is not None
        self._generation = _fork.generation
        self._lease = None
        self._lost = False
        self._count = 0
        self._state = _thread.allocate_lock()
        self._forget_users()
        return had_lease

    def _forget_users(self) -> None:
        """Forget the holding thread or task and replace the guard (after a fork)."""
        raise NotImplementedError

    def _current_lease(self) -> Lease | None:
        """The lease `is_held` should check, or ``None`` when not held or already lost."""
        self._inherited()
        with self._state:
            if self._lease is None or self._lost:
                return None
            return self._lease

    def _still_ours(self, lease: Lease, info: LockInfo | None) -> bool:
        """`is_held`'s verdict once the holder has been read; marks the lock lost if not."""
        if info is not None and info.owner is not None and info.owner.token == lease.token:
            return True
        self._mark_lost(lease)
        return False

    def _contended_steps(self, timeout: float, deadline: float) -> Generator[Step, Any, Lease]:
        """The acquisition loop after a failed first attempt, as requests to a driver.

        Each yielded `Step` is performed by the driver, which sends back its result
        (the reply type is in each step's docstring). Returns the lease; raises
        `LockTimeout` once ``deadline`` has passed. Events fire from here, except
        ``lockkit_acquired``, which the driver fires for the fast path as well.
        """
        registry = self._registry
        attempt = 0
        quick = 0
        notified = False
        contended = False
        while True:
            attempt += 1
            # After a release notification the lock was simply taken by another waiter:
            # its holder is alive, so reading it (a round trip) would be wasted.
            info: LockInfo | None = None if notified else (yield _INSPECT)
            if not notified and quick < _MAX_QUICK_RETRIES and (yield from self._recover(info)):
                quick += 1
            else:
                quick = 0
                if not contended:
                    # Once, when it first has to wait (after any quick retries).
                    contended = True
                    if registry.has_event_hooks:
                        registry.contended(self._name, self._backend.name, info)
                if time.monotonic() >= deadline:
                    holder = info if info is not None else (yield _INSPECT)
                    raise LockTimeout(self._name, timeout, holder)
                notified = bool((yield Wait(deadline, attempt)))
            lease: Lease | None = yield _TRY
            if lease is not None:
                return lease

    def _recover(self, info: LockInfo | None) -> Generator[Step, Any, bool]:
        """Whether to retry at once: the lock vanished, or it was stale and we broke it."""
        # Imported with the first busy lock: an uncontended first lock never judges one.
        from lockkit._breaking import break_steps  # noqa: PLC0415

        outcome = yield from break_steps(
            self._name, self._backend.name, info, stale_after=self.stale, registry=self._registry
        )
        return outcome.broken or outcome.free

    def _inspect_quietly(self) -> LockInfo | None:
        try:
            return self._backend.inspect(self._name)
        except InvalidLockName:
            raise
        except OSError:
            return None
        except Exception as exc:
            raise failure(exc, "reading", self._name, self._backend) from exc

    def _checked(self, lease: Lease, ttl: float | None) -> Lease:
        """``lease``, if it has what the backend's capabilities promise (cheap when it does)."""
        if (
            lease.__class__ is Lease
            and (ttl is None or (lease.expires is not None and lease.ttl))
            and (lease.fencing_token is not None or not self._backend.capabilities.fencing)
        ):
            return lease
        problem = refused_lease(self._backend, lease, ttl)
        if not problem:
            return lease  # ttl asked of a backend without the capability: nothing owed
        raise refuse(self._backend, lease, problem)

    def _won(self, lease: Lease, ttl: float | None, start: float) -> Lease:
        """Check what the backend granted and report the acquisition (both drivers)."""
        lease = self._checked(lease, ttl)
        registry = self._registry
        if registry.has_event_hooks:
            registry.acquired(self._name, self._backend.name, lease, _monotonic() - start)
        return lease

    def _hold(self, lease: Lease, holder: Any) -> None:  # noqa: ANN401 - a thread id or a task
        """Record a granted lease and start renewing it (both drivers, with the guard held).

        Nothing here can be interrupted by a cancellation: no await, no blocking call.
        """
        # acquire/release rather than `with`: half the cost, on every acquisition.
        state = self._state
        state.acquire()
        try:
            self._lease = lease
            self._lost = False
        finally:
            state.release()
        self._holder = holder
        self._count = 1
        self._acquired_at = _monotonic()
        if lease.expires is not None and lease.ttl:
            _renewer().add(self, self._acquired_at + lease.ttl / 3)

    def _renew(self) -> float | None:
        """Renew the TTL (called by the renewer thread); return when to renew next."""
        with self._state:
            lease = self._lease
            if lease is None or self._lost or not lease.ttl:
                return None
            ttl = lease.ttl
            try:
                renewed = self._backend.refresh(lease, ttl)
            except Exception as exc:  # noqa: BLE001 - the renewer thread must go on
                # Unreachable (a server down, a filesystem gone): keep trying while the
                # lock may still be ours; once its expiry has passed, nobody can say it
                # is, so it is lost.
                if lease.expires is not None and lease.expires > dt.datetime.now(dt.UTC):
                    log.warning("lockkit: renewing %s failed (%s); retrying", self._name, exc)
                    return time.monotonic() + min(1.0, ttl / 6)
                renewed = False
            if renewed:
                expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
                self._lease = evolve(lease, expires=expires)
                return time.monotonic() + ttl / 3
        self._mark_lost(lease)
        return None

    def _begin_release(self) -> tuple[Lease, bool, bool]:
        """Take the lease off this object for the outermost release.

        Returns the lease, whether it was already lost, and whether it was being renewed.
        """
        with self._state:
            lease = self._lease
            assert lease is not None  # the caller checked, holding the guard
            self._lease = None
            was_lost = self._lost
        renewed = lease.expires is not None and bool(lease.ttl)
        if renewed:
            _renewer().remove(self)  # only renewed leases were added (see `acquire`)
        return lease, was_lost, renewed

    def _release_failed(self, exc: BaseException, lease: Lease, *, renewed: bool) -> BaseException:
        """The error to raise for a release that did not complete; the lock stays held.

        Whatever stopped it (an I/O error, a FIFO planted at the breaker, Ctrl-C during
        a wait), the lock may still be this object's: it takes the lease back (and keeps
        its guard and holder), so ``release()`` can be called again and ``locked`` and
        ``is_held()`` tell the truth.
        """
        with self._state:
            self._lease = lease
        self._count = 1
        if renewed:
            _renewer().add(self, time.monotonic())
        if isinstance(exc, Exception):
            return failure(exc, "releasing", self._name, self._backend)
        return exc

    def _finish_release(self, lease: Lease, *, released: bool, was_lost: bool) -> None:
        """After the backend's release: events, loss, and letting the next user in."""
        self._holder = None
        try:
            if released:
                if self._registry.has_event_hooks:
                    held = time.monotonic() - self._acquired_at
                    self._registry.released(self._name, self._backend.name, lease, held)
            elif not was_lost:
                self._mark_lost(lease, releasing=True)
        finally:
            self._guard.release()

    def _mark_lost(self, lease: Lease, *, releasing: bool = False) -> None:
        with self._state:
            # A renewal that raced with release and re-acquisition must not mark the
            # new lease lost; a release reports the lease it just gave up.
            if self._lost or (self._lease is not lease and not releasing):
                return
            self._lost = True
        log.warning(
            "lockkit: lock %s was lost (it expired or was taken over, or its backend could "
            "no longer confirm it)",
            self._name,
        )
        if self._registry.has_event_hooks:
            self._registry.lost(self._name, self._backend.name, lease)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                log.exception("lockkit: on_lost callback for %s raised", self._name)

    def __del__(self) -> None:
        """Free a lock the program forgot to release, so files and descriptors do not leak.

        Never in a forked child for its parent's lease: that lock is the parent's.
        """
        lease = getattr(self, "_lease", None)
        if lease is not None and getattr(self, "_generation", None) == _fork.generation:
            try:  # noqa: SIM105 - contextlib is not part of a first lock
                self._backend.release(lease)
            except Exception:  # noqa: BLE001, S110 - a finalizer must not raise
                pass


class Lock(_LockCore):
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

    **Stale locks.** A lock left by a holder that died is broken and taken over,
    following the stale rules (see *Stale locks and crash recovery* in the docs);
    breaking is race-free, and fires the ``lockkit_stale_broken`` hook.

    **TTL.** With ``ttl``, the lock records an expiry and a background thread renews it
    every ``ttl / 3`` seconds while held. If a renewal finds the lock taken by someone
    else (the holder was paused past its expiry), the lock is *lost*: `is_held`
    turns false, the ``lockkit_lost`` hook and ``on_lost`` fire, and `release` leaves
    the new holder's lock alone.

    Args:
        name: The lock: for file backends, the path of the lock file (its directory must
            exist); for server backends, any name.
        backend: A backend name (``"excl"``, ``"hardlink"``, ``"filelock"``...), a URL
            (``"redis://host"``), ``"auto"``, or a `Backend` instance. ``None`` (the
            default) lets the deployment decide: ``LOCKKIT_BACKEND``/``LOCKKIT_URL``, then
            the settings file, then auto-detection (see *Configuration* in the docs).
        timeout: Default seconds ``acquire`` waits; ``0`` makes a single attempt. ``None``
            takes the settings' ``timeout``, else waits forever.
        ttl: Seconds after which an unrenewed lock counts as stale, for backends with
            the ``ttl`` capability (others ignore it: ``filelock`` locks are freed by
            the kernel when the holder dies). ``None`` takes the settings' ``ttl``; a
            backend whose locks must expire (redis) then uses its own default (30 s),
            renewed while held.
        stale: Seconds after which a lock held from *another machine* without an expiry
            counts as stale (its holder cannot be checked from here). ``None`` takes the
            settings' ``stale``, else such locks are never broken automatically.
        on_lost: Called once with this lock when it turns out to be lost: from the
            renewer thread, or from the thread calling `is_held` or `release` if that
            is where the loss is found. Keep it short; it must not block.
    """

    def __init__(
        self,
        name: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        stale: float | None = None,
        on_lost: Callable[[Lock], object] | None = None,
    ) -> None:
        """Choose the backend and validate the name; nothing is acquired yet."""
        super().__init__(
            name, backend=backend, timeout=timeout, ttl=ttl, stale=stale, on_lost=on_lost
        )
        self._guard: _thread.LockType = (
            _thread.allocate_lock()
        )  # held by the thread that holds the lock
        self._holder: int | None = None  # thread ident of the holder

    def _forget_users(self) -> None:
        self._guard = _thread.allocate_lock()
        self._holder = None

    def is_held(self) -> bool:
        """Whether this object holds the lock *and* the backend still agrees.

        Asks the backend; if the lock now belongs to someone else, marks it lost (firing
        ``lockkit_lost`` and ``on_lost`` once) and returns ``False``.
        """
        lease = self._current_lease()
        if lease is None:
            return False
        try:
            info = self._backend.inspect(self._name)
        except InvalidLockName:
            raise
        except Exception:
            log.debug("lockkit: is_held(%s) could not ask the backend", self._name, exc_info=True)
            return True  # the renewer keeps watching
        return self._still_ours(lease, info)

    def __call__(self, function: Callable[_P, _R]) -> Callable[_P, _R]:
        """Use the lock as a decorator: every call of ``function`` runs holding it.

        As ``contextlib.ContextDecorator`` does (without importing contextlib, which a
        first lock does not otherwise need): ``with self:`` around each call, so the
        default timeout applies and the lock is reentrant within the thread.
        """
        import functools  # noqa: PLC0415 - decorators are made once, at definition

        @functools.wraps(function)
        def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self:
                return function(*args, **kwargs)

        return locked

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
            BackendUnavailable: The backend failed (an I/O error: a full disk, a
                read-only filesystem, a permission denied, a server gone).
        """
        if self._generation != _fork.generation:
            self._inherited()  # a child of a fork takes its own lock, not the parent's
        me = _get_ident()
        if self._holder == me:
            self._count += 1
            return AcquireResult(self)
        timeout = effective_timeout(timeout, self.timeout, blocking=blocking)
        start = _monotonic()
        deadline = start + timeout
        # Backends that bound their I/O by the caller's timeout read it (`._deadline`).
        bounded = _ACQUIRING.set(deadline)
        try:
            guard = self._guard
            # Serialise threads sharing this object: the second waits here like a contender,
            # and the time it waits counts against the same deadline.
            if not guard.acquire(False):  # noqa: FBT003 - positional: cheaper than a keyword
                self._wait_for_guard(timeout)
                start = _monotonic()  # `lockkit_acquired` reports the wait for the backend
            backend = self._backend
            try:
                ttl = self.ttl if backend.capabilities.ttl else None
                # The uncontended case is one call; the loop and its generator only on failure.
                if self._plan.eager_waiter and timeout > 0:
                    # Spec v2: the first attempt already knows the caller will wait.
                    waiter = make_waiter(backend, self._plan, self._name)
                    lease = self._acquire_contended(backend, ttl, timeout, deadline, waiter)
                else:
                    found = backend.try_acquire(
                        self._name, Owner.current(), ttl, shared=self._shared
                    )
                    if found is None:
                        found = self._acquire_contended(backend, ttl, timeout, deadline, None)
                    lease = found
                lease = self._won(lease, ttl, start)
            except Exception as exc:
                guard.release()
                if isinstance(exc, LockError):
                    raise
                raise failure(exc, "acquiring", self._name, backend) from exc
            except BaseException:
                guard.release()
                raise
            self._hold(lease, me)
        finally:
            _ACQUIRING.reset(bounded)
        return AcquireResult(self)

    def _wait_for_guard(self, timeout: float) -> None:
        """Wait for another thread using this object to release it, up to ``timeout``."""
        if not self._guard.acquire(timeout=-1 if math.isinf(timeout) else timeout):
            raise LockTimeout(self._name, timeout, self._inspect_quietly())

    def _attempt(self, backend: Backend, ttl: float | None, waiter: Waiter | None) -> Lease | None:
        """One ``try_acquire``, with the waiter if there is one and the backend takes it."""
        if waiter is not None and self._plan.accepts_waiter:
            v2: Any = backend.try_acquire  # `waiter` is an optional keyword of spec v2
            lease: Lease | None = v2(
                self._name, Owner.current(), ttl, shared=self._shared, waiter=waiter
            )
            return lease
        return backend.try_acquire(self._name, Owner.current(), ttl, shared=self._shared)

    def _acquire_contended(  # noqa: C901 - the one blocking driver of the loop, kept flat
        self,
        backend: Backend,
        ttl: float | None,
        timeout: float,
        deadline: float,
        waiter: Waiter | None,
    ) -> Lease:
        """Run `_contended_steps` with blocking backend calls.

        With a ``waiter`` (a backend with its own), the first attempt is made here too,
        with the waiter; otherwise the first attempt has failed already. The waiter is
        made when first needed and closed at the end, whatever happens.
        """
        lease: Lease | None = None
        try:
            if waiter is not None:
                lease = self._attempt(backend, ttl, waiter)
                if lease is not None:
                    return lease
            steps = self._contended_steps(timeout, deadline)
            reply: Any = None
            while True:
                try:
                    step = steps.send(reply)
                except StopIteration as done:
                    won: Lease = done.value
                    lease = won  # for the finally clause: given back if leaving fails
                    return won
                match step:
                    case TryAcquire():
                        reply = self._attempt(backend, ttl, waiter)
                    case Inspect():
                        reply = _take_seen(waiter) or self._inspect_quietly()
                    case Break(info):
                        reply = backend.break_lock(self._name, info)
                    case Wait(until, attempt):
                        if waiter is None:
                            waiter = make_waiter(backend, self._plan, self._name)
                        waiter.attempts = attempt
                        reply = waiter.wait(until)
        finally:
            if waiter is not None:
                self._close_waiter(waiter, lease)

    def _close_waiter(self, waiter: Waiter, lease: Lease | None) -> None:
        """Close a waiter; its failure never costs the caller a lock it won."""
        try:
            waiter.close()
        except Exception:
            log.warning("lockkit: ending the wait for %s failed", self._name, exc_info=True)
        except BaseException:
            if lease is not None:
                # Interrupted between winning and returning: nobody would release it.
                try:  # noqa: SIM105 - contextlib is not part of a first lock
                    self._backend.release(lease)
                except Exception:  # noqa: BLE001, S110 - the interruption is what to raise
                    pass
            raise

    def release(self, *, force: bool = False) -> None:
        """Release one level of acquisition; the lock is freed at the outermost level.

        A lost lock is released without touching the new holder's lock.

        In a forked child, releasing a lock the parent holds only forgets it here (see
        *Forks* in the docs): the lock stays the parent's, so a ``with`` block the child
        leaves, or a ``sys.exit`` that unwinds it, leaves the parent's lock alone.

        Args:
            force: Release completely, whatever the nesting depth.

        Raises:
            LockNotHeld: This object does not hold the lock in this thread.
            BackendUnavailable: The backend failed to remove the lock (an I/O error). The
                lock is still held by this object: call `release` again, or let the
                process end (its lock is then stale, and broken by the next user).
        """
        if self._generation != _fork.generation and self._inherited():
            return
        if self._holder != _get_ident() or self._lease is None:
            raise LockNotHeld(f"lock {self._name!r} is not held by this thread")
        self._count = 0 if force else self._count - 1
        if self._count > 0:
            return
        lease, was_lost, renewed = self._begin_release()
        try:
            released = self._backend.release(lease)
        except BaseException as exc:
            raise self._release_failed(exc, lease, renewed=renewed) from exc
        self._finish_release(lease, released=released, was_lost=was_lost)

    def inspect(self) -> LockInfo | None:
        """Ask the backend who holds the lock now (``None`` when free).

        Raises:
            BackendUnavailable: The backend could not be read (an I/O error).
        """
        try:
            return self._backend.inspect(self._name)
        except Exception as exc:
            if isinstance(exc, LockError):
                raise
            raise failure(exc, "reading", self._name, self._backend) from exc

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


def _take_seen(waiter: Waiter | None) -> LockInfo | None:
    """The holder the waiter's failed attempt saw (read in that round trip), used once."""
    if waiter is None or waiter.seen is None:
        return None
    seen, waiter.seen = waiter.seen, None
    return seen


def reader_lock(
    name: str | os.PathLike[str],
    *,
    backend: str | Backend | None,
    timeout: float | None,
    ttl: float | None,
    stale: float | None,
) -> Lock:
    """A `Lock` that asks its backend for shared (read) acquisitions (`ReadWriteLock`'s)."""
    lock = Lock(name, backend=backend, timeout=timeout, ttl=ttl, stale=stale)
    lock._shared = True  # noqa: SLF001 - this module's own switch
    return lock


def effective_timeout(timeout: float | None, default: float | None, *, blocking: bool) -> float:
    """The seconds an acquisition waits: ``math.inf`` for ever, ``0.0`` for one attempt.

    Raises:
        TypeError, ValueError: ``timeout`` is not a number, or NaN.
    """
    if not blocking:
        return 0.0
    if timeout is None:
        timeout = default
        if timeout is None:
            return math.inf
    return check("timeout", timeout)


def _checked(
    timeout: float | None, ttl: float | None, stale: float | None
) -> tuple[float | None, float | None, float | None]:
    """Validate a lock's numbers (``None`` means "from the settings")."""
    return (
        None if timeout is None else check("timeout", timeout),
        None if ttl is None else check("ttl", ttl),
        None if stale is None else check("stale", stale),
    )


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
