"""Wake asyncio tasks when a lock file is released, with inotify and no thread per waiter.

The asyncio twin of `lockkit._notify` (same events, same masks, same libc binding).
Each event loop gets one inotify instance, watched with ``loop.add_reader``; every
task of that loop that waits for a lock file registers a future on it, and the loop
resolves the futures whose file an event names. So a thousand waiting tasks cost one
descriptor and no thread.

Like the blocking side's per-thread instance, the loop's instance lives as long as the
loop: closing an inotify descriptor waits for a kernel RCU grace period (about 10 ms),
which must not land on the event loop between a release and the next holder. It is
closed when the loop shuts down its asynchronous generators (``asyncio.run`` does), or
when it is garbage-collected. A watch is (re)added on every wait (cheap, and it follows
a directory that was replaced); the least recently used idle watches are dropped
beyond a bound.

Where inotify is unavailable (not Linux, no libc binding, out of instances or
watches) the functions say so and the caller polls with ``asyncio.sleep`` and bounded
backoff, as the blocking waiters do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from typing import TYPE_CHECKING

from lockkit._notify import (
    _IN_CLOEXEC,
    _IN_MASK_ADD,
    _IN_NONBLOCK,
    _IN_ONLYDIR,
    _IN_Q_OVERFLOW,
    _MAX_WATCHES,
    IN_DELETE,
    IN_MOVED_FROM,
    _load,
    events,
    poll_delay,
    wait_bound,
)

if TYPE_CHECKING:
    import ctypes
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["wait_for_event", "wait_for_removal", "waiting"]

_IN_IGNORED = 0x00008000  # the watch is gone (directory removed or unmounted)
_READ_SIZE = 65536


class _Watcher:
    """One event loop's inotify instance, shared by all its waiting tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL, fd: int) -> None:
        # Weak: the registry maps loops to watchers, and must not keep a loop alive.
        self._loop = weakref.ref(loop)
        self._libc = libc
        self.fd = fd
        # Watch descriptors, least recently used first.
        self._watches: dict[int, None] = {}
        # (watch descriptor, file name) -> {future: mask it waits for}
        self._waiters: dict[tuple[int, bytes], dict[asyncio.Future[bool], int]] = {}
        self._close_fd = weakref.finalize(self, os.close, fd)
        self.closer: AsyncIterator[None] | None = None
        self.closed = False

    def add(
        self, directory: str, filename: str, mask: int, future: asyncio.Future[bool]
    ) -> tuple[int, bytes] | None:
        """Watch ``filename`` in ``directory`` for ``mask``; ``None`` if inotify refuses."""
        # IN_MASK_ADD keeps the events other waiters asked for in that directory.
        wd = int(
            self._libc.inotify_add_watch(
                self.fd, os.fsencode(directory), mask | _IN_ONLYDIR | _IN_MASK_ADD
            )
        )
        if wd < 0:
            return None
        self._watches.pop(wd, None)
        self._watches[wd] = None
        key = (wd, os.fsencode(filename))
        self._waiters.setdefault(key, {})[future] = mask
        if len(self._watches) > _MAX_WATCHES:
            self._evict()
        return key

    def _evict(self) -> None:
        busy = {wd for wd, _ in self._waiters}
        for wd in list(self._watches):
            if len(self._watches) <= _MAX_WATCHES:
                break
            if wd not in busy:
                del self._watches[wd]
                self._libc.inotify_rm_watch(self.fd, wd)

    def remove(self, key: tuple[int, bytes], future: asyncio.Future[bool]) -> None:
        """Forget ``future``; its watch stays for the next wait in that directory."""
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.pop(future, None)
            if not waiters:
                del self._waiters[key]

    def waiting(self) -> int:
        """How many futures wait on this instance."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def close(self) -> None:
        """Stop reading and close the descriptor; waiting tasks are woken to re-check."""
        if self.closed:
            return
        self.closed = True
        loop = self._loop()
        if loop is not None and _WATCHERS.get(loop) is self:
            del _WATCHERS[loop]
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_reader(self.fd)
        for waiters in self._waiters.values():
            _wake(waiters, ~0)
        self._waiters.clear()
        self._close_fd()

    def on_readable(self) -> None:
        """Read what the kernel reported and wake the tasks whose file it names."""
        try:
            buffer = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        for wd, mask, name in events(buffer):
            if mask & (_IN_Q_OVERFLOW | _IN_IGNORED):
                self._lost_track(wd, mask)
                continue
            waiters = self._waiters.get((wd, name))
            if waiters:
                _wake(waiters, mask)

    def _lost_track(self, wd: int, mask: int) -> None:
        """Events were dropped (queue overflow) or a watch is gone: wake who it concerns.

        Each woken task retries and waits again, arming a fresh watch if it needs one.
        """
        for (key_wd, _), waiters in self._waiters.items():
            if mask & _IN_Q_OVERFLOW or key_wd == wd:
                _wake(waiters, ~0)
        if mask & _IN_IGNORED:
            # The kernel dropped the watch itself (directory removed or unmounted).
            self._watches.pop(wd, None)


def _wake(waiters: dict[asyncio.Future[bool], int], mask: int) -> None:
    for future, wanted in waiters.items():
        if mask & wanted:
            _resolve(future, value=True)


def _resolve(future: asyncio.Future[bool], *, value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _expire(future: asyncio.Future[bool]) -> None:
    _resolve(future, value=False)


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher] = (
    weakref.WeakKeyDictionary()
)


async def _watcher(loop: asyncio.AbstractEventLoop) -> _Watcher | None:
    """The loop's watcher, created on first use; ``None`` where inotify cannot be used."""
    watcher = _WATCHERS.get(loop)
    if watcher is not None:
        return watcher
    libc = _load()
    if libc is None:
        return None
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None  # out of inotify instances or descriptors: poll instead
    watcher = _Watcher(loop, libc, fd)
    try:
        loop.add_reader(fd, watcher.on_readable)
    except (NotImplementedError, RuntimeError):  # a loop without add_reader
        watcher.close()
        return None
    _WATCHERS[loop] = watcher
    closer = _close_at_shutdown(watcher)
    await anext(closer)  # its first step registers it with the running loop
    watcher.closer = closer
    return watcher


