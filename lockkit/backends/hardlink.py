"""The ``hardlink`` backend: write a temp file, ``link()`` it to the lock path.

The classic NFS-safe recipe: the payload is complete before the lock becomes visible,
and a lost reply on NFS is detected by the temp file's link count reaching 2.

Many filesystems refuse ``link()`` (SMB/CIFS, some NFS setups, virtiofs/9p, exFAT,
many FUSE stacks) with ENOTSUP/EOPNOTSUPP/EPERM/ENOSYS/EMLINK/EXDEV. Where that
happens this backend falls back to ``excl`` for that directory, warns once per device
per process, and stays correct, instead of crashing the application as a bare
``link()`` lock does.
"""

from __future__ import annotations

import _thread
import errno
import os

from lockkit._info import Lease, Owner
from lockkit._log import log
from lockkit.backends._file import FileBackend
from lockkit.backends._lease import create_lease, expiry
from lockkit.backends._lockfile import carries_token, create_held, unlink_lock_file
from lockkit.backends._paths import aux_path, errname
from lockkit.backends._payload import encode_payload
from lockkit.backends.excl import ExclBackend
from lockkit.errors import LockkitWarning
from lockkit.spec import Support, _builtin_hookimpl

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import ClassVar

    from lockkit.spec import Backend

__all__ = ["LINK_UNSUPPORTED", "HardlinkBackend", "lockkit_register_backends"]


