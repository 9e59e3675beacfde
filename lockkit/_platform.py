"""Which operating-system facilities lockkit found in this process, and what it does without them.

lockkit is developed and tested on Linux, where it uses ``/proc``, inotify and the mount
table. None of them is assumed: each is probed where it is used, and a missing one makes
lockkit fall back to something slower or less precise, never crash. `features` runs the
same probes for ``lockkit doctor``, which prints every facility with the fallback in use
where one is missing (see *Portability* in the docs).
"""

from __future__ import annotations

import os
import sys

from lockkit._value import frozen

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Feature", "features"]


@frozen
class Feature:
    """One facility lockkit uses where the platform has it.

    Attributes:
        name: Short name of the facility, e.g. ``inotify``.
        available: Whether this process can use it.
        detail: What was found (or why it is missing).
        fallback: What lockkit does instead when it is missing, and what that costs.
    """

    name: str
    available: bool
    detail: str
    fallback: str


def features() -> list[Feature]:
    """Probe every facility lockkit can use, in this process, now."""
    found = []
    for name, probe, fallback in _PROBES:
        available, detail = probe()
        found.append(Feature(name, available=available, detail=detail, fallback=fallback))
    return found


def _inotify() -> tuple[bool, str]:
    try:
        from lockkit import _notify  # noqa: PLC0415 - probed, not assumed

        found = _notify.available()
    except (ImportError, AttributeError, OSError, TypeError) as exc:
        # The module itself may not load where os or ctypes lack what it needs.
        return False, f"cannot load lockkit._notify: {exc}"
    if found:
        return True, "inotify_init1 in the C library: a release wakes waiters at once"
    return False, "the C library has no inotify (not Linux)"


def _start_times() -> tuple[bool, str]:
    from lockkit import _info  # noqa: PLC0415

    if _info.read_start_time(os.getpid()) is not None:
        return True, "/proc/<pid>/stat: a reused pid is told apart from the lock's holder"
    return False, "/proc/<pid>/stat cannot be read"


def _machine_view() -> tuple[bool, str]:
    from lockkit import _info  # noqa: PLC0415

    ident = _info.process_identity()
    absent = [
        what
        for what, missing in (
            ("boot id", not ident.boot_id),
            ("pid namespace", ident.pid_ns is None),
        )
        if missing
    ]
    if absent:
        return False, f"no {' and '.join(absent)} (no /proc)"
    return True, "boot id and pid namespace from /proc: pids are checked only where they count"


def _pid_liveness() -> tuple[bool, str]:
    if sys.platform == "win32":
        return True, "OpenProcess and GetExitCodeProcess"
    if hasattr(os, "kill"):
        return True, "kill(pid, 0)"
    return False, "no way to ask whether a pid is running"


def _mount_table() -> tuple[bool, str]:
    from lockkit import _fsinfo  # noqa: PLC0415

    table = _fsinfo.MOUNT_TABLE
    try:
        with open(table, encoding="utf-8") as handle:  # noqa: PTH123
            handle.readline()
    except OSError as exc:
        return False, f"{table}: {exc.strerror or exc}"
    return True, f"{table}: the type of the filesystem a lock lives on"


def _nofollow() -> tuple[bool, str]:
    if hasattr(os, "O_NOFOLLOW"):
        return True, "open() refuses a symlink at the lock path"
    return False, "os.O_NOFOLLOW is missing"


def _flock() -> tuple[bool, str]:
    try:
        import fcntl  # noqa: PLC0415

        fcntl.flock  # noqa: B018 - present on every POSIX system, probed anyway
    except (ImportError, AttributeError) as exc:
        return False, f"no fcntl.flock ({exc})"
    return True, "fcntl.flock: OS locks for the filelock backend"


def _fork_hooks() -> tuple[bool, str]:
    if hasattr(os, "register_at_fork"):
        return True, "os.register_at_fork: a forked child renews none of its parent's locks"
    return False, "os.register_at_fork is missing"


_PROBES: tuple[tuple[str, Callable[[], tuple[bool, str]], str], ...] = (
    (
        "inotify",
        _inotify,
        (
            "waiters poll with bounded backoff instead of inotify (excl/hardlink: up to 64 ms "
            "between checks, filelock: up to 50 ms), so a hand-off takes milliseconds to tens "
            "of milliseconds instead of well under one"
        ),
    ),
    (
        "process start times",
        _start_times,
        (
            "pid reuse cannot be detected: a lock whose dead holder's pid was reused counts as "
            "live until its ttl or the stale setting runs out (or `lockkit break --force`); "
            "a zombie holder counts as alive"
        ),
    ),
    (
        "machine view",
        _machine_view,
        (
            "locks are judged local by host name alone: a lock left by this host before a "
            "reboot, or by a container with the same host name, has its pid checked here"
        ),
    ),
    (
        "pid liveness",
        _pid_liveness,
        (
            "holders on this machine are assumed alive: their stale locks are never broken "
            "automatically; use ttl= or `lockkit break --force`"
        ),
    ),
    (
        "filesystem types",
        _mount_table,
        (
            "`doctor` shows the filesystem type as unknown (the mount point is found by "
            "device); auto-detection still decides by probing link(), O_EXCL and flock, but "
            "cannot tell a network filesystem by its type"
        ),
    ),
    (
        "O_NOFOLLOW",
        _nofollow,
        (
            "the lock path is checked with lstat() just before it is opened: a symlink planted "
            "between the check and the open would be followed"
        ),
    ),
    (
        "flock",
        _flock,
        (
            "the filelock backend is unavailable (reported as a plugin problem); use excl, "
            "which works wherever O_CREAT|O_EXCL is atomic"
        ),
    ),
    (
        "fork safety",
        _fork_hooks,
        (
            "a child forked while its parent holds TTL locks would inherit the renewal "
            "schedule and keep renewing the parent's locks; only Windows lacks the hook, and "
            "it has no fork"
        ),
    ),
)
