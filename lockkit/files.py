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

from lockkit._notify import wait_for_removal
from lockkit.backends._breaker import breaker
from lockkit.backends._lease import expiry
from lockkit.backends._lockfile import (
    create_exclusive,
    inspect_file,
    lock_info,
    read_lock_file,
    remove_if_ours,
)
from lockkit.backends._paths import lock_path
from lockkit.backends._payload import Payload, decode_payload, encode_payload

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
