"""Turns: a fair share of a lock for waiters on other clients of a shared filesystem.

Waiters on the holder's own client are woken by inotify the moment the lock file goes;
waiters on another client cannot be (inotify sees only this kernel's changes), so they
poll, and under steady contention they lose nearly every race to the woken ones. In a
run of six processes on two sshfs mounts, 1 hand-off in 259 went from one client to the
other: the second client waited until the first had finished.

So a waiter whose waits have ended `TURN_AFTER` times without seeing a release, on a
filesystem other hosts may share, claims the lock's next **turn**: it creates
``<lock>.turn`` holding a payload (backend ``"turn"``, a claim token of its own, an
expiry `TURN_TTL` ahead) and renews it while it waits. While a live turn belongs to
another waiter (another process, or another thread or task of this one), attempts on
that filesystem step aside (report busy without creating the lock file), so the lock
falls to the claimant at its next poll; the claimant gives the turn back once it has the
lock, or when it stops waiting.

What a waiter knows of its own turn (its claim token, how many of its waits saw no
release) is a `TurnState` kept on its `lockkit.spec.Waiter`, which the core makes per
acquisition: so a turn belongs to one acquisition (one thread or task), never to a
whole process, and worker threads of an asyncio task see and update the same state.

A turn never decides who holds the lock (the lock file does): it only decides who tries.
A turn that is stale, forged, unreadable or unknown to the program (an older lockkit,
OpenClaw) can therefore delay an acquisition, never grant a lock twice. Only a regular
file with a ``"turn"`` payload is a turn: anything else at that name (another lock's
file, a FIFO, a directory) is never read past its type, never removed, and only disables
turns for that lock. An expiry more than ``2 * TURN_TTL`` ahead means nothing. Turns
assume the hosts' clocks agree to well within `TURN_TTL`; where they do not, turns stop
working (fairness is lost), and locking stays correct.
"""

from __future__ import annotations

import datetime as dt
import os
import stat

from lockkit._info import Owner
from lockkit._value import evolve, frozen
from lockkit.backends._lockfile import file_identity, read_lock_file, unlink_lock_file
from lockkit.backends._paths import aux_path
from lockkit.backends._payload import decode_payload, encode_payload
from lockkit.errors import LockError

__all__ = [
    "TURN_AFTER",
    "TURN_POLL",
    "TURN_SUFFIX",
    "TURN_TTL",
    "Turn",
    "TurnState",
    "claim",
    "give_back",
    "look",
    "turn_path",
]

TURN_SUFFIX = ".turn"
"""The turn of lock file ``x.lock`` is ``x.lock.turn`` (shortened for long names, see
`turn_path`)."""
TURN_TTL = 1.0
"""Seconds a turn lives unless its claimant renews it."""
TURN_AFTER = 2
"""Waits that ended without seeing a release (a timeout: about 30 ms of them) after which
a waiter claims the next turn. A wait that inotify ended (a release on this client) does
not count; a local waiter whose holder keeps the lock past a wait's bound does."""
TURN_POLL = 0.02
"""Seconds between the attempts of a waiter that holds the turn (the others step aside,
so the lock stays free until it looks)."""
TURN_BACKEND = "turn"
"""The ``backend`` field of a turn's payload: what tells a turn from any other file."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC
# Read-write, not write-only: smbnetfs fails ftruncate() of a write-only descriptor with
# EIO after 4 s (the lock file's own refresh opens it the same way).
_REWRITE = os.O_RDWR | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)


class TurnState:
    """What one waiting acquisition knows of its turns of one lock.

    Kept on the acquisition's waiter (`lockkit.backends._file.FileWaiter`); used from
    one thread or task at a time.

    Attributes:
        unnoticed: Waits that ended without seeing a release.
        token: The claim token of this waiter's turn, once it claimed one.
    """

    __slots__ = ("token", "unnoticed")

    def __init__(self) -> None:
        """Start with no waits counted and no claim."""
        self.unnoticed = 0
        self.token = ""

    def waited(self, *, noticed: bool) -> None:
        """Count one wait; ``noticed`` if a release ended it (those do not count)."""
        if not noticed:
            self.unnoticed += 1

    def due(self) -> bool:
        """Whether this waiter holds, or has waited long enough to claim, the next turn."""
        return bool(self.token) or self.unnoticed >= TURN_AFTER

    def claim_token(self) -> str:
        """This waiter's claim token, made on first use."""
        if not self.token:
            self.token = os.urandom(16).hex()
        return self.token


