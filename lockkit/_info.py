"""Value objects that describe who holds a lock: `Owner`, `LockInfo`, `Lease`.

They are frozen attrs classes: cheap to build, safe to share between threads, and
printable without leaking secrets (tokens are kept out of ``repr``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from lockkit._value import field, frozen

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_PID",
    "Lease",
    "LockInfo",
    "Owner",
    "pid_alive",
    "process_identity",
    "read_start_time",
]


@frozen
class _ProcessIdentity:
    pid: int
    host: str
    boot_id: str
    pid_ns: int | None
    start_time: int | None


_IDENTITY: _ProcessIdentity | None = None


def _read_text(path: str) -> str | None:
    try:
        # utf-8, not ascii (the same for /proc's text): its codec is loaded already.
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123 - hot path, no pathlib
            return handle.read()
    except OSError:
        return None


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or ``None`` where unreadable."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces and
    # parentheses, so split after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def read_start_time(pid: int) -> int | None:
    """Return field 22 of ``/proc/<pid>/stat`` (start time in clock ticks after boot).

    Together with the pid and boot id it names one process for the lifetime of the
    machine: a reused pid has a different start time. ``None`` where ``/proc`` is absent
    or the process is gone.
    """
    fields = _proc_stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return None


MAX_PID = 2**31 - 1
"""The largest pid any platform hands out (``pid_t`` is a signed 32-bit integer); a lock
file naming a larger pid, or one below 1, is malformed."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists in this pid namespace and is not a zombie.

    ``kill(pid, 0)``: ESRCH means dead, EPERM means alive (someone else's). A zombie
    has exited and only waits to be reaped; it holds no lock, so it counts as dead
    (where ``/proc`` shows it; elsewhere a zombie counts as alive). On Windows, where
    ``os.kill`` would *terminate* the process, the process is asked about instead.
    """
    if not 0 < pid <= MAX_PID:
        return False  # no process has such a pid; os.kill would raise OverflowError
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return True
    fields = _proc_stat_fields(pid)
    return not (fields and fields[0] in {"Z", "X"})


if sys.platform == "win32":  # type checkers skip this block on other platforms

    def _windows_pid_alive(pid: int) -> bool:
        """``pid_alive`` for Windows: ``OpenProcess`` then ``GetExitCodeProcess``.

        Only "no such process" counts as dead; anything that cannot be told counts as
        alive, so a live holder's lock is never broken. Untested: lockkit's CI is Linux.
        """
        import ctypes  # noqa: PLC0415 - Windows only
        from ctypes import wintypes  # noqa: PLC0415

        process_query_limited_information = 0x1000
        error_invalid_parameter = 87  # what OpenProcess reports for a pid nobody has
        still_active = 259  # a process that exited with this very code looks alive: safe
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.GetExitCodeProcess.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
        kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
        handle = kernel32.OpenProcess(process_query_limited_information, False, pid)  # noqa: FBT003
        if not handle:
            return ctypes.get_last_error() != error_invalid_parameter
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == still_active
        finally:
            kernel32.CloseHandle(handle)


def process_identity() -> _ProcessIdentity:
    """Describe this process the way lock payloads do; computed once per pid (fork-safe)."""
    global _IDENTITY  # noqa: PLW0603 - a per-process cache, invalidated by pid change
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY.pid != pid:
        boot_id = (_read_text("/proc/sys/kernel/random/boot_id") or "").strip()
        try:
            pid_ns: int | None = os.stat("/proc/self/ns/pid").st_ino  # noqa: PTH116
        except OSError:
            pid_ns = None
        _IDENTITY = _ProcessIdentity(
            pid=pid,
            host=_hostname(),
            boot_id=boot_id,
            pid_ns=pid_ns,
            start_time=read_start_time(pid),
        )
    return _IDENTITY


def _hostname() -> str:
    # os.uname() is what socket.gethostname() reads on POSIX; it spares importing socket.
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket  # noqa: PLC0415 - Windows only

    return socket.gethostname()


_TOKEN_BYTES = 16
_TOKENS_PER_DRAW = 64
# Tokens drawn ahead from os.urandom, with the pid that drew them: one getrandom()
# system call per 64 acquisitions instead of one each. A forked child never takes its
# parent's tokens (the pid differs, and the pool is emptied after os.fork too).
_TOKENS: tuple[int, list[str]] = (0, [])


def new_token(pid: int) -> str:
    """Return a fresh random token (128 bits from ``os.urandom``, hex) for process ``pid``.

    What ``secrets.token_hex(16)`` returns, without importing secrets (and hashlib).
    Each token is handed out once: ``list.pop`` is atomic, so threads never share one.
    """
    global _TOKENS  # noqa: PLW0603 - a per-process pool, checked against the pid
    drawn_by, pool = _TOKENS
    if drawn_by == pid:
        try:
            return pool.pop()
        except IndexError:
            pass
    width = 2 * _TOKEN_BYTES
    text = os.urandom(_TOKEN_BYTES * _TOKENS_PER_DRAW).hex()
    _TOKENS = (pid, [text[i : i + width] for i in range(width, len(text), width)])
    return text[:width]


def _forget_tokens() -> None:
    global _TOKENS  # noqa: PLW0603
    _TOKENS = (0, [])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_tokens)


@frozen
class Owner:
    """Who holds (or held) a lock.

    Two owners are on the *same machine view* only when ``boot_id`` and ``pid_ns`` match;
    only then does checking whether ``pid`` is alive mean anything (containers that
    share a bind mount have different pid namespaces).

    Attributes:
        pid: Process id of the holder.
        host: Host name of the holder's machine.
        boot_id: Linux boot id of the holder's machine (empty where unknown).
        pid_ns: Inode of the holder's pid namespace (``None`` where unknown).
        start_time: The holder's start time in clock ticks since boot (``None`` where
            unknown); detects pid reuse.
        token: Random value unique to this acquisition. Kept out of ``repr``: whoever
            knows it can release the lock.
        created: When the lock was taken (UTC), where known.
    """

    pid: int
    host: str = ""
    boot_id: str = ""
    pid_ns: int | None = None
    start_time: int | None = None
    token: str = field(default="", repr=False)
    created: dt.datetime | None = None

    @classmethod
    def current(cls) -> Owner:
        """Return an owner for this process with a fresh random token."""
        ident = process_identity()
        return cls(
            ident.pid,
            ident.host,
            ident.boot_id,
            ident.pid_ns,
            ident.start_time,
            new_token(ident.pid),
            dt.datetime.now(dt.UTC),
        )

    def same_machine_view(self, other: Owner) -> bool:
        """Whether a pid in ``other`` can be checked from ``self``'s process.

        True when both have a boot id and they and the pid namespaces match. A payload
        with neither boot id nor host (OpenClaw's shapes) names a local process; one
        with a host but no boot id is local when the host names match.
        """
        if self.boot_id and other.boot_id:
            return self.boot_id == other.boot_id and self.pid_ns == other.pid_ns
        if not other.boot_id and not other.host:
            return True
        return not other.boot_id and other.host == self.host

    def describe(self) -> str:
        """A short human description, e.g. ``pid 4242 on host gw-1``."""
        host = f" on host {self.host}" if self.host else ""
        return f"pid {self.pid}{host}"


@frozen
class LockInfo:
    """What a backend can tell about the current holder of a lock.

    Attributes:
        name: The lock name (for file backends, the lock file path).
        backend: Name of the backend that reported it.
        owner: The holder, or ``None`` when the lock exists but its payload could not be
            read (empty, truncated or not lockkit's format).
        expires: Wall-clock UTC time after which the lock counts as stale, or ``None``.
        fencing_token: Monotonic counter of the acquisition, for backends that have one.
        identity: Backend-defined identity of this version of the holding: it changes
            whenever the lock is taken again or refreshed (lock files: their mtime and
            size; redis: the fencing token and the renewal count). ``break_lock`` uses
            it, with the token, to avoid breaking a newer or renewed lock.
        age: Seconds since the lock was taken (or its file last written), where known.
        problem: Why the payload could not be read, when ``owner`` is ``None``.
        shared: The lock is held shared, by one or more readers (see
            `lockkit.ReadWriteLock`). ``owner`` is then ``None`` where the backend does
            not record readers (``filelock``), or one of the readers.
    """

    name: str
    backend: str
    owner: Owner | None
    expires: dt.datetime | None = None
    fencing_token: int | None = None
    identity: tuple[int, ...] | None = None
    age: float | None = None
    problem: str = ""
    shared: bool = False

    def describe(self) -> str:
        """A short human description of the holder, used in error messages."""
        if self.shared:
            who = f", among them {self.owner.describe()}" if self.owner is not None else ""
            return f"readers (a shared lock{who}; backend {self.backend})"
        if self.owner is None:
            return f"an unreadable lock ({self.problem or 'no owner data'}; backend {self.backend})"
        since = ""
        if self.age is not None:
            since = f", for {self.age:.1f} s"
        return f"{self.owner.describe()} (backend {self.backend}{since})"


@frozen
class Lease:
    """Proof that a lock was acquired, returned by ``Backend.try_acquire``.

    Callers treat it as opaque except for ``token`` and ``fencing_token``.

    Attributes:
        name: The lock name.
        backend: Name of the backend that granted it.
        owner: The owner written into the lock.
        expires: Wall-clock UTC expiry for TTL locks, else ``None``.
        fencing_token: Monotonic counter of the acquisition, where the backend has one.
        identity: Backend-defined identity of the holding, for the backend's own use
            (the filelock backend records the locked file's device and inode).
        ttl: The time-to-live in seconds the lock was taken with, when it expires; the
            core renews it every ``ttl / 3`` while held.
        handle: Backend-private state (an open descriptor, a client...); not compared
            and not shown.
    """

    name: str
    backend: str
    owner: Owner
    expires: dt.datetime | None = None
    fencing_token: int | None = None
    identity: tuple[int, ...] | None = None
    ttl: float | None = None
    handle: Any = field(default=None, eq=False, repr=False)

    @property
    def token(self) -> str:
        """The random token of this acquisition."""
        return self.owner.token
