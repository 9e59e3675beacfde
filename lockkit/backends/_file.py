"""What the file backends share: lock paths, the JSON payload, reading and removing.

The payload is one JSON object. It is a superset of the shapes OpenClaw writes
(``pid``, ``createdAt`` ISO-8601, ``startTime``/``starttime``, ``startedAt`` epoch ms,
``token``) plus lockkit's ``host``, ``bootId``, ``pidNs``, ``expires``, ``backend`` and
``version``. Every one of those shapes is read back, so Python and Node processes that
share a lock path recognise each other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import stat
import time
from typing import TYPE_CHECKING, ClassVar, ParamSpec, TypeVar

import attrs

from lockkit._info import MAX_PID, Lease, LockInfo, Owner, read_start_time
from lockkit._stale import judge
from lockkit.errors import BackendUnavailable, InvalidLockName
from lockkit.spec import Backend, Capabilities

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from lockkit.spec import Waiter

__all__ = [
    "MAX_PAYLOAD",
    "FileBackend",
    "HeldFile",
    "LocalIOBackend",
    "Payload",
    "create_exclusive",
    "create_held",
    "decode_payload",
    "encode_payload",
    "linked_file_error",
    "lock_path",
    "not_a_file_error",
    "read_lock_file",
    "remove_held",
    "remove_if_ours",
]

PAYLOAD_VERSION = 1
"""Payload format version written into every lock file."""
MAX_PAYLOAD = 64 * 1024
"""A lock file larger than this is not a lockkit payload; it is read no further."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO planted at a lock path must not wait for a writer (it is
# refused below instead); for regular files it changes nothing.
READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_VANISHED = frozenset({errno.ENOENT, errno.ESTALE})
# Through an SMB client, removing a file that any descriptor (of any client) has open
# fails with EBUSY (the server's sharing violation), and so does opening a file whose
# removal is pending.
_BUSY = frozenset({errno.EBUSY})
CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC
_REWRITE_FLAGS = os.O_RDWR | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
# What opening something other than a regular file at a lock path can fail with: a
# symlink (ELOOP), a directory (EISDIR), a socket or a FIFO without reader (ENXIO).
_NOT_A_FILE = frozenset({errno.ELOOP, errno.EISDIR, errno.ENXIO})


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
        raise _unreachable(path, path, exc) from None
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
        raise _unreachable(path, component, exc) from None


def _trusted_target(path: str, link: str, st: os.stat_result, links: int) -> str:
    """The target of symlink ``link`` on the way to lock ``path``, if it may be followed."""
    if st.st_uid not in {_euid(), 0}:
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
        raise _unreachable(path, link, exc) from None


def _unreachable(path: str, where: str, exc: OSError) -> BackendUnavailable:
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
    if not _NOFOLLOW and os.path.islink(path):  # noqa: PTH114 - plain strings, no pathlib
        raise symlink_error(path)
    try:
        if dir_fd is not None:
            return os.open(os.path.basename(path), flags, 0o644, dir_fd=dir_fd)  # noqa: PTH119
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_error(path) from None
        raise


def _iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as OpenClaw writes ``createdAt``."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return f"{_second(moment)[1]}.{_MILLIS[moment.microsecond // 1000]}Z"


def _second(moment: dt.datetime) -> tuple[float, str, str]:
    """``moment``'s second (UTC): epoch seconds, ``YYYY-MM-DDTHH:MM:SS``, epoch seconds text.

    isoformat() costs more than the rest of a payload; the part down to the second is
    the same for every lock taken within that second, so it is formatted once. The
    cache is one tuple, replaced whole, so a thread never pairs one second's key with
    another second's text.
    """
    second = moment.timestamp() // 1
    cached = _SECOND[0]
    if cached[0] == second:
        return cached
    fresh = (second, moment.replace(microsecond=0, tzinfo=None).isoformat(), str(int(second)))
    _SECOND[0] = fresh
    return fresh


# The last second formatted by _second; NaN equals no second.
_SECOND: list[tuple[float, str, str]] = [(float("nan"), "", "")]
# "000" to "999": the milliseconds of a time stamp, without a format() per payload.
_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))


