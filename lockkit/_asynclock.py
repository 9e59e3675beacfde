"""``lockkit.AsyncLock``: `lockkit.Lock` for asyncio, without blocking the event loop.

It shares everything but the driving with `Lock` (`lockkit._lock._LockCore`): the
backend selection and settings, the acquisition loop (stale locks, quick retries,
events, deadline), TTL renewal and loss reporting. Only the backend calls differ: the
``*_async`` methods of `lockkit.spec.Backend`, awaited.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any, Self

from lockkit import _calls, _fork
from lockkit._calls import failure, make_waiter
from lockkit._deadline import ACQUIRING as _ACQUIRING
from lockkit._info import Owner
from lockkit._lock import _LockCore, _take_seen, effective_timeout
from lockkit._log import log
from lockkit._steps import Break, Inspect, TryAcquire, Wait
from lockkit.errors import InvalidLockName, LockError, LockNotHeld, LockTimeout

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from types import TracebackType

    from lockkit._info import Lease, LockInfo
    from lockkit.spec import Backend, Waiter

__all__ = ["AsyncAcquireResult", "AsyncLock"]


# Releases handed to the event loop after their caller was cancelled; the loop keeps
# only weak references to tasks, so they are kept here until they finish.
_BACKGROUND: set[asyncio.Task[Any]] = set()


class AsyncLock(_LockCore):
    """An inter-process lock for asyncio code, with the same backends as `Lock`.

    ```python
    lock = lockkit.AsyncLock("state.json.lock", timeout=10)
    async with lock:
        await update_state()
    ```

    Backend selection, settings, stale-lock breaking, TTL renewal and events are those
    of `Lock`: the same constructor arguments, the same ``LOCKKIT_*`` variables and
    settings file, the same ``lockkit_*`` hooks.

    **The event loop is never blocked.** Waiting is event-driven: file backends share
    one inotify descriptor per event loop (no thread per waiting task), Redis waits on
    its ``redis.asyncio`` connection. File-backend calls run on the loop on local
    filesystems (a few microsecond system calls) and in a worker thread on network and
    FUSE filesystems; backends without async support run in worker threads.

    **Cancellation is safe.** A task cancelled while it waits for the lock, or while
    an attempt is in flight, leaves nothing behind: it does not hold the lock, and no
    lock file or key of its remains. An attempt that was already running in a worker
    thread is allowed to finish, and what it got is released.

    **Reentrancy is per task**, as `Lock`'s is per thread: nested ``async with lock:``
    in the task that holds it only count. Other tasks using the same object wait like
    any other contender, including tasks the holder started, so a holder must not
    await a child task that takes the same lock. One object belongs to one event loop
    at a time.

    **TTL** renewal runs in lockkit's renewer thread with the backend's blocking
    calls, exactly as for `Lock`; ``on_lost`` is called from that thread (use
    ``loop.call_soon_threadsafe`` to get back to the loop) or from the task that finds
    the loss in `is_held` or `release`.

    Args:
        name: The lock: for file backends, the path of the lock file (its directory must
            exist); for server backends, any name.
        backend: A backend name, a URL, ``"auto"``, or a `Backend` instance; ``None``
            lets the deployment decide, as for `Lock`.
        timeout: Default seconds ``acquire`` waits; ``0`` makes a single attempt. ``None``
            takes the settings' ``timeout``, else waits forever.
        ttl: Seconds after which an unrenewed lock counts as stale, for backends with
            the ``ttl`` capability; as for `Lock`.
        stale: Seconds after which a lock held from another machine without an expiry
            counts as stale; as for `Lock`.
        on_lost: Called once with this lock when it turns out to be lost (see above).
            Keep it short; it must not block.
    """

    def __init__(
        self,
        name: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        stale: float | None = None,
        on_lost: Callable[[AsyncLock], object] | None = None,
    ) -> None:
        """Choose the backend and validate the name; nothing is acquired yet."""
        super().__init__(
            name, backend=backend, timeout=timeout, ttl=ttl, stale=stale, on_lost=on_lost
        )
        # Serialises the tasks sharing this object; bound to one loop (see _guard_for).
        self._guard: asyncio.Lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holder: asyncio.Task[Any] | None = None

    def _forget_users(self) -> None:
        self._guard = asyncio.Lock()
        self._loop = None
        self._holder = None

    async def is_held(self) -> bool:
        """Whether this object holds the lock *and* the backend still agrees.

        Asks the backend; if the lock now belongs to someone else, marks it lost (firing
        ``lockkit_lost`` and ``on_lost`` once) and returns ``False``.
        """
        lease = self._current_lease()
        if lease is None:
            return False
        try:
            info = await _calls.inspect_async(self._backend, self._plan, self._name)
        except InvalidLockName:
            raise
        except Exception:
            log.debug("lockkit: is_held(%s) could not ask the backend", self._name, exc_info=True)
            return True  # the renewer keeps watching
        return self._still_ours(lease, info)

    async def acquire(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the same API as Lock.acquire
        *,
        blocking: bool = True,
    ) -> AsyncAcquireResult:
        """Acquire the lock, waiting up to ``timeout`` seconds without blocking the loop.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's default, a negative value
                or ``math.inf`` waits forever, ``0`` makes a single attempt.
            blocking: ``False`` makes a single attempt whatever the timeout.

        Returns:
            An async context manager that releases this acquisition on exit, so
                ``async with await lock.acquire(timeout=5):`` holds the lock for the
                block only.

        Raises:
            LockTimeout: The lock stayed busy; carries the holder's `LockInfo`.
            asyncio.CancelledError: The task was cancelled; the lock is not held.
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AsyncLock.acquire must be awaited inside an asyncio task")
        if self._generation != _fork.generation:
            self._inherited()  # a child of a fork takes its own lock, not the parent's
        if self._holder is task:
            self._count += 1
            return AsyncAcquireResult(self)
        timeout = effective_timeout(timeout, self.timeout, blocking=blocking)
        deadline = time.monotonic() + timeout
        # Backends that bound their I/O by the caller's timeout read it (`._deadline`);
        # the task's own context, so other tasks never see it.
        bounded = _ACQUIRING.set(deadline)
        try:
            await self._acquire_until(task, timeout, deadline)
        finally:
            _ACQUIRING.reset(bounded)
        return AsyncAcquireResult(self)

    async def _acquire_until(
        self,
        task: asyncio.Task[Any],
        timeout: float,  # noqa: ASYNC109 - only for the LockTimeout message
        deadline: float,
    ) -> None:
        """`acquire` once the deadline is known and published."""
        guard = self._guard_for(asyncio.get_running_loop())
        # Serialise tasks sharing this object: the second waits here like a contender,
        # and the time it waits counts against the same deadline.
        if math.isinf(timeout):
            await guard.acquire()
        else:
            try:
                async with asyncio.timeout(timeout):
                    await guard.acquire()
            except TimeoutError:
                raise LockTimeout(
                    self._name, timeout, await self._inspect_quietly_async()
                ) from None
        try:
            lease = await self._acquire_backend(timeout, deadline)
        except Exception as exc:
            guard.release()
            if isinstance(exc, LockError):
                raise
            raise failure(exc, "acquiring", self._name, self._backend) from exc
        except BaseException:
            guard.release()
            raise
        # No await from here on: a cancellation cannot come between the lease and the
        # state that records it.
        self._hold(lease, task)

    def _guard_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        """The guard for tasks of ``loop``; a fresh one when the object moves to a new loop.

        An `asyncio.Lock` binds itself to the loop it first waits in, so a lock object
        reused by a later ``asyncio.run`` needs a new guard; it may move only while free.
        """
        if self._loop is not loop:
            if self._guard.locked():
                raise RuntimeError(
                    f"AsyncLock {self._name!r} is held by a task of another event loop"
                )
            self._guard = asyncio.Lock()
            self._loop = loop
        return self._guard

    async def _acquire_backend(self, timeout: float, deadline: float) -> Lease:  # noqa: ASYNC109 - for LockTimeout
        backend = self._backend
        ttl = self.ttl if backend.capabilities.ttl else None
        start = time.monotonic()
        if self._plan.eager_waiter and timeout > 0:
            # Spec v2: the first attempt already knows the caller will wait.
            waiter = make_waiter(backend, self._plan, self._name)
            lease = await self._acquire_contended(backend, ttl, timeout, deadline, waiter)
        else:
            found = await _calls.try_acquire_async(
                backend,
                self._plan,
                self._name,
                Owner.current(),
                ttl,
                shared=self._shared,
                waiter=None,
            )
            if found is None:
                found = await self._acquire_contended(backend, ttl, timeout, deadline, None)
            lease = found
        return self._won(lease, ttl, start)

    async def _acquire_contended(  # noqa: C901 - the one async driver of the loop, kept flat
        self,
        backend: Backend,
        ttl: float | None,
        timeout: float,  # noqa: ASYNC109 - only for the LockTimeout message
        deadline: float,
        waiter: Waiter | None,
    ) -> Lease:
        """Run `Lock`'s acquisition loop (`_contended_steps`) with awaited backend calls.

        With a ``waiter``, the first attempt is made here (see `Lock._acquire_contended`).
        """
        name = self._name
        how = self._plan
        shared = self._shared
        lease: Lease | None = None
        try:
            if waiter is not None:
                lease = await _calls.try_acquire_async(
                    backend, how, name, Owner.current(), ttl, shared=shared, waiter=waiter
                )
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
                        reply = await _calls.try_acquire_async(
                            backend, how, name, Owner.current(), ttl, shared=shared, waiter=waiter
                        )
                    case Inspect():
                        reply = _take_seen(waiter) or await self._inspect_quietly_async()
                    case Break(info):
                        reply = await _calls.break_lock_async(backend, how, name, info)
                    case Wait(until, attempt):
                        if waiter is None:
                            waiter = make_waiter(backend, how, name)
                        waiter.attempts = attempt
                        reply = await waiter.wait_async(until)
        finally:
            if waiter is not None:
                await self._close_waiter_async(backend, waiter, lease)

    async def _close_waiter_async(
        self, backend: Backend, waiter: Waiter, lease: Lease | None
    ) -> None:
        """End the wait; if that is interrupted after the lock was won, give the lock back."""
        try:
            await waiter.close_async()
        except Exception:
            log.warning("lockkit: ending the wait for %s failed", self._name, exc_info=True)
        except BaseException:
            if lease is not None:
                # Cancelled between winning and returning: the caller will never see
                # this lease, so nobody else would release it.
                _release_in_background(backend, self._plan, lease)
            raise

    async def _inspect_quietly_async(self) -> LockInfo | None:
        try:
            return await _calls.inspect_async(self._backend, self._plan, self._name)
        except InvalidLockName:
            raise
        except OSError:
            return None
        except Exception as exc:
            raise failure(exc, "reading", self._name, self._backend) from exc

    async def release(self, *, force: bool = False) -> None:
        """Release one level of acquisition; the lock is freed at the outermost level.

        A lost lock is released without touching the new holder's lock. The release
        completes even if the task is cancelled while it is in flight.

        In a forked child, releasing a lock the parent holds only forgets it here: the
        lock stays the parent's (see `lockkit.Lock.release`).

        Args:
            force: Release completely, whatever the nesting depth.

        Raises:
            LockNotHeld: This object does not hold the lock in this task.
            BackendUnavailable: The backend failed to remove the lock (an I/O error). The
                lock is still held by this object: call `release` again.
            asyncio.CancelledError: The task was cancelled; the release goes on in the
                background and frees this object when it ends.
        """
        if self._generation != _fork.generation and self._inherited():
            return
        if self._holder is not asyncio.current_task() or self._lease is None:
            raise LockNotHeld(f"lock {self._name!r} is not held by this task")
        self._count = 0 if force else self._count - 1
        if self._count > 0:
            return
        lease, was_lost, renewed = self._begin_release()
        # Cancelling the caller (a timeout, a shutdown) must not stop a release half-way,
        # nor leave this object's guard taken for ever. A release a backend can do at
        # once on the loop (local files) needs no protection, and gets none: a task costs
        # more than the release. Any other runs in a task of its own, shielded.
        at_once = getattr(self._backend, "release_at_once", None)
        if at_once is not None:
            try:
                done = at_once(lease)
            except BaseException as exc:
                raise self._release_failed(exc, lease, renewed=renewed) from exc
            if done is not None:
                self._finish_release(lease, released=done, was_lost=was_lost)
                return
        releasing = asyncio.ensure_future(_calls.release_async(self._backend, self._plan, lease))
        try:
            released = await asyncio.shield(releasing)
        except asyncio.CancelledError:
            if releasing.done() and not releasing.cancelled():
                self._settle(releasing, lease, was_lost=was_lost)
            else:
                releasing.add_done_callback(
                    lambda done: self._settle(done, lease, was_lost=was_lost)
                )
            raise
        except BaseException as exc:
            raise self._release_failed(exc, lease, renewed=renewed) from exc
        self._finish_release(lease, released=released, was_lost=was_lost)

    def _settle(self, done: asyncio.Future[bool], lease: Lease, *, was_lost: bool) -> None:
        """Finish a release whose caller was cancelled, once the backend is done.

        Nobody is left to retry it, so a failure is logged and the object freed anyway:
        the lock file or key stays until the stale rules (or its TTL) clear it.
        """
        exc = None if done.cancelled() else done.exception()
        if exc is None and not done.cancelled():
            self._finish_release(lease, released=done.result(), was_lost=was_lost)
            return
        log.warning(
            "lockkit: releasing %s failed after its task was cancelled: %s", self._name, exc
        )
        self._holder = None
        self._guard.release()

    async def inspect(self) -> LockInfo | None:
        """Ask the backend who holds the lock now (``None`` when free).

        Raises:
            BackendUnavailable: The backend could not be read (an I/O error).
        """
        try:
            return await _calls.inspect_async(self._backend, self._plan, self._name)
        except Exception as exc:
            if isinstance(exc, LockError):
                raise
            raise failure(exc, "reading", self._name, self._backend) from exc

    async def __aenter__(self) -> Self:
        """Acquire with the default timeout."""
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release one level."""
        await self.release()

    def __repr__(self) -> str:
        """Show the name, backend and state; never a token."""
        state = "locked" if self.locked else "unlocked"
        return f"<lockkit.AsyncLock {self._name!r} backend={self._backend.name!r} {state}>"


class AsyncAcquireResult:
    """What `AsyncLock.acquire` returns: an async context manager releasing that acquisition.

    ``async with await lock.acquire(timeout=5):`` then behaves like ``async with lock:``
    with a timeout, instead of leaving one level of reentrancy held.
    """

    __slots__ = ("lock",)

    def __init__(self, lock: AsyncLock) -> None:
        """Wrap the lock that was just acquired."""
        self.lock = lock

    async def __aenter__(self) -> AsyncLock:
        """Return the lock, already held."""
        return self.lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the acquisition this object stands for."""
        await self.lock.release()


def _release_in_background(backend: Backend, how: _calls.Plan, lease: Lease) -> None:
    """Release ``lease`` in a task of its own, kept alive until it is done."""
    task = asyncio.ensure_future(_calls.release_async(backend, how, lease))
    _BACKGROUND.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("lockkit: releasing an abandoned lock failed: %s", exc)
