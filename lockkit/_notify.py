"""Wake a waiter when a lock file is released, using inotify where Linux offers it.

A release that removes the lock file (``excl``, ``hardlink``) shows up as
``IN_DELETE``/``IN_MOVED_FROM`` on the directory; a release that only drops an OS lock
(``filelock``) shows up as ``IN_CLOSE_WRITE`` of the holder's write descriptor.
Contenders never generate those events (failed ``O_EXCL`` creates nothing; flock
contenders open read-only), so there is no thundering herd of spurious wake-ups.

inotify only sees changes made through this kernel. A release on another host of a
shared filesystem is noticed by the bounded timeout each wait carries, so waiting is
correct everywhere and fast where the kernel can tell.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from lockkit.spec import poll_delay as _poll_delay

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    import ctypes
    import struct
    import threading
    from collections.abc import Callable, Iterator

__all__ = [
    "IN_CLOSE_WRITE",
    "IN_DELETE",
    "IN_MOVED_FROM",
    "available",
    "events",
    "poll_delay",
    "wait_bound",
    "wait_for_event",
    "wait_for_removal",
]

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_DELETE = 0x00000200
# Read with defaults: the module must import on Windows too (it then reports no inotify).
_IN_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_IN_ONLYDIR = 0x01000000
_IN_Q_OVERFLOW = 0x00004000
# The watched directory itself went away (deleted, renamed, unmounted) or the watch was
# removed: its events stop, so a waiter must not rely on it any more.
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_UNMOUNT = 0x00002000
_IN_IGNORED = 0x00008000
_WATCH_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED
# What `_scan` found in a buffer of events.
_NOTHING, _FOR_FILE, _LOST = 0, 1, 2

_libc: ctypes.CDLL | None = None
_libc_checked = False
_libc_lock = _thread.allocate_lock()
# Each thread's inotify watcher (`_watcher`); made with libc, on the first wait, so that
# threading is not imported by a lock that never waits.
_PER_THREAD: threading.local


def _load() -> ctypes.CDLL | None:
    global _libc, _libc_checked, _PER_THREAD  # noqa: PLW0603 - loaded once per process
    if not _libc_checked:
        with _libc_lock:
            if not _libc_checked:
                try:
                    if not sys.platform.startswith("linux"):
                        # macOS and the BSDs have no inotify; Windows has no libc to
                        # load by name (CDLL(None) raises TypeError there).
                        raise OSError("inotify is Linux-only")  # noqa: TRY301
                    # Imported on the first wait, not with lockkit: an uncontended lock
                    # never waits. CDLL(None) is the process's own symbols, libc's among
                    # them; find_library("c") would run ldconfig in a subprocess.
                    import ctypes  # noqa: PLC0415

                    libc = ctypes.CDLL(None, use_errno=True)
                    libc.inotify_init1.argtypes = [ctypes.c_int]
                    libc.inotify_add_watch.argtypes = [
                        ctypes.c_int,
                        ctypes.c_char_p,
                        ctypes.c_uint32,
                    ]
                    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
                    import threading  # noqa: PLC0415

                    _PER_THREAD = threading.local()
                    _libc = libc
                except (OSError, AttributeError, TypeError):
                    _libc = None
                _libc_checked = True
    return _libc


def _event() -> struct.Struct:
    """Inotify's event header (wd, mask, cookie, len); struct is loaded with the first."""
    import struct  # noqa: PLC0415

    global _EVENT  # noqa: PLW0603 - made once
    if _EVENT is None:
        _EVENT = struct.Struct("iIII")
    return _EVENT


_EVENT: struct.Struct | None = None


def available() -> bool:
    """Whether inotify can be used in this process (Linux with a C library that has it)."""
    return _load() is not None