LINK_UNSUPPORTED = frozenset(
    {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
)
"""Errors from ``link()`` that mean "this filesystem cannot do hard links here"."""
_MAX_PREFIXES = 1024
_TOKEN_ROOM = 32  # a token's length: 128 bits in hex


class HardlinkBackend(FileBackend):
    """Temp file + ``link()`` + link-count check, falling back to ``excl`` where needed."""

    name: ClassVar[str] = "hardlink"
    description: ClassVar[str] = (
        "temp file + link(), the NFS-safe recipe; falls back to excl where link() fails"
    )

    def __init__(self) -> None:
        """Start with no knowledge of which directories refuse ``link()``."""
        # Directories known to refuse link(), shared by all locks using this backend
        # instance, so the fallback costs one failed link() per directory; the warning
        # is given once per device.
        self._no_link_dirs: set[str] = set()
        self._warned: set[int] = set()
        self._guard = _thread.allocate_lock()
        # Per lock path: its temp files' prefix (made once, not per attempt). Filled by
        # any thread; a dict set is atomic, and a race only repeats the work.
        self._temp_prefix: dict[str, str] = {}

    def attempt(self, name: str, directory: str, owner: Owner, ttl: float | None) -> Lease | None:
        """Link a complete temp file to the lock path; ``None`` if the lock exists."""
        if directory in self._no_link_dirs:
            return create_lease(self, name, directory, owner, ttl)
        expires = expiry(ttl)
        payload = encode_payload(owner, self.name, expires)
        temp_prefix = self._temp_prefix.get(name)
        if temp_prefix is None:
            temp_prefix = self._make_temp_prefix(name)
        temp = f"{temp_prefix}{owner.token}.tmp"
        held = create_held(temp, payload)
        if held is None:  # token collision: practically impossible, but never clobber
            return None
        try:
            linked = self._link(temp, name, owner.token)
        except _LinkRefused as refused:
            held.close()
            unlink_lock_file(temp)
            self._fall_back(directory, refused.error)
            return create_lease(self, name, directory, owner, ttl)
        except BaseException:
            held.close()
            unlink_lock_file(temp)
            raise
        if not linked:
            held.close()
            unlink_lock_file(temp)
            return None
        handle = self.keep_open(held, directory)
        try:
            try:
                unlink_lock_file(temp)
            except OSError:
                unlink_lock_file(temp)  # once more: a passing I/O error must not leave it
        except OSError as exc:
            # The lock is won: a temp file that stays busy must not orphan it.
            log.warning("lockkit: could not remove temp file %s: %s", temp, exc)
        # The descriptor (if kept) has the lock's inode open: the temp was its other name.
        return Lease(name, self.name, owner, expires=expires, ttl=ttl, handle=handle)

    def _link(self, temp: str, name: str, token: str) -> bool:
        """Link ``temp`` to ``name``; whether the lock file at ``name`` is now ours.

        Raises:
            _LinkRefused: This filesystem cannot make hard links here.
            OSError: Linking failed for another reason and the lock is not ours.
        """
        for attempt in range(2):
            try:
                os.link(temp, name)
            except FileExistsError:
                # NFS: a retransmitted link() whose first reply was lost fails with
                # EEXIST although it linked; the temp file's link count tells, or (where
                # the count is not reported) the token, if an earlier attempt erred.
                return _link_count(temp) == 2 or (attempt > 0 and carries_token(name, token))  # noqa: PLR2004
            except OSError as exc:
                if _link_count(temp) == 2 or carries_token(name, token):  # noqa: PLR2004
                    return True  # NFS: an error for a link() whose reply was lost
                if os.path.lexists(name):
                    # SFTP servers report an existing target as a generic failure,
                    # which sshfs turns into EPERM: the lock is someone else's.
                    return False
                if exc.errno not in LINK_UNSUPPORTED:
                    raise
                if attempt:
                    raise _LinkRefused(exc) from None
                # Refused with no lock file there: once more, in case a lock file that
                # caused the error was removed in between (then the link succeeds).
            else:
                return True
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _make_temp_prefix(self, name: str) -> str:
        """The start of lock ``name``'s temp files' paths, cached."""
        # Room for the token and ".tmp": a long lock name gets a shortened temp name.
        placeholder = "." + "x" * _TOKEN_ROOM + ".tmp"
        prefix = aux_path(name, placeholder, prefix=".")[: -len(placeholder)] + "."
        if len(self._temp_prefix) >= _MAX_PREFIXES:
            self._temp_prefix.clear()
        self._temp_prefix[name] = prefix
        return prefix

    def _fall_back(self, directory: str, exc: OSError) -> None:
        try:
            device = os.stat(directory).st_dev  # noqa: PTH116
        except OSError:
            device = -1
        with self._guard:
            self._no_link_dirs.add(directory)
            first = device not in self._warned
            self._warned.add(device)
        if first:
            message = (
                f"link() is not supported in {directory} ({errname(exc)}); the hardlink "
                "backend falls back to O_CREAT|O_EXCL on this filesystem"
            )
            log.warning("%s", message)
            import warnings  # noqa: PLC0415 - only to warn (warnings is not preloaded)

            warnings.warn(message, LockkitWarning, stacklevel=5)

    def falls_back_in(self, directory: str) -> bool:
        """Whether this backend has fallen back to ``excl`` for ``directory``."""
        return directory in self._no_link_dirs

    @classmethod
    def probe(cls, location: str) -> Support:
        """Link a temp file in ``location`` and check the link count, then clean up."""
        excl = ExclBackend.probe(location)
        if not excl.ok:
            return excl
        import tempfile  # noqa: PLC0415 - probe path only

        fd, source = tempfile.mkstemp(prefix=".lockkit-probe-", dir=location)
        os.close(fd)
        target = source + ".link"
        try:
            os.link(source, target)
        except OSError as exc:
            reason = f"link() failed: {errname(exc)}; falls back to O_EXCL here"
            return Support(ok=True, preference=10, reason=reason)
        else:
            count = os.lstat(source).st_nlink
            unlink_lock_file(target)
            if count != 2:  # noqa: PLR2004
                reason = (
                    f"link() works but st_nlink stays {count} (not reported here); "
                    "the backend checks the lock file's token instead"
                )
                return Support(ok=True, preference=10, reason=reason)
        finally:
            unlink_lock_file(source)
        return Support(ok=True, preference=60, reason="link() works and st_nlink reaches 2")


class _LinkRefused(Exception):
    """``link()`` is refused by the filesystem (one of `LINK_UNSUPPORTED`)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _link_count(path: str) -> int:
    try:
        return os.lstat(path).st_nlink
    except OSError:
        return 0


@_builtin_hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``hardlink`` backend."""
    return [HardlinkBackend]
