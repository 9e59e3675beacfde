"""Lock files on disk: create, read, describe and remove them, never anyone else's.

Creation is ``O_CREAT|O_EXCL`` with the payload written before the lock counts as ours
(`create_held`); removal is by token or by the open inode, retried while a share reports
the file busy (EBUSY) and only while it is still the file to remove.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from lockkit._info import Lease, LockInfo
from lockkit.backends._paths import (
    BUSY,
    CREATE_FLAGS,
    NOT_A_FILE,
    READ_FLAGS,
    VANISHED,
    not_a_file_error,
    open_nofollow,
)
from lockkit.backends._payload import MAX_PAYLOAD, Payload, check_content, decode_payload
from lockkit.errors import BackendUnavailable

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TypeVar

    _T = TypeVar("_T")


def read_lock_file(path: str, *, dir_fd: int | None = None) -> tuple[bytes, os.stat_result] | None:
    """Read at most ``MAX_PAYLOAD + 1`` bytes of a lock file without following symlinks.

    Returns ``None`` when the file does not exist (the lock is free). With ``dir_fd``,
    the file is the one of that name in that directory (see `open_lock_directory`).

    Raises:
        InvalidLockName: A symlink sits at the lock path.
    """
    fd = _open_lock_file(path, dir_fd)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_a_file_error(path, st)
        chunks = []
        remaining = MAX_PAYLOAD + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        # On FUSE and network filesystems, an open file removed by another process can
        # make fstat/read fail with ENOENT or ESTALE: the lock vanished, so it is free.
        if exc.errno in VANISHED:
            return None
        raise
    finally:
        os.close(fd)
    return b"".join(chunks), st


BUSY_WAIT = 10.0
"""Seconds a removal (or a read) retries a lock file a share reports busy (EBUSY).