async def _close_at_shutdown(watcher: _Watcher) -> AsyncIterator[None]:
    """Suspended for the loop's life; closed (and so closing ``watcher``) at shutdown."""
    try:
        yield
    finally:
        watcher.close()


if hasattr(os, "register_at_fork"):
    # A forked child runs its own loop; the parent's instances are not its to use.
    os.register_at_fork(after_in_child=_WATCHERS.clear)


def waiting() -> int:
    """How many waits are registered with the running loop's inotify instance (tests)."""
    watcher = _WATCHERS.get(asyncio.get_running_loop())
    return 0 if watcher is None else watcher.waiting()


async def wait_for_event(
    directory: str,
    filename: str,
    mask: int,
    still_busy: Callable[[], Awaitable[bool]],
    bound: float,
) -> bool | None:
    """Wait up to ``bound`` seconds for an event on ``filename`` inside ``directory``.

    The asyncio twin of `lockkit._notify.wait_for_event`. ``still_busy`` is awaited
    *after* the watch is armed: a release between the caller's failed attempt and the
    watch would otherwise be missed. Cancelling the caller removes the watch at once.

    Returns:
        ``True`` when an event for the file arrived or the lock was already free,
        ``False`` when ``bound`` passed first, ``None`` when inotify is unavailable
        here and the caller must fall back to polling.
    """
    loop = asyncio.get_running_loop()
    watcher = await _watcher(loop)
    if watcher is None:
        return None
    future: asyncio.Future[bool] = loop.create_future()
    key = watcher.add(directory, filename, mask, future)
    if key is None:
        return None  # out of watches, or the directory is gone: poll instead
    timer = None
    try:
        if not await still_busy():
            return True
        timer = loop.call_later(bound, _expire, future)
        return await future
    finally:
        if timer is not None:
            timer.cancel()
        watcher.remove(key, future)


async def wait_for_removal(
    path: str,
    deadline: float,
    attempt: int,
    exists: Callable[[], Awaitable[bool]],
) -> bool:
    """Sleep until ``path`` is removed, or a bounded time passes.

    The asyncio twin of `lockkit.files.wait_for_removal`. Uses inotify where Linux
    offers it, with a bound that grows with ``attempt`` (up to 0.2 s) for removals it
    cannot see (another host); elsewhere it sleeps with backoff.

    Args:
        path: The lock file (or directory).
        deadline: A `time.monotonic` value not to sleep past.
        attempt: Failed attempts so far (from 1); sets the bound.
        exists: Whether ``path`` still exists (awaited once the watch is armed).

    Returns:
        ``True`` when the removal was seen (or the path was already gone).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    bound = wait_bound(remaining, attempt)
    directory, name = os.path.split(path)
    woken = await wait_for_event(directory, name, IN_DELETE | IN_MOVED_FROM, exists, bound)
    if woken is None:
        await asyncio.sleep(poll_delay(remaining, attempt))
        return False
    return woken
