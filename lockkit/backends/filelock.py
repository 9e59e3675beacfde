"""The ``filelock`` backend: OS file locks (``flock``) through the ``filelock`` package.

The kernel releases the lock when the holder dies, so there is never a stale lock to
recover. The lock file stays in place (unlinking a flock'ed file on release is a
well-known race); it holds the current holder's payload so ``inspect`` can name them.

Descriptors: contenders open the file read-only, so a failed attempt produces no
``IN_CLOSE_WRITE`` event. The holder opens a second, write-only descriptor for the
payload and closes it *after* unlocking; that close is the event waiters sleep on.
Both descriptors are closed on release; nothing is kept per lock object.

Shared (read) locks are ``flock(LOCK_SH)`` on the same file. Readers write nothing (the
file keeps the last exclusive holder's payload, which ``inspect`` then ignores), but
each opens the write-only descriptor too and closes it after unlocking, so a writer
waiting for readers is woken by the last of them like any other waiter.

flock on NFS is emulated with POSIX byte-range locks by Linux and works across hosts
only with a working lock manager; on SMB it depends on the mount options. Prefer
``excl`` or ``redis`` for locks shared between machines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading

from filelock import lock_descriptor, unlock_descriptor

from lockkit import _notify
from lockkit._info import Lease, LockInfo, Owner
from lockkit._log import log
from lockkit._value import evolve
from lockkit.backends._file import LocalIOBackend, WatchWaiter
from lockkit.backends._lease import expiry
from lockkit.backends._lockfile import lock_info
from lockkit.backends._paths import (
    errname,
    linked_file_error,
    lock_path,
    not_a_file_error,
    open_nofollow,
)
from lockkit.backends._payload import MAX_PAYLOAD, check_content, decode_payload, encode_payload
from lockkit.errors import InvalidLockName, LockError
from lockkit.spec import Backend, Capabilities, Support, _builtin_hookimpl

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import ClassVar

__all__ = ["FilelockBackend", "lockkit_register_backends"]


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO planted at the lock path must not wait for a writer (it is
# refused after the open instead); for regular files it changes nothing, flock included.
# O_NOCTTY: a terminal device there must not become our controlling terminal.
_SAFE = _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_OPEN_FLAGS = os.O_RDONLY | os.O_CREAT | _SAFE
_WRITE_FLAGS = os.O_WRONLY | _SAFE
_READ_FLAGS = os.O_RDONLY | _SAFE
# Opening a directory for writing (EISDIR) or a socket (ENXIO), or a FIFO without
# reader for writing (ENXIO): not a lock file.
_SPECIAL = frozenset({errno.EISDIR, errno.ENXIO})
# What flock reports for "held by someone else"; some filesystems say EACCES.
_CONTENTION = frozenset({errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK})


class FilelockBackend(LocalIOBackend):
    """Kernel-managed ``flock`` locks via the ``filelock`` package."""

    name: ClassVar[str] = "filelock"
    description: ClassVar[str] = "OS file lock (flock) via filelock; released when the holder dies"
    capabilities: ClassVar[Capabilities] = Capabilities(
        released_on_crash=True, shared=True, notify=True
    )

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Require a file path whose directory exists; return it absolute."""
        return lock_path(name)

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Take the flock without blocking, then record the payload.

        With ``shared``, take a shared flock and leave the payload alone: it belongs to
        exclusive holders, and several readers cannot write one file without tearing it.
        """
        fd, st = _open_own(name, _OPEN_FLAGS)
        try:
            locked = _lock_shared(fd) if shared else lock_descriptor(fd, blocking=False)
            if not locked:
                os.close(fd)
                return None
            # The payload goes through a second descriptor opened for writing: closing it
            # on release is the IN_CLOSE_WRITE event that wakes waiters. Readers open it
            # only for that event.
            wfd, wst = _open_own(name, _WRITE_FLAGS)
        except BaseException:
            os.close(fd)
            raise
        try:
            if (wst.st_dev, wst.st_ino) != (st.st_dev, st.st_ino):
                # Someone replaced the file between our open and the lock: the lock we
                # hold is on an orphaned inode. Let go and report busy; the next attempt
                # opens the new file.
                unlock_descriptor(fd)
                os.close(wfd)
                os.close(fd)
                return None
            expires = expiry(ttl)
            if not shared:
                _check_lock_content(name, fd, st)
                payload = encode_payload(owner, self.name, expires)
                os.pwrite(wfd, payload, 0)
                if st.st_size > len(payload):
                    # Only holders write the file, and we hold it: the size seen at
                    # the fstat above is still the size, so a payload at least that
                    # long replaces the old one whole and the truncate is skipped.
                    os.ftruncate(wfd, len(payload))
        except BaseException:
            unlock_descriptor(fd)
            os.close(wfd)
            os.close(fd)
            raise
        with _HELD_GUARD:
            _HELD.update({fd: owner.token, wfd: owner.token})
        return Lease(
            name,
            self.name,
            owner,
            expires=expires,
            identity=(st.st_dev, st.st_ino),
            handle=(fd, wfd),
        )

    def release(self, lease: Lease) -> bool:
        """Unlock, then close the write descriptor (waking waiters), then the lock one.

        The same for a shared lease: only this reader's flock is dropped. A lease
        released before (or in a forked child) answers ``False`` and touches nothing:
        its descriptor numbers may name another lease's files by now.
        """
        fd, wfd = lease.handle
        with _HELD_GUARD:
            if _HELD.get(fd) != lease.token:
                return False
            del _HELD[fd]
            _HELD.pop(wfd, None)
        try:
            unlock_descriptor(fd)
        except OSError as exc:
            # Closing drops the flock too (unless a forked child keeps a copy open), and
            # a retry must never close these numbers again: they may name other files
            # by then. So this release is final either way.
            log.warning("lockkit: unlocking %s failed (%s); closing it instead", lease.name, exc)
        finally:
            with contextlib.suppress(OSError):  # Linux frees the number even on error
                os.close(wfd)
            with contextlib.suppress(OSError):
                os.close(fd)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """Return the holder's payload if the flock is held, else ``None``.

        While readers hold it (a shared flock), the payload is an earlier writer's, so
        the report has ``shared=True`` and no owner: flock does not record readers.
        """
        try:
            fd, _ = _open_own(name, _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            if lock_descriptor(fd, blocking=False):
                unlock_descriptor(fd)
                return None
            st = os.fstat(fd)
            if _lock_shared(fd):
                # Busy for a writer, free for a reader: readers hold it.
                unlock_descriptor(fd)
                return LockInfo(name=name, backend=self.name, owner=None, shared=True)
            data = os.pread(fd, 64 * 1024 + 1, 0)
        finally:
            os.close(fd)
        info = lock_info(name, self.name, decode_payload(data), st)
        # The file's mtime is the last acquisition, not a write in progress: only the
        # payload's own creation time is a meaningful age here.
        return evolve(info, age=info.age if info.owner is not None else None)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """An OS lock cannot be broken from outside; the kernel frees it when its holder dies."""
        del name, expected
        return False

    def waiter(self, name: str) -> FilelockWaiter:
        """A `FilelockWaiter`: woken when a holder closes its write descriptor."""
        return FilelockWaiter(name)

    # -- asyncio: inline on local filesystems (see `inline_io`), else in a worker thread --

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """Nothing to break (see `break_lock`); answered without a thread."""
        return self.break_lock(name, expected)

    @staticmethod
    def _busy(name: str) -> bool:
        try:
            fd, _ = _open_own(name, _READ_FLAGS)
        except (OSError, LockError):
            return False  # gone, or not a lock file: the next attempt says which
        try:
            if lock_descriptor(fd, blocking=False):
                unlock_descriptor(fd)
                return False
            return True
        finally:
            os.close(fd)

    @classmethod
    def probe(cls, location: str) -> Support:
        """Check that two open file descriptions of one file exclude each other."""
        try:
            fd, path = tempfile.mkstemp(prefix=".lockkit-probe-", dir=location)
        except OSError as exc:
            return Support(ok=False, reason=f"cannot create files: {errname(exc)}")
        other = -1
        try:
            other = os.open(path, os.O_RDONLY | _CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                return Support(ok=False, reason="flock() does not exclude on this filesystem")
        except OSError as exc:
            return Support(ok=False, reason=f"flock() failed: {errname(exc)}")
        finally:
            if other >= 0:
                os.close(other)
            os.close(fd)
            os.unlink(path)  # noqa: PTH108
        from lockkit.backends._fsfacts import fstype_of, on_share  # noqa: PLC0415 - probe only

        if on_share(location):
            reason = (
                f"flock() excludes this client's processes only ({fstype_of(location)}): "
                "not other hosts'"
            )
        else:
            reason = "flock() excludes (within this host's kernel)"
        return Support(ok=True, preference=40, reason=reason)


class FilelockWaiter(WatchWaiter):
    """The waiter of `FilelockBackend`: woken by a holder's ``IN_CLOSE_WRITE``, bounded.

    Writers and readers wait the same way: every holder, shared or not, closes a write
    descriptor on release (after unlocking). A reader can find the lock "busy" when only
    readers hold it (`still_busy` asks for exclusive access); it then sleeps until the
    bound at worst, never wrongly. Contenders open the file read-only, so failed
    attempts wake nobody.
    """

    __slots__ = ()

    mask: ClassVar[int] = _notify.IN_CLOSE_WRITE

    def still_busy(self, path: str) -> bool:
        """Whether someone holds the flock of ``path`` (tried without blocking)."""
        return FilelockBackend._busy(path)  # noqa: SLF001 - the backend's own check


def _open_own(name: str, flags: int) -> tuple[int, os.stat_result]:
    """Open the lock file and prove it is only the lock's: a regular file of one link.

    Never blocks (a FIFO opens at once with ``O_NONBLOCK``), never follows a symlink, and
    refuses, before anything is locked, read or written: a FIFO, socket, device or
    directory, and a file with other names. With ``fs.protected_hardlinks=0`` (the
    kernel default) any user can hard-link a file they may not even read, say a
    root-owned 0600 file, to a lock path in a shared directory; writing the payload
    through that name would overwrite it. A lock file this backend created has one link.

    Raises:
        InvalidLockName: Not a regular file of one link, or a symlink.
        FileNotFoundError: Gone (only without ``O_CREAT``).
    """
    try:
        fd = open_nofollow(name, flags)
    except OSError as exc:
        if exc.errno in _SPECIAL:
            raise not_a_file_error(name) from None
        if exc.errno == errno.EACCES:
            # In a sticky directory the kernel may refuse to open someone else's file
            # (fs.protected_*): say what is there, if it is not a lock file.
            with contextlib.suppress(OSError):
                st = os.lstat(name)
                if not stat.S_ISREG(st.st_mode):
                    raise not_a_file_error(name, st) from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_a_file_error(name, st)
    if st.st_nlink > 1:
        os.close(fd)
        raise linked_file_error(name, st.st_nlink)
    if flags & (os.O_WRONLY | os.O_CREAT) and not _may_write(name, st):
        os.close(fd)
        raise InvalidLockName(
            f"{name!r} belongs to uid {st.st_uid}, in a sticky directory where anyone can "
            "create files: it is not provably a lock file of this user's, and lockkit does "
            "not write into it (as fs.protected_regular refuses it). Remove it, or keep "
            "locks in a directory only trusted users can write"
        )
    return fd, st


# Per directory: (sticky, owner uid); a directory's mode and owner rarely change.
_STICKY: dict[str, tuple[bool, int]] = {}


def _may_write(name: str, st: os.stat_result) -> bool:
    """Whether this process may write the payload into lock file ``st`` at ``name``.

    In a sticky directory (``/tmp``), only a file of this process's user, or of the
    directory's owner, as the kernel's ``fs.protected_regular`` rule has it; elsewhere,
    whoever could create a file in the directory is trusted by its permissions.
    """
    euid = os.geteuid()
    if st.st_uid == euid:
        return True
    directory = os.path.dirname(name)  # noqa: PTH120
    facts = _STICKY.get(directory)
    if facts is None:
        dst = os.stat(directory)  # noqa: PTH116
        facts = (bool(dst.st_mode & stat.S_ISVTX), dst.st_uid)
        if len(_STICKY) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _STICKY.clear()
        _STICKY[directory] = facts
    sticky, owner = facts
    return not sticky or st.st_uid == owner


def _check_lock_content(name: str, fd: int, st: os.stat_result) -> None:
    """Refuse to write the payload into a file that is not a lock file (`check_content`).

    One read of one byte for every lock file lockkit wrote (it starts with ``{``).

    Raises:
        InvalidLockName: Someone's data sits at the lock path (a file reached through a
            directory that was swapped, say): it is never overwritten.
    """
    if st.st_size == 0:
        return
    if st.st_size <= MAX_PAYLOAD and os.pread(fd, 1, 0) == b"{":
        return
    check_content(name, os.pread(fd, MAX_PAYLOAD + 1, 0))


_HELD: dict[int, str] = {}
"""The descriptors of every ``filelock`` lock this process holds (lock and write ones),
each with the token of the lease it belongs to."""
_HELD_GUARD = threading.Lock()


def _close_inherited() -> None:
    """In a forked child: close (never unlock) the descriptors of the parent's locks.

    A flock belongs to the open file description, which a fork shares: a child that
    kept its copy open would keep the parent's lock held after the parent died (a
    prefork server, a ``multiprocessing`` worker), even against the child's own
    acquire. Closing the copy leaves the parent's lock held while the parent lives;
    unlocking it would release the parent's lock.
    """
    global _HELD_GUARD  # noqa: PLW0603 - another thread of the parent may have held it
    _HELD_GUARD = threading.Lock()
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


def _lock_shared(fd: int) -> bool:
    """Take a shared flock on ``fd`` without blocking; ``False`` when a writer holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENTION:
            return False
        raise
    return True


@_builtin_hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``filelock`` backend."""
    return [FilelockBackend]