Through an SMB client a file cannot be removed while any descriptor, on any client,
has it open: a waiter reading the holder's payload blocks the holder's release for the
few milliseconds of its read. Retried with backoff from 1 ms to 50 ms.
"""


def _busy_delays(path: str, what: str, patience: float = BUSY_WAIT) -> Iterator[float]:
    """Backoff delays for retrying a busy ``path``; raises once ``patience`` has passed."""
    deadline = time.monotonic() + patience
    delay = 0.001
    while time.monotonic() < deadline:
        yield delay
        delay = min(delay * 2, 0.05)
    raise BackendUnavailable(
        f"cannot {what} {path!r}: the filesystem has reported it busy (EBUSY) for "
        f"{patience:g} s. On SMB shares a file cannot be removed while any process on any "
        "client has it open, nor opened while its removal is pending: find the process "
        "that keeps it open"
    )


def unlink_lock_file(
    path: str,
    still_ours: Callable[[], bool] | None = None,
    *,
    patience: float = BUSY_WAIT,
    dir_fd: int | None = None,
) -> bool:
    """Remove ``path``; ``False`` when it was gone, or stopped being the file to remove.

    While the filesystem reports the file busy (EBUSY: an SMB client cannot remove a file
    that any descriptor has open), removal is retried with backoff for up to
    ``patience`` seconds. A lock file can be replaced between two attempts (broken and
    taken, or renewed), so before each retry ``still_ours()`` must confirm that the file
    at ``path`` is still the one to remove; without it, ``path`` must be a name only this
    process uses (a temp file). With ``dir_fd``, the name is removed from that very
    directory (see `open_lock_directory`).

    Raises:
        BackendUnavailable: Still busy after ``patience`` seconds.
    """
    removed = _try_unlink(path, dir_fd)
    if removed is not None or patience <= 0:
        return bool(removed)

    def unlink(at: str) -> bool:
        _unlink_at(at, dir_fd)
        return True

    return bool(_retry_while_busy(path, "remove", unlink, patience=patience, still_ours=still_ours))


def _unlink_at(path: str, dir_fd: int | None) -> None:
    if dir_fd is None:
        os.unlink(path)  # noqa: PTH108
    else:
        os.unlink(os.path.basename(path), dir_fd=dir_fd)  # noqa: PTH119


def _try_unlink(path: str, dir_fd: int | None = None) -> bool | None:
    """Unlink ``path``: ``True`` if removed, ``False`` if gone, ``None`` if busy."""
    try:
        _unlink_at(path, dir_fd)
    except OSError as exc:
        if exc.errno in VANISHED:
            return False
        if exc.errno not in BUSY:
            raise
        return None
    return True


def carries_token(path: str, token: str) -> bool:
    """Whether the lock file at ``path`` exists and carries ``token``."""
    found = read_lock_file(path)
    if found is None:
        return False
    owner = decode_payload(found[0]).owner
    return owner is not None and owner.token == token


def _open_lock_file(path: str, dir_fd: int | None = None) -> int | None:
    """Open a lock file for `read_lock_file`; ``None`` when there is none."""
    try:
        return open_nofollow(path, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in NOT_A_FILE:
            raise not_a_file_error(path) from None  # a socket (ENXIO)
        if exc.errno not in BUSY:
            raise
    # An SMB server refuses to open a file whose removal is pending; the removal
    # completes within moments, so look again until it has.
    return _retry_while_busy(path, "open", lambda at: open_nofollow(at, READ_FLAGS, dir_fd=dir_fd))


def _retry_while_busy(
    path: str,
    what: str,
    call: Callable[[str], _T],
    *,
    patience: float = BUSY_WAIT,
    still_ours: Callable[[], bool] | None = None,
) -> _T | None:
    """``call(path)`` again, with backoff, while it fails with EBUSY.

    The caller has made the first attempt (so the fast path pays for no retry loop).
    Before each retry, ``still_ours()`` (if given) must confirm that ``path`` is still
    the file to act on.

    Returns:
        What ``call`` returned, or ``None`` once ``path`` is gone or no longer ours.

    Raises:
        BackendUnavailable: Still busy after ``patience`` seconds.
    """
    for delay in _busy_delays(path, what, patience):
        time.sleep(delay)
        if still_ours is not None and not still_ours():
            return None
        try:
            return call(path)
        except OSError as exc:
            if exc.errno in VANISHED:
                return None
            if exc.errno not in BUSY:
                raise
    raise AssertionError  # pragma: no cover - _busy_delays raises when it runs out


def inspect_file(path: str, backend: str, *, dir_fd: int | None = None) -> LockInfo | None:
    """Describe the holder recorded in the lock file at ``path``, or ``None`` if free.

    Raises:
        InvalidLockName: Something that is not a lock file sits there (`check_content`).
    """
    found = read_lock_file(path, dir_fd=dir_fd)
    if found is None:
        return None
    data, st = found
    check_content(path, data)
    return lock_info(path, backend, decode_payload(data), st)


def file_identity(st: os.stat_result) -> tuple[int, int]:
    """One version of a lock file, for `break_lock`: its mtime (ns) and size.

    Together with the token in the payload this tells a lock apart from a newer one
    and from a renewed one (a TTL refresh rewrites the file). Inode numbers are left
    out on purpose: ext4 reuses them at once (the token covers that), and FUSE
    filesystems without stable inodes (exfat-fuse, many others) hand out a new number
    for the same file after the kernel forgets it, which would make a holder fail to
    recognise its own lock.
    """
    return (st.st_mtime_ns, st.st_size)


def lock_info(path: str, backend: str, payload: Payload, st: os.stat_result) -> LockInfo:
    """Combine a decoded payload and the file's stat into a `LockInfo`.

    The backend named in the payload wins over ``backend`` (the one inspecting): a
    lock written by ``hardlink`` is reported as such when ``excl`` reads it.
    """
    owner = payload.owner
    if owner is not None and owner.created is not None:
        age = max(0.0, time.time() - owner.created.timestamp())
    else:
        age = max(0.0, time.time() - st.st_mtime)
    return LockInfo(
        name=path,
        backend=payload.backend or backend,
        owner=owner,
        expires=payload.expires,
        identity=file_identity(st),
        age=age,
        problem=payload.problem,
    )


def remove_if_ours(lease: Lease) -> bool:
    """Unlink the lock file if it still is the one ``lease`` created; never anyone else's.

    Ownership is the random 128-bit token in the payload, unique to one acquisition.
    Not the inode: ext4 reuses inode numbers at once, and FUSE filesystems may change
    them under a file that stays put. A removal retried because the file was busy
    checks the token again first.
    """
    name, token = lease.name, lease.token
    if not carries_token(name, token):
        return False
    return unlink_lock_file(name, lambda: carries_token(name, token))


class HeldFile:
    """The open descriptor of a lock file this process created, kept while it holds it.

    Kept in `Lease.handle`, it makes release cheap and exact: the file at the lock path
    is ours when it is the very inode this descriptor has open (an open inode cannot
    be freed and its number reused, and FUSE keeps its number while it is open), so
    release compares two ``stat`` results instead of reading and parsing the payload.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        """Take ownership of ``fd``."""
        self.fd = fd

    def close(self) -> None:
        """Close the descriptor once; later calls do nothing."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        """Close a descriptor whose lease was dropped without a release."""
        if self.fd >= 0:  # every released lease: nothing to do, so no context manager
            try:  # noqa: SIM105 - contextlib is not part of a first lock
                self.close()
            except OSError:
                pass


def create_held(path: str, payload: bytes) -> HeldFile | None:
    """Create ``path`` with ``O_CREAT|O_EXCL``, write ``payload``, keep it open.

    The uncontended fast path of the file backends: two system calls to acquire.

    Once the payload is written, the file at ``path`` must still be the one created
    (`_still_created`): a process paused between the create and the write (past the
    write grace) may find its empty file broken as malformed, and taken by another
    process. It then reports busy, and removes nothing.

    Returns:
        The open file, or ``None`` when the file already exists (or no longer is ours).

    Raises:
        InvalidLockName: A symlink sits at the path.
        OSError: Creating or writing failed; no half-written lock is left behind.
    """
    try:
        fd = open_nofollow(path, CREATE_FLAGS)
    except FileExistsError:
        return None
    except OSError as exc:
        if exc.errno in BUSY:
            return None  # SMB: an existing file whose removal is pending
        if exc.errno != errno.EPERM:
            raise
        # An SFTP server answers an exclusive create of an existing file with a generic
        # failure, which sshfs reports as EPERM: busy if the file is there.
        if os.path.lexists(path):
            return None
        try:
            fd = open_nofollow(path, CREATE_FLAGS)
        except FileExistsError:
            return None
        except OSError as again:
            if again.errno == errno.EPERM and os.path.lexists(path):
                return None
            raise
    return _fill_created(fd, path, payload)


def _fill_created(fd: int, path: str, payload: bytes) -> HeldFile | None:
    """Write ``payload`` into the file ``fd`` just created at ``path``; see `create_held`."""
    try:
        write_all(fd, payload)
        ours = _still_created(fd, path, payload)
    except BaseException:
        # The file is ours and incomplete: remove it rather than leave a lock no one holds
        # (retried only while it is still the file we created).
        mine = os.fstat(fd)
        os.close(fd)
        unlink_lock_file(path, lambda: _same_file(path, mine))
        raise
    if not ours:
        os.close(fd)  # broken while we were paused: whatever is there now is not ours
        return None
    return HeldFile(fd)


def _still_created(fd: int, path: str, payload: bytes) -> bool:
    """Whether the file at ``path`` is still the one ``fd`` created, holding ``payload``.

    One ``lstat`` on the fast path: the inode at the path is the open one, still linked
    (an open inode cannot be freed, so its number cannot have been reused). Where they
    differ (a filesystem that numbers a file anew, or one that reports no link count),
    the content decides: ``payload`` carries a token no other file has.
    """
    mine = os.fstat(fd)
    try:
        there = os.lstat(path)
    except OSError as exc:
        if exc.errno in VANISHED:
            return False
        raise
    if mine.st_nlink > 0 and mine.st_ino == there.st_ino and mine.st_dev == there.st_dev:
        return True
    found = read_lock_file(path)
    return found is not None and found[0] == payload


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        there = os.lstat(path)
    except OSError:
        return False
    return (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino)


def remove_held(lease: Lease) -> bool:
    """Unlink the lock file if it is the inode ``lease.handle`` (a `HeldFile`) has open.

    When the inode at the path differs (the lock was broken and taken by another
    process, or a filesystem renumbers even open files), the token in the payload
    decides, as in `remove_if_ours`.
    """
    held: HeldFile = lease.handle
    name = lease.name
    if held.fd < 0:
        return remove_if_ours(lease)  # a retry after a release that failed midway
    try:
        mine = os.fstat(held.fd)
        there = os.lstat(name)
    except BaseException as exc:
        held.close()
        if isinstance(exc, OSError) and exc.errno in VANISHED:
            return False  # removed (by a breaker, or on NFS by another client)
        raise
    # Closed before the unlink: Windows cannot remove a file that is open.
    held.close()
    if mine.st_nlink > 0 and mine.st_ino == there.st_ino and mine.st_dev == there.st_dev:
        return unlink_lock_file(name, lambda: carries_token(name, lease.token))
    return remove_if_ours(lease)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def create_exclusive(path: str, payload: bytes) -> tuple[int, int] | None:
    """Create ``path`` with ``O_CREAT|O_EXCL`` and write ``payload`` into it.

    Returns:
        The new file's ``(st_dev, st_ino)``, or ``None`` when the file already exists.

    Raises:
        InvalidLockName: A symlink sits at the path.
        OSError: Creating or writing failed; no half-written lock is left behind.
    """
    held = create_held(path, payload)
    if held is None:
        return None
    try:
        st = os.fstat(held.fd)
    finally:
        held.close()
    return st.st_dev, st.st_ino
