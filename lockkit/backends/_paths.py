"""Lock path rules: what a lock path may be, and the names of its auxiliary files.

A lock path is absolute, in an existing directory reached without another user's
symlinks, never itself a symlink, short enough that every auxiliary file (breaker, turn,
temp file) fits ``NAME_MAX``, and not one of the reserved names. Also the open flags
every file primitive uses and the errors they map to.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from lockkit.errors import BackendUnavailable, InvalidLockName

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO planted at a lock path must not wait for a writer (it is
# refused below instead); for regular files it changes nothing.
READ_FLAGS = os.O_RDONLY | NOFOLLOW | CLOEXEC | getattr(os, "O_NONBLOCK", 0)
VANISHED = frozenset({errno.ENOENT, errno.ESTALE})
# Through an SMB client, removing a file that any descriptor (of any client) has open
# fails with EBUSY (the server's sharing violation), and so does opening a file whose
# removal is pending.
BUSY = frozenset({errno.EBUSY})
CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW | CLOEXEC
REWRITE_FLAGS = os.O_RDWR | NOFOLLOW | CLOEXEC | getattr(os, "O_NONBLOCK", 0)
# What opening something other than a regular file at a lock path can fail with: a
# symlink (ELOOP), a directory (EISDIR), a socket or a FIFO without reader (ENXIO).
NOT_A_FILE = frozenset({errno.ELOOP, errno.EISDIR, errno.ENXIO})


NAME_MAX = 255
"""The longest file name, in bytes, lockkit creates: Linux's ``NAME_MAX``, and at most 255
UTF-16 units on exFAT, NTFS and SMB (a name of at most 255 UTF-8 bytes has at most 255
UTF-16 units). A filesystem whose ``pathconf`` reports less lowers it (`name_max`)."""
PATH_MAX = 4096
"""The longest path, in bytes, lockkit creates (Linux's ``PATH_MAX`` with its NUL)."""
AUX_ROOM = 48
"""Bytes an auxiliary file's path may add to its lock path (the longest: a ``hardlink``
temp file, ``.<name>.<32-hex token>.tmp``, adds 38)."""
_NAME_MAX_OF: dict[str, int] = {}


def name_max(directory: str) -> int:
    """The longest name lockkit creates in ``directory``: `NAME_MAX` or less, cached.

    Less where ``pathconf(PC_NAME_MAX)`` says so (eCryptfs: 143); never more, whatever
    the filesystem reports (exFAT's driver reports 1530 bytes for its 255 UTF-16 units).
    """
    limit = _NAME_MAX_OF.get(directory)
    if limit is None:
        try:
            reported = os.pathconf(directory, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # no pathconf, or no such directory
            return NAME_MAX
        limit = NAME_MAX if reported <= 0 else min(NAME_MAX, reported)
        if len(_NAME_MAX_OF) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _NAME_MAX_OF.clear()
        _NAME_MAX_OF[directory] = limit
    return limit


def aux_path(name: str, suffix: str, *, prefix: str = "") -> str:
    """The path of an auxiliary file of lock ``name``: ``prefix + basename + suffix``.

    When that would not fit `name_max`, the basename is shortened to a start cut at a
    character boundary, ``~`` and 24 hex digits of its SHA-256, so the auxiliary name
    always fits and every process derives the same one (breakers and turns are found
    by name). Lock names short enough keep the readable ``x.lock.break``.
    """
    directory, base = os.path.split(name)
    raw = os.fsencode(base)
    room = len(os.fsencode(prefix)) + len(os.fsencode(suffix))
    limit = name_max(directory)
    if len(raw) + room <= limit:
        return os.path.join(directory, prefix + base + suffix)  # noqa: PTH118
    import hashlib  # noqa: PLC0415 - long names only

    digest = hashlib.sha256(raw).hexdigest()[:24]
    cut = max(0, limit - room - len(digest) - 1)
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80:  # noqa: PLR2004 - UTF-8 continuation
        cut -= 1
    short = os.fsdecode(raw[:cut]) + "~" + digest
    return os.path.join(directory, prefix + short + suffix)  # noqa: PTH118


def lock_path(name: str | os.PathLike[str], *, directory: bool = False) -> str:
    """Validate a lock path and return it absolute (symlinks are not resolved).

    Every component of the lock's directory is looked at (`check_directory`): a
    symlink there owned by another user (neither this process's user nor root) is
    refused, as the kernel's ``fs.protected_symlinks`` does in sticky directories, but
    for every component: whoever owns it could point root's locks at any directory.

    Args:
        name: The lock path.
        directory: The lock is a directory (``mkdir``-style backends): an existing
            directory is accepted and an existing regular file is refused instead.

    Raises:
        InvalidLockName: Empty, contains NUL or an unencodable character, too long (its
            name longer than `name_max`, or the path too long to leave room for the
            lock's auxiliary files under `PATH_MAX`), names a directory (a file, when
            ``directory``), a symlink, a FIFO, socket or device, has a name reserved for
            auxiliary files (`reserved_suffix`), its parent directory does not exist, or
            a symlink of another user leads to it.
        BackendUnavailable: The directory cannot be searched (``EACCES``...), with the
            ``errno`` of the failure.
    """
    text = os.fspath(name)
    if not text:
        raise InvalidLockName("lock path is empty; pass the path of the lock file")
    if "\0" in text:
        raise InvalidLockName(f"lock path {text!r} contains a NUL character")
    _check_encodable(text)
    if text.endswith(os.sep):
        raise InvalidLockName(f"lock path {text!r} ends with {os.sep!r}; name a file, not a dir")
    path = os.path.abspath(text)  # noqa: PTH100 - plain strings on the hot path
    parent = os.path.dirname(path)  # noqa: PTH120
    _check_length(path, parent)
    _check_reserved(path)
    check_directory(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _too_long(path, f"the system refuses it ({exc.strerror})") from None
        raise unreachable(path, path, exc) from None
    _check_existing(path, st, directory=directory)
    return path


RESERVED_SUFFIXES = (".break", ".turn")
"""Name endings lockkit gives a lock's auxiliary files (breaker, turn); never a lock's."""
_TEMP_NAME = re.compile(r"\..*\.[0-9a-f]{32}\.tmp\Z", re.DOTALL)
"""A ``hardlink`` temp file: ``.<name>.<32-hex token>.tmp``."""


def reserved_suffix(base: str) -> str | None:
    """The auxiliary-file pattern lock name ``base`` matches, or ``None``.

    A lock named like another lock's breaker (``job.lock.break``), turn
    (``job.lock.turn``) or ``hardlink`` temp file (``.job.lock.<token>.tmp``) would be
    treated as that file by the other lock's users: removed as an abandoned breaker, or
    as a temp file. Compared without case, for case-insensitive filesystems (exFAT,
    SMB). Shortened auxiliary names (``start~<24 hex>.break``) end the same way.
    """
    folded = base.lower()
    for suffix in RESERVED_SUFFIXES:
        if folded.endswith(suffix):
            return suffix
    if folded.startswith(".") and folded.endswith(".tmp") and _TEMP_NAME.match(folded):
        return ".<token>.tmp"
    return None


def _check_reserved(path: str) -> None:
    base = os.path.basename(path)  # noqa: PTH119
    suffix = reserved_suffix(base)
    if suffix is not None:
        raise InvalidLockName(
            f"lock path {path!r} ends with {suffix!r}, which lockkit reserves for the "
            f"auxiliary files of locks (a lock named {base!r} would be taken for another "
            "lock's breaker, turn or temp file); choose another name"
        )


_MAX_SYMLINKS = 40  # Linux's limit on symlinks followed in one path lookup


def check_directory(path: str) -> tuple[int, int]:
    """Walk the components of ``path``'s directory; return the directory's (dev, ino).

    Each component is looked at with ``lstat``, symlinks are followed by hand (their
    targets' components looked at too), like the kernel's path walk, so a symlink
    anywhere on the way is seen. A symlink owned by a user other than this process's
    user and root is refused: that user could point it at any directory at any moment,
    and lockkit would then judge, break or write the files there. (A directory on the
    way owned by another user can be renamed and replaced by such a symlink later:
    breaks walk the path again, see `open_lock_directory`.)

    Raises:
        InvalidLockName: A component is missing, not a directory, or a symlink of
            another user; too many symlinks.
        BackendUnavailable: A component cannot be looked at (``EACCES``...).
    """
    directory = os.path.dirname(path)  # noqa: PTH120
    _check_encodable(directory)
    pending = _components(directory)
    current = os.sep
    st: os.stat_result | None = None
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            current = os.path.dirname(current)  # noqa: PTH120 - current has no symlinks
            st = None
            continue
        candidate = os.path.join(current, part)  # noqa: PTH118
        st = _lstat_component(path, directory, candidate)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            target = _trusted_target(path, candidate, st, links)
            if target.startswith(os.sep):
                current = os.sep
            pending.extend(_components(target))
            st = None
        elif stat.S_ISDIR(st.st_mode):
            current = candidate
        else:
            raise InvalidLockName(f"cannot lock {path!r}: {candidate!r} is not a directory")
    if st is None:
        st = _lstat_component(path, directory, current)
    return st.st_dev, st.st_ino


def _check_encodable(path: str) -> None:
    try:
        os.fsencode(path)
    except UnicodeError:
        raise InvalidLockName(
            f"lock path {path!r} cannot be encoded for the filesystem (a lone surrogate, "
            "or a character the filesystem encoding lacks)"
        ) from None


def _components(path: str) -> list[str]:
    """The components of ``path`` to walk, last first (a stack), without ``""`` and ``.``."""
    parts = [part for part in path.split(os.sep) if part and part != "."]  # noqa: PTH206
    parts.reverse()
    return parts


def _lstat_component(path: str, directory: str, component: str) -> os.stat_result:
    try:
        return os.lstat(component)
    except FileNotFoundError:
        raise InvalidLockName(
            f"cannot lock {path!r}: its directory {directory!r} does not exist; create it first"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise InvalidLockName(
                f"cannot lock {path!r}: {os.path.dirname(component)!r} is not a directory"  # noqa: PTH120
            ) from None
        raise unreachable(path, component, exc) from None


def _trusted_target(path: str, link: str, st: os.stat_result, links: int) -> str:
    """The target of symlink ``link`` on the way to lock ``path``, if it may be followed."""
    if st.st_uid not in {euid(), 0}:
        raise InvalidLockName(
            f"cannot lock {path!r}: its directory path goes through {link!r}, a symbolic link "
            f"owned by uid {st.st_uid}, another user, who could point it anywhere; lockkit "
            "follows symlinks on the way to a lock only when they belong to this user or "
            "root. Use the real path (os.path.realpath) if that directory is meant"
        )
    if links > _MAX_SYMLINKS:
        raise InvalidLockName(
            f"cannot lock {path!r}: too many symbolic links in its directory path"
        )
    try:
        return os.readlink(link)  # noqa: PTH115
    except OSError as exc:
        raise unreachable(path, link, exc) from None


def unreachable(path: str, where: str, exc: OSError) -> BackendUnavailable:
    """The error for a lock path whose directory this process cannot search."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return BackendUnavailable(
        exc.errno,
        f"cannot lock {path!r}: cannot look at {where!r}: {exc.strerror} ({code}); "
        "the lock's directory must be searchable by this user",
    )


def _check_existing(path: str, st: os.stat_result, *, directory: bool) -> None:
    """Refuse what already sits at a lock path unless it can be the lock."""
    if stat.S_ISLNK(st.st_mode):
        raise InvalidLockName(
            f"lock path {path!r} is a symbolic link; lockkit never follows symlinks at the "
            "lock path. Remove the link or choose another path"
        )
    if stat.S_ISDIR(st.st_mode) != directory:
        what = "not a directory" if directory else "a directory; name a file inside it"
        raise InvalidLockName(f"lock path {path!r} is {what}")
    if not directory and not stat.S_ISREG(st.st_mode):
        raise _not_a_file(path, st)


def _check_length(path: str, parent: str) -> None:
    """Refuse a lock path whose name or length leaves no room for its own files."""
    size = len(os.fsencode(path))
    if size + AUX_ROOM >= PATH_MAX:
        raise _too_long(
            path,
            f"it is {size} bytes long; lock paths may have at most {PATH_MAX - AUX_ROOM - 1} "
            f"(PATH_MAX {PATH_MAX}, less room for the lock's auxiliary files)",
        )
    base = len(os.fsencode(os.path.basename(path)))  # noqa: PTH119
    if base > _SHORT_NAME:
        limit = name_max(parent)
        if base > limit:
            raise _too_long(
                path, f"its file name is {base} bytes long; the limit there is {limit} bytes"
            )


# Names this short fit every filesystem lockkit knows: no pathconf for them.
_SHORT_NAME = 64


def _too_long(path: str, why: str) -> InvalidLockName:
    shown = path if len(path) <= 120 else f"{path[:60]}...{path[-40:]}"  # noqa: PLR2004
    return InvalidLockName(f"lock path {shown!r} is too long: {why}")


def symlink_error(path: str) -> InvalidLockName:
    """The error for a symlink found at the lock path while locking (ELOOP from open)."""
    return InvalidLockName(
        f"lock path {path!r} is a symbolic link; lockkit never follows symlinks at the lock "
        "path. Remove the link or choose another path"
    )


def open_nofollow(path: str, flags: int, *, dir_fd: int | None = None) -> int:
    """``os.open`` with mode 0o644 where ELOOP (``O_NOFOLLOW`` met a symlink) is explained.

    Where the platform has no ``O_NOFOLLOW`` (Windows), the path is checked with
    ``lstat`` just before the open instead: a symlink planted between the two would be
    followed, a window the flag closes elsewhere.

    With ``dir_fd`` (a directory `open_lock_directory` opened), the file's name is
    looked up in that very directory.

    Raises:
        InvalidLockName: A symlink sits at the path.
    """
    if not NOFOLLOW and os.path.islink(path):  # noqa: PTH114 - plain strings, no pathlib
        raise symlink_error(path)
    try:
        if dir_fd is not None:
            return os.open(os.path.basename(path), flags, 0o644, dir_fd=dir_fd)  # noqa: PTH119
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_error(path) from None
        raise


# O_PATH (Linux): a directory this user may search but not list can be opened too.
_DIR_FLAGS = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | CLOEXEC
_HAS_DIR_FD = os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd


def open_lock_directory(name: str) -> int | None:
    """Open the directory of lock ``name``, proven to be the one its path leads to now.

    Before lockkit removes a file it did not create (a stale lock, an abandoned
    breaker), it opens the lock's directory, walks the path again (`check_directory`:
    no symlink of another user on the way) and compares the two: the same (dev, ino)
    means the open directory is the one a trusted path leads to. The re-read and the
    removal then go through this descriptor, so nothing moved on the way later can
    redirect them. Costs an open, a fstat and an lstat per path component, on breaks
    only.

    Returns:
        The directory's descriptor (the caller closes it); ``-1`` where the platform
        has no ``dir_fd`` calls (the walk was done, paths are used); ``None`` when the
        directory changed between the open and the walk (do not remove anything now).

    Raises:
        InvalidLockName: A symlink of another user leads to the directory now.
        BackendUnavailable: The directory cannot be opened or searched.
    """
    if not _HAS_DIR_FD:
        check_directory(name)
        return -1
    directory = os.path.dirname(name)  # noqa: PTH120
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except OSError as exc:
        raise unreachable(name, directory, exc) from None
    try:
        walked = check_directory(name)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != walked:
        os.close(fd)
        return None
    return fd


def not_a_file_error(path: str, st: os.stat_result | None = None) -> InvalidLockName:
    """The error for something other than a regular file at a lock file's path."""
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return InvalidLockName(
                f"{path!r} is not a regular file, not a lock file: lockkit reads and writes "
                "only regular files it can prove are a lock's own"
            )
    return _not_a_file(path, st)


def linked_file_error(path: str, links: int) -> InvalidLockName:
    """The error for a file with other names (hard links) found where lockkit would write."""
    return InvalidLockName(
        f"{path!r} has {links} hard links, so it is not provably the lock's own file: "
        "another name for it may be anyone's file (a hard link planted at the lock path), "
        "and lockkit never writes into it. Remove it, or choose another lock path"
    )


def _not_a_file(path: str, st: os.stat_result) -> InvalidLockName:
    kind = (
        "a FIFO" if stat.S_ISFIFO(st.st_mode)
        else "a socket" if stat.S_ISSOCK(st.st_mode)
        else "a directory" if stat.S_ISDIR(st.st_mode)
        else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else "not a regular file"
    )  # fmt: skip
    return InvalidLockName(
        f"{path!r} is {kind}, not a lock file: lockkit reads and removes only regular files "
        "it can prove are a lock's own. Remove it, or choose another lock path"
    )


def euid() -> int:
    """This process's effective user id (``-1`` where the platform has none)."""
    return os.geteuid() if hasattr(os, "geteuid") else -1


def errname(exc: OSError) -> str:
    """``"EPERM (Operation not permitted)"``: an error as probes explain it."""
    return errno.errorcode.get(exc.errno or 0, str(exc.errno)) + f" ({exc.strerror})"
