"""What the file backends share: lock paths, the JSON payload, reading and removing.

The payload is one JSON object. It is a superset of the shapes OpenClaw writes
(``pid``, ``createdAt`` ISO-8601, ``startTime``/``starttime``, ``startedAt`` epoch ms,
``token``) plus lockkit's ``host``, ``bootId``, ``pidNs``, ``expires``, ``backend`` and
``version``. Every one of those shapes is read back, so Python and Node processes that
share a lock path recognise each other.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
import time
from typing import Any, ClassVar

import attrs

from lockkit import _notify
from lockkit._info import Lease, LockInfo, Owner
from lockkit.errors import InvalidLockName
from lockkit.spec import Backend, Capabilities

__all__ = [
    "MAX_PAYLOAD",
    "FileBackend",
    "Payload",
    "create_exclusive",
    "decode_payload",
    "encode_payload",
    "lock_path",
    "read_lock_file",
    "remove_if_ours",
]

PAYLOAD_VERSION = 1
"""Payload format version written into every lock file."""
MAX_PAYLOAD = 64 * 1024
"""A lock file larger than this is not a lockkit payload; it is read no further."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC
CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC


def lock_path(name: str | os.PathLike[str]) -> str:
    """Validate a lock file path and return it absolute (symlinks are not resolved).

    Raises:
        InvalidLockName: Empty, contains NUL, names a directory or a symlink, or its
            parent directory does not exist.
    """
    text = os.fspath(name)
    if not text:
        raise InvalidLockName("lock path is empty; pass the path of the lock file")
    if "\0" in text:
        raise InvalidLockName(f"lock path {text!r} contains a NUL character")
    if text.endswith(os.sep):
        raise InvalidLockName(f"lock path {text!r} ends with {os.sep!r}; name a file, not a dir")
    path = os.path.abspath(text)  # noqa: PTH100 - plain strings on the hot path
    parent = os.path.dirname(path)  # noqa: PTH120
    if not os.path.isdir(parent):  # noqa: PTH112
        raise InvalidLockName(
            f"cannot lock {path!r}: its directory {parent!r} does not exist; create it first"
        )
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(st.st_mode):
        raise InvalidLockName(
            f"lock path {path!r} is a symbolic link; lockkit never follows symlinks at the "
            "lock path. Remove the link or choose another path"
        )
    if stat.S_ISDIR(st.st_mode):
        raise InvalidLockName(f"lock path {path!r} is a directory; name a file inside it")
    return path


def symlink_error(path: str) -> InvalidLockName:
    """The error for a symlink found at the lock path while locking (ELOOP from open)."""
    return InvalidLockName(
        f"lock path {path!r} is a symbolic link; lockkit never follows symlinks at the lock "
        "path. Remove the link or choose another path"
    )


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_payload(owner: Owner, backend: str, expires: dt.datetime | None) -> bytes:
    """Serialise an owner into the lock-file payload (readable by OpenClaw too)."""
    created = owner.created or dt.datetime.now(dt.UTC)
    data: dict[str, Any] = {
        "pid": owner.pid,
        "host": owner.host,
        "bootId": owner.boot_id,
        "pidNs": owner.pid_ns,
        "startTime": owner.start_time,
        "starttime": owner.start_time,
        "createdAt": _iso(created),
        "startedAt": int(created.timestamp() * 1000),
        "token": owner.token,
        "expires": _iso(expires) if expires is not None else None,
        "backend": backend,
        "version": PAYLOAD_VERSION,
    }
    return json.dumps(data, separators=(",", ":")).encode()


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
    if pid is None or pid <= 0:
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


def read_lock_file(path: str) -> tuple[bytes, os.stat_result] | None:
    """Read at most ``MAX_PAYLOAD + 1`` bytes of a lock file without following symlinks.

    Returns ``None`` when the file does not exist (the lock is free).

    Raises:
        InvalidLockName: A symlink sits at the lock path.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_error(path) from None
        raise
    try:
        st = os.fstat(fd)
        chunks = []
        remaining = MAX_PAYLOAD + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def inspect_file(path: str, backend: str) -> LockInfo | None:
    """Describe the holder recorded in the lock file at ``path``, or ``None`` if free."""
    found = read_lock_file(path)
    if found is None:
        return None
    data, st = found
    return lock_info(path, backend, decode_payload(data), st)


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
        identity=(st.st_dev, st.st_ino),
        age=age,
        problem=payload.problem,
    )


def remove_if_ours(lease: Lease) -> bool:
    """Unlink the lock file if it still is the one ``lease`` created; never anyone else's.

    Identity is the ``(st_dev, st_ino)`` pair *and* the token in the payload: inode
    numbers are reused at once on ext4, so an inode match alone could be a newer lock.
    """
    found = read_lock_file(lease.name)
    if found is None:
        return False
    data, st = found
    if lease.identity is not None and (st.st_dev, st.st_ino) != lease.identity:
        return False
    owner = decode_payload(data).owner
    if owner is None or owner.token != lease.token:
        return False
    try:
        os.unlink(lease.name)  # noqa: PTH108
    except FileNotFoundError:
        return False
    return True


class FileBackend(Backend):
    """Shared behaviour of backends whose lock is the existence of a file.

    A lock is held while the file exists; releasing removes it. Subclasses implement
    ``try_acquire`` with their primitive; naming, release, inspection, breaking and
    waiting are common.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True, notify=True)

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Require a file path whose directory exists; return it absolute."""
        return lock_path(name)

    def release(self, lease: Lease) -> bool:
        """Remove the lock file if it is still this lease's."""
        return remove_if_ours(lease)

    def inspect(self, name: str) -> LockInfo | None:
        """Read the holder from the lock file."""
        return inspect_file(name, self.name)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock file if it is still the holding ``expected`` describes."""
        current = inspect_file(name, self.name)
        if current is None or current.identity != expected.identity:
            return False
        if (current.owner and current.owner.token) != (expected.owner and expected.owner.token):
            return False
        try:
            os.unlink(name)  # noqa: PTH108
        except FileNotFoundError:
            return False
        return True

    def wait(self, name: str, deadline: float, attempt: int) -> None:
        """Sleep until the lock file is removed (inotify), bounded for remote releases."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        # The bound only matters for releases inotify cannot see (another host of a
        # shared filesystem); it grows so such waiters do not poll hard for long.
        bound = min(remaining, 0.005 * (2 ** min(attempt, 8)), 0.2)
        directory, filename = os.path.split(name)
        if not _notify.wait_for_event(
            directory,
            filename,
            _notify.IN_DELETE | _notify.IN_MOVED_FROM,
            lambda: os.path.lexists(name),
            bound,
        ):
            super().wait(name, deadline, attempt)


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
    try:
        fd = os.open(path, CREATE_FLAGS, 0o644)
    except FileExistsError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_error(path) from None
        raise
    try:
        write_all(fd, payload)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        # The file is ours and incomplete: remove it rather than leave a lock no one holds.
        os.unlink(path)  # noqa: PTH108
        raise
    os.close(fd)
    return st.st_dev, st.st_ino
