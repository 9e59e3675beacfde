"""``lockkit run``: hold a lock while a command runs, like ``flock(1)`` for every backend.

Shell scripts, cron jobs and Node programs share locks with Python ``lockkit.Lock``
users through it: ``lockkit run /srv/app/state.lock -- ./update.sh``.

The ``lockkit run`` process is the lock's owner (its pid is in the lock file), and the
command is its child. Signals that ask a program to stop or to act (``SIGINT``,
``SIGTERM``, ``SIGHUP``, ``SIGQUIT``, ``SIGUSR1``, ``SIGUSR2``) are passed on to the
command; the lock is released once the command has exited, and ``lockkit run`` exits
with the command's status. If ``lockkit run`` itself is killed with ``SIGKILL`` the
command keeps running, and the lock is left to the stale rules: its holder pid is dead,
so the next user on this machine breaks it (a ``filelock`` lock is freed by the kernel
at once).
"""

from __future__ import annotations

import os
import signal
import sys

from lockkit.errors import BackendUnavailable, LockTimeout

# A short-lived ``lockkit run`` pays for every import, so this module uses only what the
# lock itself loads, plus `signal`: no typing (see `lockkit/__init__.py`), no subprocess
# (its import costs more than the rest of the CLI; `_start` does its job with
# os.posix_spawnp), and `lockkit._redact` (re) only when there is a message to print.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType
    from typing import Any, TextIO

    from lockkit._lock import Lock

__all__ = [
    "EXIT_BUSY",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_NOT_FOUND",
    "EXIT_OSERR",
    "EXIT_UNAVAILABLE",
    "FORWARDED_SIGNALS",
    "LOCK_ENV",
    "exit_status",
    "run_locked",
]

EXIT_UNAVAILABLE = 69
"""``EX_UNAVAILABLE``: no backend can lock there, or its server cannot be reached."""
EXIT_OSERR = 71
"""``EX_OSERR``: taking the lock failed with an OS error (permission denied...)."""
EXIT_BUSY = 75
"""``EX_TEMPFAIL``: the lock was busy (``--nonblock``) or the ``--timeout`` ran out."""
EXIT_CANNOT_EXECUTE = 126
"""The command exists but cannot be executed (as in shells)."""
EXIT_NOT_FOUND = 127
"""The command was not found (as in shells)."""

_STDERR = 2
"""The last of the standard descriptors, which the command shares with ``lockkit run``."""

LOCK_ENV = "LOCKKIT_LOCK"
"""Set in the command's environment to the canonical name of the lock it runs under."""

FORWARDED_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)  # Windows has only SIGINT and SIGTERM of these
)
"""The signals ``lockkit run`` passes on to the command."""

# Typed at a terminal, these reach every process of the terminal's foreground process
# group: the command already has its own copy.
_KEYBOARD_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGQUIT") if hasattr(signal, name)
)


def exit_status(returncode: int) -> int:
    """The exit status for a command's return code: a death by signal N becomes 128+N.

    That is how shells report it, so ``$?`` after ``lockkit run`` reads the same as
    after running the command directly.
    """
    return 128 - returncode if returncode < 0 else returncode


def run_locked(
    name: str,
    command: Sequence[str],
    *,
    backend: str | None = None,
    timeout: float | None = None,
    ttl: float | None = None,
    err: TextIO | None = None,
) -> int:
    """Take the lock ``name``, run ``command`` while holding it, release it.

    Args:
        name: The lock, as for `lockkit.Lock`.
        command: The program and its arguments; run without a shell.
        backend: A backend name or URL; ``None`` selects as `lockkit.Lock` does.
        timeout: Seconds to wait for the lock; ``0`` makes one attempt, ``None`` takes
            the settings' timeout, else waits forever.
        ttl: Lock expiry in seconds, renewed while the command runs (backends with
            the ``ttl`` capability).
        err: Where messages go (default: standard error).

    Returns:
        The command's exit status (128+N if signal N killed it), or `EXIT_BUSY`,
        `EXIT_UNAVAILABLE`, `EXIT_OSERR`, `EXIT_CANNOT_EXECUTE`, `EXIT_NOT_FOUND`.

    Raises:
        LockError: Bad input: an invalid lock name, an unknown backend, a broken
            settings file (the command line reports it with status 2).
    """
    from lockkit._lock import Lock  # noqa: PLC0415 - keeps `import lockkit.cli` light

    stream = err if err is not None else sys.stderr
    try:
        lock = Lock(name, backend=backend, timeout=timeout, ttl=ttl)
        lock.acquire()
    except LockTimeout as exc:
        _say(stream, f"{exc}; did not run {command[0]!r}")
        return EXIT_BUSY
    except BackendUnavailable as exc:
        _say(stream, f"{exc}; did not run {command[0]!r}")
        return EXIT_UNAVAILABLE
    except OSError as exc:
        _say(stream, f"cannot take lock {name!r}: {exc}; did not run {command[0]!r}")
        return EXIT_OSERR
    except KeyboardInterrupt:
        return 128 + signal.SIGINT  # Ctrl-C while waiting: nothing is held
    forwarder = _Forwarder()
    forwarder.install()
    try:
        return _run_child(lock, command, forwarder, stream)
    finally:
        try:
            lock.release()
        except OSError as exc:
            # The command has run; its status still stands. The lock file left behind
            # names this (soon dead) process, so the stale rules will reclaim it.
            _say(stream, f"could not release lock {lock.name!r}: {exc}")
        finally:
            forwarder.restore()