class _Watcher:
    """One thread's inotify instance, kept for the thread's life.

    Creating an inotify instance per wait looked free, but closing one waits for a
    kernel RCU grace period (8-11 ms measured here), which landed right on the
    hand-off path. The instance now lives as long as its thread; a watch is (re)added
    on the first wait of an acquisition (cheap, and it follows a directory that was
    replaced) and kept for the next ones unless its directory went away, stale events
    are drained before the lock is re-checked, and the descriptor is closed when the
    thread ends, off anyone's critical path.
    """

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self.libc = libc
        self.fd = fd
        self.pid = os.getpid()
        import select  # noqa: PLC0415 - with the first watcher: a first lock never waits

        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)
        # Watched directories, most recent last; few, but bounded all the same.
        self.watches: dict[int, None] = {}
        # The last wait: its watch descriptor and (directory, file, mask, and its waiter
        # or, without one, its attempt number).
        self.last_wd = -1
        self.last: tuple[str, str, int, object] | None = None

    def watch(self, directory: str, mask: int) -> int:
        # IN_MASK_ADD keeps the events other waits of this thread asked for (a
        # directory may hold excl and filelock locks).
        wd = int(
            self.libc.inotify_add_watch(
                self.fd,
                os.fsencode(directory),
                mask | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_MASK_ADD,
            )
        )
        if wd >= 0:
            self.watches.pop(wd, None)
            self.watches[wd] = None
            while len(self.watches) > _MAX_WATCHES:
                oldest = next(iter(self.watches))
                del self.watches[oldest]
                self.libc.inotify_rm_watch(self.fd, oldest)
        return wd

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def __del__(self) -> None:
        # The thread ended (or the process forked): release the kernel instance.
        if self.pid == os.getpid():
            try:  # noqa: SIM105 - contextlib is not part of a first lock
                os.close(self.fd)
            except OSError:
                pass


_MAX_WATCHES = 32
_IN_MASK_ADD = 0x20000000


def _watcher(libc: ctypes.CDLL) -> _Watcher | None:
    watcher: _Watcher | None = getattr(_PER_THREAD, "watcher", None)
    if watcher is not None and watcher.pid == os.getpid():
        return watcher
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None  # out of instances (fs.inotify.max_user_instances): poll instead
    watcher = _PER_THREAD.watcher = _Watcher(libc, fd)
    return watcher


WATCHED_SLOWER = 5
"""How many times longer a watched wait may last than a blind poll at the same attempt:
events report the releases on this machine, the bound only the others."""
WATCHED_MAX = 0.2
"""The longest watched wait, in seconds: a release on another host is seen within it."""


def wait_bound(remaining: float, attempt: int) -> float:
    """How long one watched wait may last: 10 ms after the first attempt, doubling to 0.2 s.

    Events cover releases on this machine; the bound covers the ones no event reports
    (another host's, on a network filesystem). The backoff is lockkit's one rule,
    `lockkit.spec.poll_delay`, `WATCHED_SLOWER` times longer. Never past the deadline
    (``remaining``).
    """
    return min(remaining, WATCHED_SLOWER * _poll_delay(attempt), WATCHED_MAX)


def poll_delay(remaining: float, attempt: int) -> float:
    """How long to sleep where no events can be watched: `lockkit.spec.poll_delay`.

    Never past the deadline (``remaining``).
    """
    return min(remaining, _poll_delay(attempt))


