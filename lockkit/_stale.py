"""When is a lock stale? The rules, in the order the architecture gives them.

A verdict is computed from a `LockInfo` alone, so every backend that can describe its
holder gets the same rules, and ``lockkit status`` can explain which rule decided.

| order | rule | verdict |
| --- | --- | --- |
| 0 | held shared by readers the backend does not name (``filelock``) | live |
| 1 | unreadable payload (empty, truncated, not JSON) younger than the write grace | live |
| 2 | unreadable payload older than the write grace (10 s, by mtime) | stale |
| 3 | same machine view, holder pid dead (or a zombie) | stale |
| 4 | same machine view, pid alive but its start time differs (pid reused) | stale |
| 5 | ``expires`` has passed | stale |
| 6 | same machine view, holder alive | live |
| 7 | another machine view, no ``expires``, older than the ``stale`` setting | stale |
| 8 | another machine view, no ``expires`` otherwise | live: never broken automatically |
| 9 | another machine view, ``expires`` in the future | live |

Rules 3-4 need a *same machine view*: equal boot id and pid namespace. A payload with
no boot id and no host (OpenClaw's ``{pid, createdAt, starttime}`` shapes) was written
by a local process and is judged as local; one with a host but no boot id is local
when the host names match.
"""

from __future__ import annotations

import datetime as dt

from lockkit._info import LockInfo, Owner, pid_alive, process_identity, read_start_time
from lockkit._value import frozen

__all__ = ["WRITE_GRACE", "Verdict", "judge", "machine_view"]

WRITE_GRACE = 10.0
"""Seconds an unreadable lock file is given to be a write in progress."""


@frozen
class Verdict:
    """Whether a lock is stale, and the rule that decided.

    Attributes:
        stale: ``True`` when the lock may be broken.
        rule: A short identifier of the deciding rule (``pid-dead``, ``expired``...).
        reason: One human sentence, shown by ``lockkit status``.
        view: ``"same"``, ``"other"`` or ``"unknown"`` machine view of the holder.
    """

    stale: bool
    rule: str
    reason: str
    view: str = "unknown"


def machine_view(owner: Owner) -> str:
    """``"same"`` when ``owner``'s pid can be checked from here, else ``"other"``."""
    me = process_identity()
    here = Owner(pid=me.pid, host=me.host, boot_id=me.boot_id, pid_ns=me.pid_ns)
    return "same" if here.same_machine_view(owner) else "other"


def judge(
    info: LockInfo, *, now: dt.datetime | None = None, stale_after: float | None = None
) -> Verdict:
    """Apply the stale rules to ``info``.

    Args:
        info: What the backend reports about the holder.
        now: The current time (for tests).
        stale_after: The ``stale`` setting: a lock held from another machine without an
            expiry and older than this many seconds is stale (rule ``older-than-stale``).
    """
    now = now or dt.datetime.now(dt.UTC)
    owner = info.owner
    if owner is None:
        if info.shared:
            # flock records no readers; the kernel frees each one's lock when it dies.
            reason = "held shared by readers (the backend does not record who)"
            return Verdict(stale=False, rule="shared", reason=reason)
        return _unreadable(info)
    view = machine_view(owner)
    if view == "same" and (dead := _dead_locally(owner)) is not None:
        return dead
    if info.expires is not None and info.expires <= now:
        late = (now - info.expires).total_seconds()
        reason = f"expired {late:.1f} s ago (ttl not renewed)"
        return Verdict(stale=True, rule="expired", reason=reason, view=view)
    if view == "same":
        reason = f"holder pid {owner.pid} is running"
        return Verdict(stale=False, rule="alive", reason=reason, view=view)
    return _remote(info, owner, now, stale_after)


def _unreadable(info: LockInfo) -> Verdict:
    age = info.age if info.age is not None else 0.0
    problem = info.problem or "unreadable payload"
    if age < WRITE_GRACE:
        return Verdict(
            stale=False,
            rule="write-grace",
            reason=f"{problem}, {age:.1f} s old: may be a write in progress "
            f"(grace {WRITE_GRACE:g} s)",
        )
    return Verdict(
        stale=True,
        rule="malformed",
        reason=f"{problem} and {age:.1f} s old (older than the {WRITE_GRACE:g} s write grace)",
    )


def _dead_locally(owner: Owner) -> Verdict | None:
    if not pid_alive(owner.pid):
        reason = f"holder pid {owner.pid} is not running"
        return Verdict(stale=True, rule="pid-dead", reason=reason, view="same")
    if owner.start_time is not None:
        actual = read_start_time(owner.pid)
        if actual is not None and actual != owner.start_time:
            return Verdict(
                stale=True,
                rule="pid-reused",
                reason=f"pid {owner.pid} is alive but started at tick {actual}, not "
                f"{owner.start_time}: the holder died and its pid was reused",
                view="same",
            )
    return None


def _remote(info: LockInfo, owner: Owner, now: dt.datetime, stale_after: float | None) -> Verdict:
    if info.expires is not None:
        left = (info.expires - now).total_seconds()
        reason = f"held from another machine, expires in {left:.1f} s"
        return Verdict(stale=False, rule="not-expired", reason=reason, view="other")
    if stale_after is not None and (info.age or 0.0) > stale_after:
        reason = (
            f"held from another machine ({owner.describe()}) for {info.age or 0.0:.1f} s, "
            f"longer than the stale setting ({stale_after:g} s)"
        )
        return Verdict(stale=True, rule="older-than-stale", reason=reason, view="other")
    return Verdict(
        stale=False,
        rule="other-host",
        reason=f"held from another machine ({owner.describe()}) without an expiry: never"
        " broken automatically; use `lockkit break --force` if you know it is dead",
        view="other",
    )