def turn_path(name: str) -> str:
    """The turn file's path for lock ``name``; it always fits the name limit."""
    return aux_path(name, TURN_SUFFIX)


@frozen
class Turn:
    """A live turn of a lock.

    Attributes:
        mine: Whether the waiter that looked (by its claim token) holds it.
        left: Seconds until it expires unless renewed.
        identity: The turn file's version, as `file_identity` gives it.
    """

    mine: bool
    left: float
    identity: tuple[int, int]


def _read(name: str) -> tuple[Owner | None, dt.datetime | None, tuple[int, int]] | None:
    """The turn file's claimant, expiry and version, if a turn file is there."""
    try:
        found = read_lock_file(turn_path(name))
    except (OSError, LockError):
        return None  # unreadable, busy, not a regular file: no turn anyone can rely on
    if found is None:
        return None
    payload = decode_payload(found[0])
    if payload.backend != TURN_BACKEND:
        return None  # another lock's file, or garbage: none of our business
    return payload.owner, payload.expires, file_identity(found[1])


def _left(expires: dt.datetime | None) -> float:
    if expires is None:
        return 0.0
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    return left if 0 < left <= 2 * TURN_TTL else 0.0  # expired or from the future: 0


def look(name: str, token: str = "") -> Turn | None:
    """The live turn of lock ``name``, if there is a believable one.

    It is ``mine`` when it carries ``token``, the looking waiter's claim token (``""``
    for a waiter without one: then no turn is its own).
    """
    found = _read(name)
    if found is None:
        return None
    owner, expires, identity = found
    left = _left(expires)
    if owner is None or not left:
        return None
    return Turn(mine=bool(token) and owner.token == token, left=left, identity=identity)


def claim(name: str, token: str, turn: Turn | None) -> None:
    """Claim (or renew) the next turn of lock ``name`` with this waiter's ``token``.

    ``turn`` is what `look` just found; a turn of another waiter is left alone. A dead
    turn file (expired, or from the future) is replaced; anything that is not a turn
    file is never touched. Failures are ignored: a turn is a courtesy, and a waiter
    without one still polls.
    """
    if turn is not None and (not turn.mine or turn.left > TURN_TTL / 2):
        return  # someone else's; or ours, with time enough left not to renew it yet
    path = turn_path(name)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TURN_TTL)
    payload = encode_payload(evolve(Owner.current(), token=token), TURN_BACKEND, expires)
    try:
        if turn is None:
            _remove_dead_turn(name)
            fd = os.open(path, _CREATE, 0o644)
        else:
            fd = os.open(path, _REWRITE)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        # Rewritten only while it is still a plain file of one link (`look` found our
        # token in it): never through a FIFO or a hard link planted at the turn's name.
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            os.pwrite(fd, payload, 0)
            if turn is not None:
                os.ftruncate(fd, len(payload))
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_dead_turn(name: str) -> None:
    """Remove the turn file of lock ``name`` if it is a turn that has expired."""
    found = _read(name)
    if found is None:
        return
    owner, expires, identity = found
    if owner is not None and _left(expires):
        return  # live: not ours to remove

    def unchanged() -> bool:
        again = _read(name)
        return again is not None and again[2] == identity

    if unchanged():
        try:  # noqa: SIM105 - contextlib is not part of a first lock
            unlink_lock_file(turn_path(name), unchanged, patience=0)
        except OSError:
            pass


def give_back(name: str, token: str, *, patience: float = 0.0) -> bool:
    """Remove the turn of lock ``name`` claimed with ``token``, if it is still there.

    Retried while a share reports the file busy (other waiters read it), for up to
    ``patience`` seconds and for as long as it is still that waiter's turn.

    Returns:
        ``True`` when no turn of ``token`` is left (removed, or never there).
    """
    if not token:
        return True

    def still_mine() -> bool:
        turn = look(name, token)
        return turn is not None and turn.mine

    if not still_mine():
        return True
    try:
        removed = unlink_lock_file(turn_path(name), still_mine, patience=patience)
    except OSError:
        return False  # still busy, or failing: it may be ours yet
    # Not removed: gone, no longer ours, or (with no patience) busy on a share, where
    # it is still ours and `FileWaiter.close` must retry.
    return removed or not still_mine()
