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

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IN_CLOSE_WRITE", "IN_DELETE", "IN_MOVED_FROM", "available", "wait_for_event"]

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_DELETE = 0x00000200
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_ONLYDIR = 0x01000000
_EVENT = struct.Struct("iIII")

_libc: ctypes.CDLL | None = None
_libc_checked = False
_libc_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _libc, _libc_checked  # noqa: PLW0603 - loaded once per process
    if not _libc_checked:
        with _libc_lock:
            if not _libc_checked:
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
                    libc.inotify_init1.argtypes = [ctypes.c_int]
                    libc.inotify_add_watch.argtypes = [
                        ctypes.c_int,
                        ctypes.c_char_p,
                        ctypes.c_uint32,
                    ]
                    _libc = libc
                except (OSError, AttributeError):
                    _libc = None
                _libc_checked = True
    return _libc


def available() -> bool:
    """Whether inotify can be used in this process (Linux with a C library that has it)."""
    return _load() is not None


def wait_for_event(
    directory: str,
    filename: str,
    mask: int,
    still_busy: Callable[[], bool],
    timeout: float,
) -> bool | None:
    """Wait up to ``timeout`` seconds for an event on ``filename`` inside ``directory``.

    ``still_busy`` is checked *after* the watch is armed: a release that happened between
    the caller's failed attempt and the watch would otherwise be missed.

    Returns:
        ``True`` when an event for the file arrived or the lock was already free,
        ``False`` when the timeout passed first, ``None`` when inotify is unavailable
        here and the caller must fall back to polling.
    """
    libc = _load()
    if libc is None:
        return None
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    try:
        if libc.inotify_add_watch(fd, os.fsencode(directory), mask | _IN_ONLYDIR) < 0:
            return None
        if not still_busy():
            return True
        wanted = os.fsencode(filename)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not poller.poll(max(1, int(remaining * 1000))):
                break
            # Events for other files in the same directory are read and ignored.
            if _has_event_for(os.read(fd, 65536), wanted):
                return True
        return False
    finally:
        os.close(fd)


def _has_event_for(buffer: bytes, wanted: bytes) -> bool:
    offset = 0
    while offset + _EVENT.size <= len(buffer):
        _wd, _mask, _cookie, length = _EVENT.unpack_from(buffer, offset)
        start = offset + _EVENT.size
        name = buffer[start : start + length].rstrip(b"\0")
        if name == wanted:
            return True
        offset = start + length
    return False