def _run_child(lock: Lock, command: Sequence[str], forwarder: _Forwarder, err: TextIO) -> int:
    early = forwarder.first_pending()
    if early is not None:
        return 128 + early  # asked to stop before the command started: do not start it
    env = {**os.environ, LOCK_ENV: lock.name}
    try:
        pid = _start(command, env)
    except FileNotFoundError:
        program = command[0]
        what = "no such file" if os.sep in program else "command not found"
        _say(err, f"{program}: {what}")
        return EXIT_NOT_FOUND
    except OSError as exc:
        _say(err, f"{command[0]}: cannot execute: {exc.strerror or exc}")
        return EXIT_CANNOT_EXECUTE
    forwarder.attach(pid)
    # Wait without reaping first: until the command is reaped its pid cannot be reused,
    # so a signal forwarded in between reaches the (exited) command and nobody else.
    # Both calls are retried after a signal handler has run (PEP 475).
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    forwarder.detach()
    _, status = os.waitpid(pid, 0)
    return exit_status(os.waitstatus_to_exitcode(status))


def _start(command: Sequence[str], env: dict[str, str]) -> int:
    """Start ``command`` (searched on ``PATH``) as `subprocess.Popen` would; return its pid.

    What Popen's defaults do, kept: descriptors this process inherited are closed in the
    command (``close_fds``), and SIGPIPE and SIGXFSZ, which Python ignores, are reset to
    their defaults (``restore_signals``). lockkit's own descriptors need no closing: Python
    opens them close-on-exec (PEP 446), so a filelock lock's descriptor never outlives
    ``lockkit run`` in the command or its children. A failed exec raises here, as in
    Popen (glibc and musl report the exec's errno).
    """
    inherited = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_descriptors() if fd > _STDERR]
    defaults = [getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)]
    return os.posix_spawnp(
        command[0], list(command), env, file_actions=inherited, setsigdef=defaults
    )


def _inherited_descriptors() -> list[int]:
    """This process's open descriptors that an exec would pass on."""
    try:
        names = os.listdir("/proc/self/fd")  # noqa: PTH208 - no pathlib on this path
    except OSError:
        return []  # no /proc: the command inherits what we inherited, as under flock(1)
    found = []
    for name in names:
        try:
            if os.get_inheritable(int(name)):
                found.append(int(name))
        except OSError:
            pass  # the directory's own descriptor, closed by now
    return found


def _say(err: TextIO, message: str) -> None:
    from lockkit._redact import redact_text  # noqa: PLC0415 - re, only for a message

    print(f"lockkit run: {redact_text(message)}", file=err)


class _Forwarder:
    """Passes the signals ``lockkit run`` receives on to the command.

    Signals that arrive before the command exists are remembered: one that came before
    the start means the command is not started at all; one that came while it was
    being started is sent to it right after.
    """

    def __init__(self) -> None:
        self._child: int | None = None  # the command's pid while it may take a signal
        self._started = False
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in FORWARDED_SIGNALS:
            previous = signal.getsignal(sig)
            # Ignored when we started (a background job of a non-interactive shell
            # ignores SIGINT and SIGQUIT): stays ignored, as the caller asked.
            if previous is signal.SIG_IGN:
                continue
            try:
                signal.signal(sig, self._handle)
            except ValueError:
                # Not the main thread (an embedding program): handlers can only be set
                # from there, so signals keep their default effect. Asking signal.signal
                # is cheaper than importing threading to ask first.
                return
            self._previous[sig] = previous

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def first_pending(self) -> int | None:
        return self._pending[0] if self._pending else None

    def attach(self, pid: int) -> None:
        self._child = pid
        self._started = True
        while self._pending:
            os.kill(pid, self._pending.pop(0))

    def detach(self) -> None:
        """The command has exited: later signals have no one to go to."""
        self._child = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if signum in _KEYBOARD_SIGNALS and _in_terminal_foreground():
            # The terminal sent it to the whole foreground process group, command
            # included; a second copy would make a Ctrl-C count twice.
            return
        if not self._started:
            self._pending.append(signum)
        elif self._child is not None:
            os.kill(self._child, signum)  # not yet reaped: a no-op once it has exited


def _in_terminal_foreground() -> bool:
    """Whether this process's group is the foreground group of its controlling terminal."""
    if not hasattr(os, "tcgetpgrp"):
        return False
    flags = os.O_RDONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open("/dev/tty", flags)
    except OSError:
        return False  # no controlling terminal (cron, a daemon, a new session)
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)
