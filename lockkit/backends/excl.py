"""The ``excl`` backend: the lock is a file created with ``O_CREAT|O_EXCL``.

Works wherever exclusive create is atomic: local filesystems, NFSv3+, SMB/CIFS, 9p,
virtiofs, exFAT and most FUSE filesystems. The file holds the owner payload, so any
process can tell who holds the lock. It is not released by the kernel when the
holder dies; stale-lock rules recover from that.
"""

from __future__ import annotations

import os

from lockkit.backends._file import FileBackend
from lockkit.backends._lease import create_lease, expiry
from lockkit.backends._lockfile import create_exclusive, unlink_lock_file
from lockkit.backends._paths import errname
from lockkit.spec import Support, _builtin_hookimpl

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import ClassVar

    from lockkit._info import Lease, Owner
    from lockkit.spec import Backend

__all__ = ["ExclBackend", "create_lease", "expiry", "lockkit_register_backends"]


class ExclBackend(FileBackend):
    """Lock files created atomically with ``O_CREAT|O_EXCL|O_NOFOLLOW``."""

    name: ClassVar[str] = "excl"
    description: ClassVar[str] = "lock file created with O_CREAT|O_EXCL; works on almost any fs"

    def attempt(self, name: str, directory: str, owner: Owner, ttl: float | None) -> Lease | None:
        """Create the lock file exclusively; ``None`` if it exists."""
        return create_lease(self, name, directory, owner, ttl)

    @classmethod
    def probe(cls, location: str) -> Support:
        """Create a file twice with ``O_EXCL`` in ``location``: the second must fail."""
        try:
            import tempfile  # noqa: PLC0415 - probe path only

            fd, probe = tempfile.mkstemp(prefix=".lockkit-probe-", dir=location)
        except OSError as exc:
            return Support(ok=False, reason=f"cannot create files: {errname(exc)}")
        os.close(fd)
        try:
            again = create_exclusive(probe, b"")
        except OSError as exc:
            return Support(ok=False, reason=f"O_EXCL create failed: {errname(exc)}")
        finally:
            unlink_lock_file(probe)
        if again is not None:
            return Support(ok=False, reason="O_EXCL create of an existing file succeeded")
        return Support(ok=True, preference=50, reason="O_CREAT|O_EXCL is exclusive")


@_builtin_hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``excl`` backend."""
    return [ExclBackend]
