"""Building blocks for file-based backend plugins: the same ones the built-ins use.

A plugin that keeps its lock on a filesystem should not copy lockkit's internals; it
uses these, so its lock files are readable by ``lockkit status`` and by OpenClaw, its
stale locks are recognised by the same rules, and its breaking is race-free:

* `lock_path`: validate a lock path (existing parent, no NUL, never a symlink).
* `encode_payload` / `decode_payload` / `Payload`: the JSON owner payload.
* `create_exclusive`: create a file with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and a payload.
* `read_lock_file`, `lock_info`, `inspect_file`: read a payload back as a `LockInfo`.
* `remove_if_ours`: remove a lock file only if it carries the lease's token.
* `breaker`: the short-lived lock that serialises stale-lock breaking.
* `expiry`: the expiry moment of a lock taken now with a ttl.
* `wait_for_removal`: sleep until a path is removed (inotify), bounded.

The core applies the stale rules itself: a plugin's ``inspect`` returns a `LockInfo`
and its ``break_lock`` removes exactly the holding it is given, under `breaker`.
"""

from __future__ import annotations

import os
import time

from lockkit import _notify
from lockkit.backends._file import (
    Payload,
    breaker,
    create_exclusive,
    decode_payload,
    encode_payload,
    inspect_file,
    lock_info,
    lock_path,
    read_lock_file,
    remove_if_ours,
)
from lockkit.backends.excl import expiry

__all__ = [
    "Payload",
    "breaker",
    "create_exclusive",
    "decode_payload",
    "encode_payload",
    "expiry",
    "inspect_file",
    "lock_info",
    "lock_path",
    "read_lock_file",
    "remove_if_ours",
    "wait_for_removal",
]


def wait_for_removal(path: str, deadline: float, attempt: int) -> bool:
    """Sleep until ``path`` (a file or directory) is removed, or a bounded time passes.

    Uses inotify where Linux offers it, with a bound that grows with ``attempt`` (up to
    0.2 s) for removals it cannot see (another host); elsewhere it polls with backoff.

    Returns:
        ``True`` when the removal was seen (or the path was already gone).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    bound = _notify.wait_bound(remaining, attempt)
    directory, name = os.path.split(path)
    woken = _notify.wait_for_event(
        directory,
        name,
        _notify.IN_DELETE | _notify.IN_MOVED_FROM,
        lambda: os.path.lexists(path),
        bound,
        attempt=attempt,
    )
    if woken is None:
        time.sleep(_notify.poll_delay(remaining, attempt))
        return False
    return woken
