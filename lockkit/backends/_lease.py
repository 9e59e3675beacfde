"""Leases of lock files: when a lock taken now expires, and the ``O_EXCL`` lease.

``excl``'s attempt is `create_lease`; ``hardlink`` uses it too where ``link()`` is
refused, and every file backend stamps its expiry with `expiry`.
"""

from __future__ import annotations

import datetime as dt

from lockkit._info import Lease
from lockkit.backends._lockfile import create_held
from lockkit.backends._payload import encode_payload

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from lockkit._info import Owner
    from lockkit.backends._file import FileBackend

__all__ = ["create_lease", "expiry"]


def expiry(ttl: float | None) -> dt.datetime | None:
    """The UTC moment a lock taken now with ``ttl`` seconds expires, or ``None``."""
    if ttl is None:
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)


def create_lease(
    backend: FileBackend, name: str, directory: str, owner: Owner, ttl: float | None
) -> Lease | None:
    """Create lock file ``name`` with ``O_CREAT|O_EXCL`` for ``backend``; ``None`` if held.

    ``excl``'s attempt, and ``hardlink``'s where ``link()`` is refused.
    """
    expires = expiry(ttl)
    held = create_held(name, encode_payload(owner, backend.name, expires))
    if held is None:
        return None
    handle = backend.keep_open(held, directory)
    return Lease(name, backend.name, owner, expires=expires, ttl=ttl, handle=handle)