def encode_payload(owner: Owner, backend: str, expires: dt.datetime | None) -> bytes:
    """Serialise an owner into the lock-file payload (readable by OpenClaw too).

    Every acquisition writes one, so the fields that stay the same for a process
    (pid, host, boot id...) are serialised once and cached; only the time stamps, the
    token and the expiry are formatted per call. The result equals
    ``json.dumps`` of the full object with compact separators.
    """
    created = owner.created or dt.datetime.now(dt.UTC)
    if created.tzinfo is not dt.UTC:
        created = created.astimezone(dt.UTC)
    key = (owner.pid, owner.host, owner.boot_id, owner.pid_ns, owner.start_time, backend)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = _static_prefix(owner, backend)
        if len(_PREFIXES) >= _MAX_PREFIXES:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    token = owner.token
    # bytes.isalnum is a table lookup per byte; str.isalnum consults Unicode data.
    if not (token.isascii() and token.encode().isalnum()):
        token = json.dumps(token)[1:-1]  # a foreign token: escape it like json.dumps does
    expiry = f'"{_iso(expires)}"' if expires is not None else "null"
    second, iso, epoch = _second(created)
    millis = _MILLIS[created.microsecond // 1000]
    # startedAt is createdAt in epoch milliseconds: the second's digits, then the
    # millisecond's (a time before 1970 has no such shortcut).
    started = f"{epoch}{millis}" if second >= 0 else str(int(created.timestamp() * 1000))
    return (
        f'{prefix}"createdAt":"{iso}.{millis}Z","startedAt":{started},"token":"{token}",'
        f'"expires":{expiry},"version":{PAYLOAD_VERSION}}}'
    ).encode()


# Serialised per-process fields, keyed by owner identity and backend (a handful per
# process: one per backend, plus one per fork).
_PREFIXES: dict[tuple[object, ...], str] = {}
_MAX_PREFIXES = 64


def _static_prefix(owner: Owner, backend: str) -> str:
    static = {
        "pid": owner.pid,
        "host": owner.host,
        "bootId": owner.boot_id,
        "pidNs": owner.pid_ns,
        "startTime": owner.start_time,
        "starttime": owner.start_time,
        "backend": backend,
    }
    # Drop the closing brace: the per-call fields follow.
    return json.dumps(static, separators=(",", ":"))[:-1] + ","


def _parse_moment(value: object) -> dt.datetime | None:
    """Read a time written as ISO-8601 text or as epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@attrs.frozen
class Payload:
    """A decoded lock file.

    Attributes:
        owner: The holder, or ``None`` when the file could not be read as a payload.
        expires: When the lock expires (UTC), if it says.
        backend: The backend that wrote it, if it says (OpenClaw's payloads do not).
        problem: Why ``owner`` is ``None``: empty, truncated, not JSON, no pid...
    """

    owner: Owner | None
    expires: dt.datetime | None = None
    backend: str = ""
    problem: str = ""


def decode_payload(data: bytes) -> Payload:
    """Parse a lock-file payload in any supported shape; never raises for bad data."""
    if not data.strip():
        return Payload(None, problem="empty lock file")
    if len(data) > MAX_PAYLOAD:
        return Payload(None, problem=f"lock file larger than {MAX_PAYLOAD} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Payload(None, problem="lock file is not valid JSON (truncated or foreign)")
    if not isinstance(obj, dict):
        return Payload(None, problem="lock file JSON is not an object")
    pid = _optional_int(obj.get("pid"))
    if pid is None or not 0 < pid <= MAX_PID:
        # A pid no process can have (os.kill would overflow on it): malformed, and the
        # malformed-payload rule decides, like for any unreadable lock file.
        return Payload(None, problem="lock file has no valid pid")
    created = _parse_moment(obj.get("createdAt")) or _parse_moment(obj.get("startedAt"))
    start_time = _optional_int(obj.get("startTime"))
    if start_time is None:
        start_time = _optional_int(obj.get("starttime"))
    owner = Owner(
        pid=pid,
        host=str(obj.get("host") or ""),
        boot_id=str(obj.get("bootId") or ""),
        pid_ns=_optional_int(obj.get("pidNs")),
        start_time=start_time,
        token=str(obj.get("token") or ""),
        created=created,
    )
    backend = obj.get("backend")
    return Payload(
        owner,
        expires=_parse_moment(obj.get("expires")),
        backend=backend if isinstance(backend, str) else "",
    )


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
            raise _not_a_file(path, st)
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
        if exc.errno in _VANISHED:
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
        if exc.errno in _VANISHED:
            return False
        if exc.errno not in _BUSY:
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


def _open_lock_file(path: str, dir_fd: int | None = None) -> int | None:
    """Open a lock file for `read_lock_file`; ``None`` when there is none."""
    try:
        return open_nofollow(path, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            raise not_a_file_error(path) from None  # a socket (ENXIO)
        if exc.errno not in _BUSY:
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
            if exc.errno in _VANISHED:
                return None
            if exc.errno not in _BUSY:
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


_BLANK = b" \t\r\n\0"


def looks_like_lock(data: bytes) -> bool:
    """Whether ``data`` can be a lock file's content: the content rule.

    A lock file is empty (a write in progress, or a crash before it; NUL bytes and
    blanks count as empty: what some filesystems leave of a file written just before a
    power cut), or one JSON object: its first non-blank byte is ``{``, and it is no
    larger than `MAX_PAYLOAD`. Only such a file is ever broken as stale or malformed, or
    written by ``filelock``: anything else at a lock path is someone's data, put there
    by mistake or by an attacker (through a symlinked directory).
    """
    if len(data) > MAX_PAYLOAD:
        return False
    if data[:1] == b"{":
        return True  # every lock file lockkit writes: no copy
    head = data.lstrip(_BLANK)
    return not head or head[:1] == b"{"


def check_content(path: str, data: bytes) -> None:
    """Refuse a file at a lock path whose content is not a lock's (`looks_like_lock`).

    Raises:
        InvalidLockName: Naming the path; nothing was removed or written.
    """
    if not looks_like_lock(data):
        why = (
            f"it is larger than {MAX_PAYLOAD} bytes"
            if len(data) > MAX_PAYLOAD
            else "it does not hold a JSON object"
        )
        raise InvalidLockName(
            f"{path!r} is not a lock file ({why}); lockkit never removes or overwrites it: "
            "remove it or choose another path"
        )


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


LOCAL_FSTYPES = frozenset({
    "bcachefs", "btrfs", "exfat", "ext2", "ext3", "ext4", "f2fs", "hfsplus", "jfs",
    "msdos", "nilfs2", "ntfs3", "overlay", "ramfs", "reiserfs", "tmpfs", "vfat", "xfs",
    "zfs",
})  # fmt: skip
"""Kernel filesystems on local storage: a lock-file system call there takes microseconds
and cannot hang waiting for a server, so asyncio callers make it on the event loop."""

_FS_FACTS: dict[str, tuple[str, bool]] = {}
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _fs_facts(directory: str) -> tuple[str, bool]:
    """The type of ``directory``'s filesystem and whether other hosts may reach it, cached."""
    facts = _FS_FACTS.get(directory)
    if facts is None:
        from lockkit._fsinfo import filesystem_of, may_be_shared  # noqa: PLC0415 - once per dir

        try:
            fstype = filesystem_of(directory).fstype
        except OSError:
            fstype = ""
        facts = (fstype, may_be_shared(fstype))
        if len(_FS_FACTS) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _FS_FACTS.clear()
        _FS_FACTS[directory] = facts
    return facts


def fstype_of(directory: str) -> str:
    """The type of the filesystem ``directory`` is on (``""`` if unknown), cached."""
    return _fs_facts(directory)[0]


def on_share(directory: str) -> bool:
    """Whether other hosts may reach ``directory`` (a network or FUSE filesystem), cached."""
    return _fs_facts(directory)[1]


def inline_io(directory: str) -> bool:
    """Whether lock-file system calls in ``directory`` may run on an asyncio event loop.

    Yes on `LOCAL_FSTYPES`: the few system calls of an attempt cost less there than a
    hop to a worker thread and back, and an attempt that never suspends cannot be
    interrupted by cancellation. No on network filesystems (NFS, SMB, 9p...), FUSE
    (a user-space daemon answers) and anything unrecognised: there a call may stall
    while a server is unreachable, so it goes to a worker thread. Decided once per
    directory, from ``/proc/self/mountinfo``.
    """
    return fstype_of(directory) in LOCAL_FSTYPES


async def run_file_io(path: str, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run ``call`` for the lock file ``path``: inline where `inline_io`, else in a thread.

    Only for calls whose interruption by cancellation leaves nothing behind (reading,
    breaking a stale lock); attempts and releases have their own methods.
    """
    if inline_io(os.path.dirname(path)):  # noqa: PTH120
        return call(*args, **kwargs)
    import asyncio  # noqa: PLC0415 - already imported by the running event loop

    return await asyncio.to_thread(call, *args, **kwargs)


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
            with contextlib.suppress(OSError):
                self.close()


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
        if exc.errno in _BUSY:
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
        if exc.errno in _VANISHED:
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
        if isinstance(exc, OSError) and exc.errno in _VANISHED:
            return False  # removed (by a breaker, or on NFS by another client)
        raise
    # Closed before the unlink: Windows cannot remove a file that is open.
    held.close()
    if mine.st_nlink > 0 and mine.st_ino == there.st_ino and mine.st_dev == there.st_dev:
        return unlink_lock_file(name, lambda: carries_token(name, lease.token))
    return remove_if_ours(lease)


class LocalIOBackend(Backend):
    """``*_async`` methods for backends that lock with a few system calls on a local path.

    Where `inline_io` says the lock's filesystem answers at once, attempts, releases and
    reads run right on the event loop (a thread hop would cost more than the calls);
    elsewhere they take the `Backend` defaults, a worker thread. `FileBackend` and the
    ``filelock`` backend share this.
    """

    def waiter(self, name: str) -> Waiter:
        """A waiter driving this backend's `wait`/`stop_waiting` (inotify, bounded).

        Their state still lives per thread or task with the backend (`_turn`); it moves
        onto the waiter in a later change.
        """
        from lockkit._calls import LegacyWaiter  # noqa: PLC0415 - the core imports us first

        return LegacyWaiter(self, name)

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """`try_acquire` on the event loop where `inline_io`, else in a worker thread."""
        if inline_io(os.path.dirname(name)):  # noqa: PTH120
            return self.try_acquire(name, owner, ttl, shared=shared)
        return await super().try_acquire_async(name, owner, ttl, shared=shared)

    async def release_async(self, lease: Lease) -> bool:
        """`release` on the event loop where `inline_io` (unless `_release_may_block`)."""
        released = self.release_at_once(lease)
        if released is not None:
            return released
        return await super().release_async(lease)

    def release_at_once(self, lease: Lease) -> bool | None:
        """Release on the event loop if that cannot block; ``None`` when it might.

        `lockkit.AsyncLock` calls this first: a release done here needs no task to
        shield it from the caller's cancellation.
        """
        if not self._release_may_block(lease) and inline_io(os.path.dirname(lease.name)):  # noqa: PTH120
            return self.release(lease)
        return None

    def _release_may_block(self, lease: Lease) -> bool:
        """Whether releasing ``lease`` may wait, so must not run on the event loop."""
        del lease
        return False

    async def inspect_async(self, name: str) -> LockInfo | None:
        """`inspect` on the event loop where `inline_io`, else in a worker thread."""
        return await run_file_io(name, self.inspect, name)


class FileBackend(LocalIOBackend):
    """Shared behaviour of backends whose lock is the existence of a file.

    A lock is held while the file exists; releasing removes it. Subclasses implement
    `attempt` with their primitive; naming, turns on shares, release, refresh,
    inspection, race-free breaking and waiting are common.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True, ttl=True, notify=True)

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Require a file path whose directory exists; return it absolute."""
        return lock_path(name)

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """One `attempt`; on a share, stepping aside while another process has the turn.

        See `lockkit.backends._turn`: on filesystems other hosts may reach, a waiter
        that has waited a while claims the lock's next turn, and the others let it
        have the lock. A successful attempt gives back this process's turn.

        With a TTL, an attempt that took longer than `ARRIVAL_MARGIN` of it (the process
        was paused between computing the expiry and its lock file appearing) re-asserts
        the lock before returning it (`_reassert`): it may have arrived expired.
        """
        del shared  # the core never asks: the capability is off
        if ttl is None:
            return self._try_acquire(name, owner, None)
        started = time.monotonic()
        lease = self._try_acquire(name, owner, ttl)
        if lease is not None and time.monotonic() - started > ttl * ARRIVAL_MARGIN:
            return self._reassert(lease, ttl)
        return lease

    def _try_acquire(self, name: str, owner: Owner, ttl: float | None) -> Lease | None:
        directory = os.path.dirname(name)  # noqa: PTH120
        if not on_share(directory):
            return self.attempt(name, directory, owner, ttl)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        turn = _turn.look(name)
        if turn is not None and not turn.mine:
            return None
        lease = self.attempt(name, directory, owner, ttl)
        if lease is not None and turn is not None:
            # No waiting once the lock is won: `stop_waiting` retries a busy turn file.
            _turn.give_back(name)
        return lease

    def _reassert(self, lease: Lease, ttl: float) -> Lease | None:
        """Renew a lease that may have arrived expired; ``None`` if it is not ours now.

        Under the breaker lock, so no break runs between the token check and the new
        expiry: either a waiter broke the lock first (the token is gone: busy), or the
        lock is ours and now expires ``ttl`` from now.
        """
        try:
            with breaker(lease.name, wait=REASSERT_BREAKER_WAIT) as held:
                if held:
                    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
                    if self.refresh(lease, ttl):
                        return attrs.evolve(lease, expires=expires)
        except BaseException:
            _close_handle(lease)
            raise
        # Broken and perhaps taken meanwhile, or a breaker at work on it: busy. A lock
        # file still ours expires by its TTL.
        _close_handle(lease)
        return None

    def attempt(self, name: str, directory: str, owner: Owner, ttl: float | None) -> Lease | None:
        """Take the lock with this backend's primitive, once; ``None`` when it is held.

        Args:
            name: The lock path (absolute, checked by `normalize_name`).
            directory: Its directory.
            owner: Who takes it.
            ttl: Seconds the lock lives unless renewed, or ``None``.
        """
        raise NotImplementedError

    @staticmethod
    def keep_open(held: HeldFile, directory: str) -> HeldFile | None:
        """What a lease keeps of the lock file it created in ``directory``.

        The open descriptor on local filesystems (it makes release exact and cheap, see
        `HeldFile`); nothing on shares and FUSE mounts: through an SMB client a file
        that any descriptor holds open cannot be removed by anyone (EBUSY), so a holder
        that kept it open would stop a breaker from clearing its expired lock.
        """
        if inline_io(directory):
            return held
        held.close()
        return None

    def release(self, lease: Lease) -> bool:
        """Remove the lock file if it is still this lease's.

        A lease with a TTL is always released under the breaker lock: a waiter may judge
        it expired and break it at any moment, and a release paused (GC, SIGSTOP) between
        its ownership check and its unlink must not then remove the next holder's lock.
        Under the breaker no break can run, so the check and the unlink see one file.
        A lease without a TTL is only broken once its holder is dead (or, from another
        machine view, past the ``stale`` setting): it is removed directly.

        When the breaker stays busy (a breaker at work, paused, or planted), the release
        did not happen: if the lock file still carries this lease's token, it raises
        `BackendUnavailable` and the core keeps the lease (``release()`` may be retried;
        the lock otherwise expires by its TTL); if the token is gone, the lock really was
        lost and it returns ``False``. The wait is `BREAKER_WAIT` on filesystems other
        hosts may reach (a breaker there may retry a busy file for `BREAK_BUSY_WAIT`),
        `LOCAL_BREAKER_WAIT` elsewhere (a breaker is held for microseconds).

        Raises:
            BackendUnavailable: The breaker stayed busy and the lock is still ours.
        """
        directory = os.path.dirname(lease.name)  # noqa: PTH120
        wait = (
            LOCAL_BREAKER_WAIT
            if lease.expires is not None and inline_io(directory)
            else BREAKER_WAIT
        )
        released = self._release(lease, wait=wait)
        if released is not None:
            return released
        if carries_token(lease.name, lease.token):
            raise BackendUnavailable(
                errno.EBUSY,
                f"could not release {lease.name!r}: the breaker lock "
                f"{breaker_path(lease.name)!r} stays busy (held by another process, or a file "
                f"planted there) after {wait:g} s; the lock is still held: call release() "
                "again, or let it expire by its TTL",
            )
        return False

    def _release(self, lease: Lease, *, wait: float) -> bool | None:
        """`release`, waiting up to ``wait`` for a busy breaker; ``None`` if it stayed busy."""
        remove = remove_held if isinstance(lease.handle, HeldFile) else remove_if_ours
        if lease.expires is None:
            return remove(lease)
        try:
            with breaker(lease.name, wait=wait) as held:
                if held:
                    return remove(lease)
        except BaseException:
            _close_handle(lease)
            raise
        if wait > 0:
            _close_handle(lease)  # given up: the lock expires by its TTL
        return None

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Rewrite the payload with a new expiry if the file is still this lease's.

        Race-free without the breaker: the open descriptor pins the file, so the token
        read through it and the payload written through it belong to the same file; if
        the lock was broken meanwhile, the write lands in an unlinked file and the
        token check has already failed or will fail on the next refresh.
        """
        try:
            fd = os.open(lease.name, _REWRITE_FLAGS)
        except OSError as exc:
            if exc.errno in _VANISHED or exc.errno in _NOT_A_FILE:
                return False  # gone, or replaced by a symlink, FIFO...: not ours any more
            raise  # a passing error: the core retries while the lock may still be ours
        try:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return False  # replaced by a FIFO or a device: not ours any more
                data = os.pread(fd, MAX_PAYLOAD + 1, 0)
            except OSError as exc:
                if exc.errno in _VANISHED:
                    return False  # removed under us (FUSE/NFS report it on the open fd)
                raise
            owner = decode_payload(data).owner
            if owner is None or owner.token != lease.token:
                return False
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
            payload = encode_payload(lease.owner, lease.backend, expires)
            os.pwrite(fd, payload, 0)
            os.ftruncate(fd, len(payload))
        finally:
            os.close(fd)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """Read the holder from the lock file."""
        return inspect_file(name, self.name)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock file if it is still exactly the holding ``expected`` describes.

        Why this is race-free: every removal of a lock file for staleness happens while
        holding the breaker lock (``<name>.break``, created with ``O_EXCL``), and
        re-reads the file *under* it. The file at ``name`` can only be replaced by first
        being removed (a TTL renewal rewrites it in place, which changes its mtime and
        so fails the re-check), and removals happen only (a) here, serialised by the
        breaker, or
        (b) by the legitimate holder's release, which removes only its own token and,
        for a lease with a TTL (the only kind a live holder can lose), also takes the
        breaker. So between the re-read and the
        unlink nobody can swap the file, and the comparison of token, mtime and size
        rules out the two traps: a fresh lock on an inode number reused at once (ext4;
        it has another token), and a lock renewed since it was judged (another mtime).
        A lock that vanished is free, not stale: nothing is unlinked then, the caller
        retries the create.

        The re-read and the removal happen in the lock's directory opened and proven
        to be the one its path leads to now (`open_lock_directory`): a symlink of
        another user put on the way after the lock was named cannot redirect a break
        into another directory.
        """
        with breaker(name) as held:
            if not held:
                return False
            dfd = open_lock_directory(name)
            if dfd is None:
                return False  # the directory changed as we looked: not now
            at = dfd if dfd >= 0 else None
            try:
                if not self._still_as_seen(name, expected, at):
                    return False
                # On SMB every waiter reading the lock makes its removal fail (EBUSY)
                # for a moment: retry, briefly (we hold the breaker), and only while
                # the file is still exactly what was judged stale.
                return unlink_lock_file(
                    name,
                    lambda: self._still_as_seen(name, expected, at),
                    patience=BREAK_BUSY_WAIT,
                    dir_fd=at,
                )
            except BackendUnavailable:
                return False  # still busy: not broken now; the caller reads it again
            finally:
                if dfd >= 0:
                    os.close(dfd)

    def _still_as_seen(self, name: str, expected: LockInfo, dir_fd: int | None = None) -> bool:
        """Whether the lock file is still the very version ``expected`` describes."""
        current = inspect_file(name, self.name, dir_fd=dir_fd)
        return (
            current is not None
            and current.identity == expected.identity
            and _token(current) == _token(expected)
            # The expiry too: a client that reports mtimes in whole seconds (SFTP) can
            # show a renewed lock with the expired version's identity.
            and current.expires == expected.expires
        )

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        """Sleep until the lock file is removed (inotify), bounded for remote releases.

        On a share, while another process has the turn, sleep until its turn ends
        instead; after `TURN_AFTER` waits that no release ended, claim the next turn
        (see `try_acquire`).
        """
        from lockkit.files import wait_for_removal  # noqa: PLC0415 - files imports us

        if not on_share(os.path.dirname(name)):  # noqa: PTH120
            return wait_for_removal(name, deadline, attempt)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        turn = _turn.look(name)
        if turn is not None and not turn.mine:
            until = min(deadline, time.monotonic() + turn.left)
            wait_for_removal(_turn.turn_path(name), until, attempt)
            return False
        if _turn.due(name):
            _turn.claim(name, _turn.claim_token(name), turn)
            # The others step aside now: look again soon.
            deadline = min(deadline, time.monotonic() + _turn.TURN_POLL)
        woken = wait_for_removal(name, deadline, attempt)
        _turn.waited(name, noticed=woken)
        return woken

    def stop_waiting(self, name: str) -> None:
        """Give back this waiter's turn of a lock on a share, if it still has it."""
        if on_share(os.path.dirname(name)):  # noqa: PTH120
            from lockkit.backends import _turn  # noqa: PLC0415 - shares only

            _turn.give_back(name, patience=_turn.TURN_TTL)
            _turn.forget(name)

    # -- asyncio: inline on local filesystems (see `inline_io`), else in a worker thread --

    async def release_async(self, lease: Lease) -> bool:
        """`release` on the event loop where `inline_io`, unless the breaker is busy.

        A lease with a TTL goes through the breaker lock; the loop tries it once, and
        only waits for a busy breaker in a worker thread.
        """
        released = self.release_at_once(lease)
        if released is not None:
            return released
        import asyncio  # noqa: PLC0415 - already imported by the running event loop

        return await asyncio.to_thread(self.release, lease)

    def release_at_once(self, lease: Lease) -> bool | None:
        """As `LocalIOBackend.release_at_once`; a TTL lease tries its breaker once."""
        if lease.expires is None or not inline_io(os.path.dirname(lease.name)):  # noqa: PTH120
            return super().release_at_once(lease)
        return self._release(lease, wait=0.0)

    def _release_may_block(self, lease: Lease) -> bool:
        """A lease with a TTL: its release may wait for the breaker lock (`release`)."""
        return lease.expires is not None

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """`break_lock` on the event loop where `inline_io`, else in a worker thread."""
        return await run_file_io(name, self.break_lock, name, expected)

    async def wait_async(self, name: str, deadline: float, attempt: int) -> bool:
        """Await the lock file's removal through the event loop's inotify descriptor.

        No thread per waiter: every waiting task of a loop shares one descriptor (see
        `lockkit._notify_async`); bounded like `wait` for releases on other hosts.
        """
        from lockkit._notify_async import wait_for_removal  # noqa: PLC0415 - asyncio only

        exists = lambda: run_file_io(name, os.path.lexists, name)  # noqa: E731
        if not on_share(os.path.dirname(name)):  # noqa: PTH120
            return await wait_for_removal(name, deadline, attempt, exists)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        # Worker threads run with a copy of this task's context, so the turn state is
        # read there but set here (`claim_token`, `waited`, `forget`).
        turn = await run_file_io(name, _turn.look, name)
        if turn is not None and not turn.mine:
            until = min(deadline, time.monotonic() + turn.left)
            marker = _turn.turn_path(name)
            await wait_for_removal(
                marker, until, attempt, lambda: run_file_io(name, os.path.lexists, marker)
            )
            return False
        if _turn.due(name):
            await run_file_io(name, _turn.claim, name, _turn.claim_token(name), turn)
            deadline = min(deadline, time.monotonic() + _turn.TURN_POLL)
        woken = await wait_for_removal(name, deadline, attempt, exists)
        _turn.waited(name, noticed=woken)
        return woken

    async def stop_waiting_async(self, name: str) -> None:
        """`stop_waiting` without blocking the event loop."""
        if on_share(os.path.dirname(name)):  # noqa: PTH120
            from lockkit.backends import _turn  # noqa: PLC0415 - shares only

            await run_file_io(name, _turn.give_back, name, patience=_turn.TURN_TTL)
            _turn.forget(name)


def _close_handle(lease: Lease) -> None:
    if isinstance(lease.handle, HeldFile):
        lease.handle.close()


def _token(info: LockInfo) -> str:
    return info.owner.token if info.owner is not None else ""


BREAKER_SUFFIX = ".break"
"""The breaker lock of ``x.lock`` is ``x.lock.break`` (shortened for long names, see
`aux_path` and `breaker_path`)."""
BREAKER_BACKEND = "breaker"
"""The ``backend`` field of a breaker's payload."""
BREAKER_MAX_AGE = 30.0
"""Seconds of *observed* age after which a breaker that is not provably held is cleared.

A breaker is held for milliseconds. The age is observed, never read from the payload:
the file's change time (``st_ctime``, which the kernel sets and a user cannot move into
the future) or, where that is in the future, how long this process has seen that very
file. So a breaker planted with a payload from the year 2999 delays recovery by at most
this much."""
BREAKER_WAIT = 5.0
"""How long a release of a lease with a TTL waits for a busy breaker on a filesystem other
hosts may reach (a breaker there may hold it while it retries a busy file)."""
LOCAL_BREAKER_WAIT = 1.0
"""How long a release of a lease with a TTL waits for a busy breaker on a local filesystem,
where a breaker is held for microseconds: longer means it is paused, or planted."""
REASSERT_BREAKER_WAIT = 0.05
"""How long an acquisition that may have arrived expired waits for the breaker (`_reassert`)."""
ARRIVAL_MARGIN = 0.5
"""An attempt with a TTL that took longer than this fraction of it re-asserts the lock."""
BREAK_BUSY_WAIT = 2.0
"""How long a break retries a lock file a share reports busy (while holding the breaker,
so well under `BREAKER_WAIT`)."""


def breaker_path(name: str) -> str:
    """The breaker lock's path for lock ``name``; it always fits the name limit."""
    return aux_path(name, BREAKER_SUFFIX)


@contextlib.contextmanager
def breaker(name: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the short-lived breaker lock of ``name``; yields ``False`` if it stays busy.

    A breaker found in the way is cleared when `breaker_clearable` says so.

    Raises:
        InvalidLockName: Something other than a regular file (a FIFO, a directory...)
            sits at the breaker's path: nobody can break or release through it.
    """
    path = breaker_path(name)
    owner = Owner.current()
    payload = encode_payload(owner, BREAKER_BACKEND, None)
    deadline = time.monotonic() + wait
    delay = 0.0005
    while (held := create_held(path, payload)) is None:
        if _clear_stale_breaker(path):
            continue  # a crashed breaker's file is gone: try again at once
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        yield True
    finally:
        remove_held(Lease(path, BREAKER_BACKEND, owner, handle=held))


def _clear_stale_breaker(path: str) -> bool:
    """Remove a breaker nobody provably holds; ``True`` if the path is now free."""
    found = read_lock_file(path)
    if found is None:
        return True
    data, st = found
    check_content(path, data)
    if not breaker_clearable(path, decode_payload(data), st):
        return False
    seen = _breaker_identity(st)
    dfd = open_lock_directory(path)
    if dfd is None:
        return False
    at = dfd if dfd >= 0 else None

    def unchanged() -> bool:
        try:
            if at is None:
                again = os.lstat(path)
            else:
                again = os.stat(os.path.basename(path), dir_fd=at, follow_symlinks=False)  # noqa: PTH119
        except OSError:
            return False
        return _breaker_identity(again) == seen

    try:
        # Only processes clearing a breaker nobody holds race here; see the docs' residual.
        if not unchanged():
            return False
        unlink_lock_file(path, unchanged, patience=BREAK_BUSY_WAIT, dir_fd=at)
    except BackendUnavailable:
        return False
    finally:
        if dfd >= 0:
            os.close(dfd)
    _FIRST_SEEN.pop((path, *seen), None)
    return True


# O_PATH (Linux): a directory this user may search but not list can be opened too.
_DIR_FLAGS = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
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
        raise _unreachable(name, directory, exc) from None
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


def _breaker_identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # The change time tells a new file on a reused inode number from the old one.
    return (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)


def breaker_clearable(path: str, payload: Payload, st: os.stat_result) -> bool:
    """Whether the breaker file ``st`` (with ``payload``) may be removed by another process.

    - Its holder is on this machine view and dead (or its pid was reused): at once.
    - Its holder is *provably alive*: this machine view, the pid running with the start
      time the payload names, a ``breaker`` payload in a file of one link owned by this
      process's user: never by age. It may be a release paused inside the breaker (a
      GC pause, SIGSTOP); clearing it would let a break remove the next holder's lock.
    - Anything else (another host, another user, an unreadable payload, pid 1 from the
      year 2999): once its observed age (`observed_age`) reaches `BREAKER_MAX_AGE`.
    """
    info = lock_info(path, BREAKER_BACKEND, payload, st)
    verdict = judge(info)
    if verdict.stale and verdict.rule in {"pid-dead", "pid-reused"}:
        return True
    owner = payload.owner
    if (
        owner is not None
        and verdict.rule == "alive"
        and payload.backend == BREAKER_BACKEND
        and owner.start_time is not None
        and read_start_time(owner.pid) == owner.start_time
        and st.st_nlink == 1
        and st.st_uid == _euid()
    ):
        return False
    return observed_age(path, st) >= BREAKER_MAX_AGE


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


CLOCK_SKEW = 2.0
"""Seconds a file's change time may lie ahead of this host's clock (a server's clock)
before it counts as meaningless."""
# (path, dev, ino, ctime, mtime, size) -> when this process first saw that breaker file.
_FIRST_SEEN: dict[tuple[object, ...], float] = {}


def observed_age(path: str, st: os.stat_result) -> float:
    """How long the file ``st`` at ``path`` has existed unchanged, as far as can be seen.

    The larger of its change-time age (where that time is not in the future) and how
    long this process has seen this very version of it. Never a payload timestamp.
    """
    now = time.time()
    by_ctime = now - st.st_ctime if st.st_ctime <= now + CLOCK_SKEW else 0.0
    key = (path, *_breaker_identity(st))
    first = _FIRST_SEEN.get(key)
    mono = time.monotonic()
    if first is None:
        if len(_FIRST_SEEN) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _FIRST_SEEN.clear()
        _FIRST_SEEN[key] = first = mono
    return max(by_ctime, mono - first, 0.0)


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
