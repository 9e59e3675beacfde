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
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from lockkit._redact import redact_text
from lockkit.errors import BackendUnavailable, LockTimeout

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType
    from typing import TextIO

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
        # close_fds (the default) matters: a filelock lock must not be held by the
        # command's descriptor once lockkit run is gone, nor leak into its children.
        child = subprocess.Popen(list(command), env=env)  # noqa: S603 - running it is the job
    except FileNotFoundError:
        program = command[0]
        what = "no such file" if os.sep in program else "command not found"
        _say(err, f"{program}: {what}")
        return EXIT_NOT_FOUND
    except OSError as exc:
        _say(err, f"{command[0]}: cannot execute: {exc.strerror or exc}")
        return EXIT_CANNOT_EXECUTE
    forwarder.attach(child)
    return exit_status(child.wait())


def _say(err: TextIO, message: str) -> None:
    print(f"lockkit run: {redact_text(message)}", file=err)


class _Forwarder:
    """Passes the signals ``lockkit run`` receives on to the command.

    Signals that arrive before the command exists are remembered: one that came before
    the start means the command is not started at all; one that came while it was
    being started is sent to it right after.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        # Handlers can only be set from the main thread; elsewhere (an embedding
        # program) signals keep their default effect.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in FORWARDED_SIGNALS:
            previous = signal.getsignal(sig)
            # Ignored when we started (a background job of a non-interactive shell
            # ignores SIGINT and SIGQUIT): stays ignored, as the caller asked.
            if previous is signal.SIG_IGN:
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def first_pending(self) -> int | None:
        return self._pending[0] if self._pending else None

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        self._child = child
        while self._pending:
            child.send_signal(self._pending.pop(0))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if signum in _KEYBOARD_SIGNALS and _in_terminal_foreground():
            # The terminal sent it to the whole foreground process group, command
            # included; a second copy would make a Ctrl-C count twice.
            return
        if self._child is None:
            self._pending.append(signum)
        else:
            self._child.send_signal(signum)  # a no-op once the command has exited


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
