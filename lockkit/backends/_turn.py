"""Turns: a fair share of a lock for waiters on other clients of a shared filesystem.

Waiters on the holder's own client are woken by inotify the moment the lock file goes;
waiters on another client cannot be (inotify sees only this kernel's changes), so they
poll, and under steady contention they lose nearly every race to the woken ones. In a
run of six processes on two sshfs mounts, 1 hand-off in 259 went from one client to the
other: the second client waited until the first had finished.

So a waiter that has waited a while on a filesystem other hosts may share claims the
lock's next **turn**: it creates ``<lock>.turn`` holding its payload with an expiry
`TURN_TTL` ahead, and renews it at each of its waits. While a live turn belongs to
another process, attempts on that filesystem step aside (report busy without creating
the lock file), so the lock falls to the claimant at its next poll; the claimant's
successful attempt removes the turn.

A turn never decides who holds the lock (the lock file does): it only decides who tries.
A turn that is stale, forged, unreadable or unknown to the program (an older lockkit,
OpenClaw) can therefore delay an acquisition by at most `TURN_TTL`, never grant a lock
twice. An expiry further ahead than `TURN_TTL` means nothing (a planted file cannot
hold everyone off for long).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import TYPE_CHECKING

import attrs

from lockkit.backends._file import (
    decode_payload,
    encode_payload,
    read_lock_file,
    unlink_lock_file,
)
from lockkit.errors import LockError

if TYPE_CHECKING:
    from lockkit._info import Owner

__all__ = [
    "TURN_AFTER",
    "TURN_POLL",
    "TURN_SUFFIX",
    "TURN_TTL",
    "Turn",
    "claim",
    "due",
    "forget",
    "give_back",
    "look",
    "waited",
]

TURN_SUFFIX = ".turn"
"""The turn of lock file ``x.lock`` is ``x.lock.turn``."""
TURN_TTL = 1.0
"""Seconds a turn lives unless its claimant renews it (at every wait, 0.2 s apart)."""
TURN_AFTER = 2
"""Waits that no release ended (about 30 ms of them) after which a waiter claims the
next turn. Waits that a release ended (inotify saw it: the holder is on this client)
do not count, so contention among one client's processes never brings turns in."""
TURN_POLL = 0.02
"""Seconds between the attempts of a waiter that holds the turn (the others step aside,
so the lock stays free until it looks)."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC
# Read-write, not write-only: smbnetfs fails ftruncate() of a write-only descriptor with
# EIO after 4 s (the lock file's own refresh opens it the same way).
_REWRITE = os.O_RDWR | _NOFOLLOW | _CLOEXEC


def _same_process(a: Owner, b: Owner) -> bool:
    return (a.pid, a.boot_id, a.pid_ns, a.start_time, a.host) == (
        b.pid,
        b.boot_id,
        b.pid_ns,
        b.start_time,
        b.host,
    )


# Per waiting thread or task and lock: its waits that saw no release. Set and read by
# that waiter only (dict operations are atomic), dropped by `forget`.
_UNNOTICED: dict[tuple[str, int], int] = {}


def due(name: str, waiter: int) -> bool:
    """Whether ``waiter`` (a thread or task id) has waited long enough to claim a turn."""
    return _UNNOTICED.get((name, waiter), 0) >= TURN_AFTER


def waited(name: str, waiter: int, *, noticed: bool) -> None:
    """Count one wait of ``waiter`` for lock ``name``; ``noticed`` if a release ended it."""
    if not noticed:
        key = (name, waiter)
        _UNNOTICED[key] = _UNNOTICED.get(key, 0) + 1


def forget(name: str, waiter: int) -> None:
    """Drop what `waited` counted for ``waiter``: its acquisition is over."""
    _UNNOTICED.pop((name, waiter), None)


@attrs.frozen
class Turn:
    """A live turn of a lock.

    Attributes:
        mine: Whether this process holds it.
        left: Seconds until it expires unless renewed.
    """

    mine: bool
    left: float


def look(name: str, me: Owner) -> Turn | None:
    """The live turn of lock ``name``, if there is a believable one."""
    try:
        found = read_lock_file(name + TURN_SUFFIX)
    except (OSError, LockError):
        return None  # unreadable, a symlink, busy: no turn anyone can rely on
    if found is None:
        return None
    payload = decode_payload(found[0])
    if payload.owner is None or payload.expires is None:
        return None
    left = (payload.expires - dt.datetime.now(dt.UTC)).total_seconds()
    if not 0 < left <= 2 * TURN_TTL:  # expired, or from the future: meaningless
        return None
    return Turn(mine=_same_process(payload.owner, me), left=left)


def claim(name: str, me: Owner, turn: Turn | None) -> None:
    """Claim (or renew) the next turn of lock ``name`` for this process, if it is free.

    ``turn`` is what `look` just found. Failures are ignored: a turn is a courtesy, and
    a waiter without one still polls.
    """
    if turn is not None and not turn.mine:
        return
    path = name + TURN_SUFFIX
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TURN_TTL)
    payload = encode_payload(me, "turn", expires)
    try:
        if turn is None:
            # Absent, expired or unbelievable: replace it. Two claimants racing here
            # can both believe they hold the turn; each then only tries, as before.
            unlink_lock_file(path, patience=0)
            fd = os.open(path, _CREATE, 0o644)
        else:
            fd = os.open(path, _REWRITE)
    except OSError:
        return
    try:
        os.pwrite(fd, payload, 0)
        if turn is not None:
            os.ftruncate(fd, len(payload))
    except OSError:
        pass
    finally:
        os.close(fd)


def give_back(name: str, me: Owner) -> None:
    """Remove the turn of lock ``name`` (the caller found it is its own).

    Retried while the share reports it busy (other waiters read it), for as long as
    it is still this process's: a turn left behind would hold everyone else off for
    the rest of its `TURN_TTL`.
    """

    def still_mine() -> bool:
        turn = look(name, me)
        return turn is not None and turn.mine

    with contextlib.suppress(OSError):
        unlink_lock_file(name + TURN_SUFFIX, still_mine, patience=TURN_TTL)