def wait_for_event(
    directory: str,
    filename: str,
    mask: int,
    still_busy: Callable[[], bool],
    timeout: float,
    *,
    attempt: int = 0,
    waiter: object | None = None,
) -> bool | None:
    """Wait up to ``timeout`` seconds for an event on ``filename`` inside ``directory``.

    ``still_busy`` is checked *after* the watch is armed: a release that happened between
    the caller's failed attempt and the watch would otherwise be missed.

    When this thread's previous wait was the same acquisition's (the same ``waiter``,
    a `lockkit.spec.Waiter`; without one, ``attempt`` numbers the waits of an
    acquisition, 1, 2, ..., and the previous wait must be number ``attempt - 1``) for the
    same file, its watch has stayed armed since, across the failed attempt in between:
    any release since then left an event in the queue, so the watch is neither re-added
    nor drained, and ``still_busy`` is not asked. Under contention that saves a waiter
    four or five system calls per wake-up, most of a woken waiter's work when another
    process took the lock first.

    Returns:
        ``True`` when an event for the file arrived or the lock was already free,
        ``False`` when the timeout passed first, ``None`` when inotify is unavailable
        here and the caller must fall back to polling.
    """
    libc = _load()
    if libc is None:
        return None
    watcher = _watcher(libc)
    if watcher is None:
        return None
    if waiter is not None:
        armed = watcher.last == (directory, filename, mask, waiter)
    else:
        armed = attempt > 1 and watcher.last == (directory, filename, mask, attempt - 1)
    watcher.last = None  # set again below, once this wait's watch is armed
    if armed:
        wd = watcher.last_wd
    else:
        wd = watcher.watch(directory, mask)
        if wd < 0:
            return None
        # Events from earlier waits are history: the re-check below covers them.
        watcher.drain()
    watcher.last_wd = wd
    watcher.last = (directory, filename, mask, attempt if waiter is None else waiter)
    if not armed and not still_busy():
        return True
    return _poll_for(watcher, wd, os.fsencode(filename), mask, timeout)


def _poll_for(watcher: _Watcher, wd: int, wanted: bytes, mask: int, timeout: float) -> bool:
    """Read events until one for ``wanted`` comes (``True``) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if not watcher.poller.poll(max(1, int(remaining * 1000))):
            break
        try:
            buffer = os.read(watcher.fd, 65536)
        except BlockingIOError:
            continue
        # Events for other files, or other directories this thread watches, are ignored.
        found = _scan(buffer, wd, wanted, mask)
        if found == _LOST:
            # The directory was deleted or replaced: the next wait must watch the path
            # again, and the lock be re-checked now.
            watcher.last = None
        if found:
            return True
    return False


def events(buffer: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(watch descriptor, mask, file name)`` of each event in one inotify read.

    The one parser of ``struct inotify_event`` records, for the blocking waiters here
    and the event loop's (`lockkit._notify_async`).
    """
    offset = 0
    event = _event()
    size = event.size
    end = len(buffer)
    while offset + size <= end:
        wd, mask, _cookie, length = event.unpack_from(buffer, offset)
        start = offset + size
        yield wd, mask, buffer[start : start + length].rstrip(b"\0")
        offset = start + length


def _scan(buffer: bytes, wd: int, wanted: bytes, mask: int) -> int:
    """What ``buffer`` holds: an event for ``wanted``, the end of watch ``wd``, or neither.

    Returns:
        `_FOR_FILE`, `_LOST` or `_NOTHING`.
    """
    found = _NOTHING
    for event_wd, event_mask, name in events(buffer):
        # Dropped events (ours may be among them) or a dead watch: re-check the lock,
        # and arm afresh next time. Looked for in the whole buffer: a directory removed
        # right after a release shows both.
        if event_mask & _IN_Q_OVERFLOW or (event_wd == wd and event_mask & _WATCH_GONE):
            return _LOST
        if event_wd == wd and event_mask & mask and name == wanted:
            found = _FOR_FILE
    return found


def wait_for_removal(path: str, deadline: float, attempt: int) -> bool:
    """Sleep until ``path`` (a file or directory) is removed, or a bounded time passes.

    Uses inotify where Linux offers it, with a bound that grows with ``attempt`` (up to
    0.2 s) for removals it cannot see (another host); elsewhere it polls with backoff.
    Public as `lockkit.files.wait_for_removal`.

    Returns:
        ``True`` when the removal was seen (or the path was already gone).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    bound = wait_bound(remaining, attempt)
    directory, name = os.path.split(path)
    woken = wait_for_event(
        directory,
        name,
        IN_DELETE | IN_MOVED_FROM,
        lambda: os.path.lexists(path),
        bound,
        attempt=attempt,
    )
    if woken is None:
        time.sleep(poll_delay(remaining, attempt))
        return False
    return woken
