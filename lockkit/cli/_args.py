"""The command line's arguments: one ``argparse`` parser with a subparser per command.

``lockkit run``'s plain forms skip it (`lockkit.cli._runargs`); it parses everything
else and is the one that reports usage errors and prints help.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lockkit._numbers import Kind, parse
from lockkit.cli._runargs import split_command

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["build_parser", "split_command"]

_BACKEND_HELP = (
    "a backend name or URL; default: LOCKKIT_BACKEND/LOCKKIT_URL, the settings file, then "
    "auto-detection, as for lockkit.Lock (a lock file is read by the backend that wrote it)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``lockkit`` parser, with a subparser per command (``doctor``... ``coprocess``)."""
    parser = argparse.ArgumentParser(
        prog="lockkit", description="Inter-process locks that work on every filesystem."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="probe a directory and prove that locks work there",
        description="Show the filesystem and configuration of DIR, the backend a lock "
        "there would use and why, then take and release a lock with every backend that "
        "works there and prove it with a short multi-process increment check.",
    )
    doctor.add_argument(
        "directory",
        nargs="?",
        default=None,
        metavar="DIR",
        help="default: the OpenClaw state dir if it exists, else the current directory",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--processes",
        type=_count(64),
        default=4,
        metavar="N",
        help="processes in the check (4; at most 64)",
    )
    doctor.add_argument(
        "--increments",
        type=_count(100_000),
        default=50,
        metavar="N",
        help="increments each (50; at most 100000)",
    )
    doctor.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="check only this backend, a name or a server URL (repeatable); default: every "
        "registered backend",
    )

    backends = commands.add_parser(
        "backends",
        help="list the registered backends",
        description="List every registered backend with its distribution, capabilities "
        "and whether it works in the current directory.",
    )
    backends.add_argument("--json", action="store_true", help="print a JSON array")

    status = commands.add_parser(
        "status",
        help="show who holds a lock and whether it is stale",
        description="Show the holder of the lock PATH, its age and machine view, and "
        "the stale verdict with the rule that decided it. The backend is chosen as "
        "lockkit.Lock(PATH) would choose it, and shown with the reason.",
    )
    status.add_argument("path", metavar="PATH")
    status.add_argument("--backend", metavar="NAME", help=_BACKEND_HELP)
    status.add_argument("--json", action="store_true", help="print one JSON object")

    breaker = commands.add_parser(
        "break",
        help="remove a stale lock (a live one only with --force)",
        description="Remove the lock PATH if the stale rules say its holder is gone. "
        "A live lock is refused unless --force is given. Prints what was removed. The "
        "backend is chosen as lockkit.Lock(PATH) would choose it.",
    )
    breaker.add_argument("path", metavar="PATH")
    breaker.add_argument("--backend", metavar="NAME", help=_BACKEND_HELP)
    breaker.add_argument("--force", action="store_true", help="remove even a live lock")
    breaker.add_argument("--json", action="store_true", help="print one JSON object")

    _add_run_parser(commands)
    _add_coprocess_parser(commands)
    return parser


def _add_run_parser(commands: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    run = commands.add_parser(
        "run",
        help="hold a lock while a command runs (like flock(1), with any backend)",
        usage="lockkit run NAME [--backend SPEC] [--timeout S | --nonblock] [--ttl S] "
        "-- CMD [ARG ...]",
        description="Take the lock NAME, run CMD (without a shell) while holding it, "
        "then release it. Exits with CMD's status; SIGINT, SIGTERM, SIGHUP, SIGQUIT, "
        "SIGUSR1 and SIGUSR2 are passed on to CMD. CMD finds the lock's canonical name "
        "in $LOCKKIT_LOCK.",
        epilog="exit status: CMD's own (128+N if signal N killed it); 75 the lock was "
        "busy (--nonblock, --timeout); 126 CMD cannot be executed; 127 CMD not found; "
        "2 bad usage, lock name or settings; 69 no backend works there or its server is "
        "unreachable; 71 an OS error while locking.",
    )
    run.add_argument(
        "name",
        metavar="NAME",
        help="the lock: the lock file's path for file backends, any name for servers",
    )
    run.add_argument(
        "--backend",
        metavar="SPEC",
        help="a backend name or URL; default: LOCKKIT_BACKEND/LOCKKIT_URL, the settings "
        "file, then auto-detection, as for lockkit.Lock",
    )
    wait = run.add_mutually_exclusive_group()
    wait.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="give up after S seconds (exit 75); 0 makes one attempt; default: the "
        "settings' timeout, else wait as long as it takes",
    )
    wait.add_argument(
        "-n",
        "--nonblock",
        action="store_true",
        help="make one attempt; if the lock is busy, exit 75 at once",
    )
    run.add_argument(
        "--ttl",
        type=_ttl,
        metavar="S",
        help="let the lock expire S seconds after its last renewal; it is renewed while "
        "CMD runs (backends with the ttl capability)",
    )


def _add_coprocess_parser(commands: Any) -> None:  # noqa: ANN401 - argparse's private type
    coprocess = commands.add_parser(
        "coprocess",
        help="serve locks to another program over stdin/stdout (JSON Lines)",
        description="Stay running and take, release and inspect locks on request: one "
        "JSON object per line on stdin, one answer per line on stdout (see the "
        "co-process how-to for the protocol). The first line out announces the protocol "
        "version and pid. Locks are released when stdin ends, and on SIGTERM, SIGINT or "
        "SIGHUP. The options are defaults; each request may override them.",
        epilog="exit status: 0 stdin ended; 128+N signal N; 141 stdout's reader went away; "
        "2 bad usage.",
    )
    coprocess.add_argument("--backend", metavar="SPEC", help=_BACKEND_HELP)
    coprocess.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="seconds an acquire waits when its request gives no timeout; default: the "
        "settings' timeout, else as long as it takes",
    )
    coprocess.add_argument(
        "--ttl",
        type=_ttl,
        metavar="S",
        help="default lock expiry, renewed while held (backends with the ttl capability)",
    )
    coprocess.add_argument(
        "--stale",
        type=_stale,
        metavar="S",
        help="default age after which a lock of another machine counts as stale",
    )


def _stale(text: str) -> float:
    return _number("stale", text)


def _seconds(text: str) -> float:
    return _number("timeout", text)


def _ttl(text: str) -> float:
    return _number("ttl", text)


def _number(kind: Kind, text: str) -> float:
    try:
        return parse(kind, text, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to ``most``."""

    def convert(text: str) -> int:
        if not text.strip().isascii() or not text.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        value = int(text)
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"expected a number from 1 to {most}, got {value}")
        return value

    return convert
