"""The breaker: the short-lived lock that serialises removing a stale lock file.

Every removal of a lock file for staleness, and every release of a lease with a TTL,
happens while holding ``<lock>.break`` (created with ``O_EXCL``), so a break re-reads
the lock under it and nobody can swap the file in between (see
`lockkit.backends._file.FileBackend.break_lock`). A breaker nobody provably holds is
cleared after `BREAKER_MAX_AGE` of *observed* age.
"""

from __future__ import annotations

import os
import time

from lockkit._info import Lease, Owner, read_start_time
from lockkit.backends._lockfile import (
    create_held,
    lock_info,
    read_lock_file,
    remove_held,
    unlink_lock_file,
)
from lockkit.backends._paths import aux_path, euid, open_lock_directory
from lockkit.backends._payload import Payload, check_content, decode_payload, encode_payload
from lockkit.errors import BackendUnavailable

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from lockkit.backends._lockfile import HeldFile

BREAKER_SUFFIX = ".break"
"""The breaker lock of ``x.lock`` is ``x.lock.break`` (shortened for long names, see
`aux_path` and `breaker_path`)."""
BREAKER_BACKEND = "breaker"
"""The ``backend`` field of a breaker's payload."""
BREAKER_MAX_AGE = 30.0
"""Seconds of *observed* age after which a breaker that is not provably held is cleared.

A breaker is held for milliseconds. The age is observed, never read from the payload:
the file's change time (``st_ctime``, which the kernel sets and a user cannot move into
the future) or, where that is in the future, how long this process has seen that very
file. So a breaker planted with a payload from the year 2999 delays recovery by at most
this much."""
BREAKER_WAIT = 5.0
"""How long a release of a lease with a TTL waits for a busy breaker on a filesystem other
hosts may reach (a breaker there may hold it while it retries a busy file)."""
LOCAL_BREAKER_WAIT = 1.0
"""How long a release of a lease with a TTL waits for a busy breaker on a local filesystem,
where a breaker is held for microseconds: longer means it is paused, or planted."""
REASSERT_BREAKER_WAIT = 0.05
"""How long an acquisition that may have arrived expired waits for the breaker (`_reassert`)."""
BREAK_BUSY_WAIT = 2.0
"""How long a break retries a lock file a share reports busy (while holding the breaker,
so well under `BREAKER_WAIT`)."""


def breaker_path(name: str) -> str:
    """The breaker lock's path for lock ``name``; it always fits the name limit."""
    return aux_path(name, BREAKER_SUFFIX)


def breaker(name: str, *, wait: float = 0.0) -> _Breaker:
    """Hold the short-lived breaker lock of ``name``; ``with`` gives ``False`` if it stays busy.

    A breaker found in the way is cleared when `breaker_clearable` says so.

    Raises:
        InvalidLockName: Something other than a regular file (a FIFO, a directory...)
            sits at the breaker's path: nobody can break or release through it.
    """
    return _Breaker(name, wait)


class _Breaker:
    """`breaker`'s context manager (a class: contextlib is not part of a first lock)."""

    __slots__ = ("_held", "_owner", "_path", "_wait")

    def __init__(self, name: str, wait: float) -> None:
        self._path = breaker_path(name)
        self._wait = wait
        self._owner: Owner | None = None
        self._held: HeldFile | None = None

    def __enter__(self) -> bool:
        owner = Owner.current()
        payload = encode_payload(owner, BREAKER_BACKEND, None)
        deadline = time.monotonic() + self._wait
        delay = 0.0005
        while (held := create_held(self._path, payload)) is None:
            if _clear_stale_breaker(self._path):
                continue  # a crashed breaker's file is gone: try again at once
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self._owner, self._held = owner, held
        return True

    def __exit__(self, *_exc: object) -> None:
        if self._held is not None and self._owner is not None:
            held, self._held = self._held, None
            remove_held(Lease(self._path, BREAKER_BACKEND, self._owner, handle=held))


def _clear_stale_breaker(path: str) -> bool:
    """Remove a breaker nobody provably holds; ``True`` if the path is now free."""
    found = read_lock_file(path)
    if found is None:
        return True
    data, st = found
    check_content(path, data)
    if not breaker_clearable(path, decode_payload(data), st):
        return False
    seen = _breaker_identity(st)
    dfd = open_lock_directory(path)
    if dfd is None:
        return False
    at = dfd if dfd >= 0 else None

    def unchanged() -> bool:
        try:
            if at is None:
                again = os.lstat(path)
            else:
                again = os.stat(os.path.basename(path), dir_fd=at, follow_symlinks=False)  # noqa: PTH119
        except OSError:
            return False
        return _breaker_identity(again) == seen

    try:
        # Only processes clearing a breaker nobody holds race here; see the docs' residual.
        if not unchanged():
            return False
        unlink_lock_file(path, unchanged, patience=BREAK_BUSY_WAIT, dir_fd=at)
    except BackendUnavailable:
        return False
    finally:
        if dfd >= 0:
            os.close(dfd)
    _FIRST_SEEN.pop((path, *seen), None)
    return True


def _breaker_identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # The change time tells a new file on a reused inode number from the old one.
    return (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)


def breaker_clearable(path: str, payload: Payload, st: os.stat_result) -> bool:
    """Whether the breaker file ``st`` (with ``payload``) may be removed by another process.

    - Its holder is on this machine view and dead (or its pid was reused): at once.
    - Its holder is *provably alive*: this machine view, the pid running with the start
      time the payload names, a ``breaker`` payload in a file of one link owned by this
      process's user: never by age. It may be a release paused inside the breaker (a
      GC pause, SIGSTOP); clearing it would let a break remove the next holder's lock.
    - Anything else (another host, another user, an unreadable payload, pid 1 from the
      year 2999): once its observed age (`observed_age`) reaches `BREAKER_MAX_AGE`.
    """
    info = lock_info(path, BREAKER_BACKEND, payload, st)
    from lockkit._stale import judge  # noqa: PLC0415 - only a breaker in the way

    verdict = judge(info)
    if verdict.stale and verdict.rule in {"pid-dead", "pid-reused"}:
        return True
    owner = payload.owner
    if (
        owner is not None
        and verdict.rule == "alive"
        and payload.backend == BREAKER_BACKEND
        and owner.start_time is not None
        and read_start_time(owner.pid) == owner.start_time
        and st.st_nlink == 1
        and st.st_uid == euid()
    ):
        return False
    return observed_age(path, st) >= BREAKER_MAX_AGE


CLOCK_SKEW = 2.0
"""Seconds a file's change time may lie ahead of this host's clock (a server's clock)
before it counts as meaningless."""
# (path, dev, ino, ctime, mtime, size) -> when this process first saw that breaker file.
_FIRST_SEEN: dict[tuple[object, ...], float] = {}


def observed_age(path: str, st: os.stat_result) -> float:
    """How long the file ``st`` at ``path`` has existed unchanged, as far as can be seen.

    The larger of its change-time age (where that time is not in the future) and how
    long this process has seen this very version of it. Never a payload timestamp.
    """
    now = time.time()
    by_ctime = now - st.st_ctime if st.st_ctime <= now + CLOCK_SKEW else 0.0
    key = (path, *_breaker_identity(st))
    first = _FIRST_SEEN.get(key)
    mono = time.monotonic()
    if first is None:
        if len(_FIRST_SEEN) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _FIRST_SEEN.clear()
        _FIRST_SEEN[key] = first = mono
    return max(by_ctime, mono - first, 0.0)
