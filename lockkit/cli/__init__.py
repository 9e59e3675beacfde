"""The ``lockkit`` command line: doctor, backends, status, break, run and coprocess.

``python -m lockkit`` and the ``lockkit`` script run `main`. Every command but ``run``
takes ``--json`` for scripts; its reports are typed (`lockkit.cli._report`), so the text
and the JSON come from the same fields.

Errors are printed as one line on stderr, never as a traceback, and the exit status
says what happened:

* 0 success;
* 1 the check failed (``doctor``: locks do not work there; ``break``: refused or not
  removed);
* 2 bad usage or input (an unknown backend, an invalid lock name, a broken settings
  file);
* 69 (``EX_UNAVAILABLE``) the backend failed: its server cannot be reached, an I/O error,
  or a plugin raised its own exception; the message names the backend and the error;
* 70 (``EX_SOFTWARE``) an unexpected error in lockkit itself (a bug: please report it);
* 130 interrupted (Ctrl-C); 141 standard output's reader went away (as after SIGPIPE).

``run`` exits with its command's status instead (see `lockkit._run`); ``coprocess``
with 0 when its input ends (see `lockkit._coprocess`).

The modules: `lockkit.cli._args` (the parser), `lockkit.cli._report` (typed reports),
one module per command (`lockkit.cli._doctor`, `lockkit.cli._backends`,
`lockkit.cli._status` for ``status`` and ``break``, `lockkit.cli._run`,
`lockkit.cli._coprocess`). They are imported only when their command runs, so
``import lockkit.cli`` stays cheap, and `lockkit.cli._runargs` reads ``run``'s plain
forms without argparse, so a ``lockkit run`` from a script or a hook pays for the lock
and the command only.
"""

from __future__ import annotations

import os
import sys

from lockkit.cli._runargs import parse_run, split_command
from lockkit.errors import BackendUnavailable, LockError

# Not `typing.TYPE_CHECKING`: `lockkit run` starts often, and typing alone costs more
# than this package. argparse is imported only when the words need it (`_parse`).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from lockkit.cli._runargs import RunArgs

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE, as `lockkit run` uses it
EXIT_SOFTWARE = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 128 + 2  # SIGINT is 2 everywhere; `signal` is not needed for it
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a tool killed by SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    for stream in (sys.stdout, sys.stderr):
        # A lock name need not be valid UTF-8 (any bytes but NUL and / make a file name):
        # show what cannot be encoded as escapes instead of failing half-way.
        try:  # noqa: SIM105 - contextlib is not imported on `lockkit run`'s path
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    words, command = split_command(list(sys.argv[1:] if argv is None else argv))
    # `lockkit run`'s plain forms need no argparse; it judges everything else.
    args = parse_run(words, command) or _parse(words, command)
    if isinstance(args, int):
        return args
    return _dispatch(args)


def _parse(words: list[str], command: list[str] | None) -> argparse.Namespace | int:
    """Parse with argparse: the namespace, or the exit status when nothing is left to run."""
    from lockkit.cli._args import build_parser  # noqa: PLC0415 - see parse_run

    parser = build_parser()
    args, extra = parser.parse_known_args(words)
    if extra:
        if args.command == "run" and command is None:
            print(
                f"lockkit run: error: put the command after --: lockkit run NAME [options] "
                f"-- {' '.join(extra)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = command or []
    if args.version:
        from lockkit._version import __version__  # noqa: PLC0415

        print(f"lockkit {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return args


def _handler(command: str) -> Callable[[Any], int]:
    """The function that runs ``command``, imported on demand."""
    if command == "doctor":
        from lockkit.cli._doctor import run_doctor  # noqa: PLC0415

        return run_doctor
    if command == "backends":
        from lockkit.cli._backends import run_backends  # noqa: PLC0415

        return run_backends
    if command in {"status", "break"}:
        from lockkit.cli._status import run_break, run_status  # noqa: PLC0415

        return run_status if command == "status" else run_break
    if command == "coprocess":
        from lockkit.cli._coprocess import run_coprocess  # noqa: PLC0415

        return run_coprocess
    from lockkit.cli._run import run_command  # noqa: PLC0415

    return run_command


def _dispatch(args: argparse.Namespace | RunArgs) -> int:  # noqa: PLR0911 - one return per outcome
    """Run the subcommand; every error becomes one line and an exit status."""
    try:
        status = _handler(args.command)(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except BrokenPipeError:
        return _reader_went_away()
    except BackendUnavailable as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except LockError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a traceback is never the interface
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _fail(
            f"unexpected error (a bug in lockkit, please report it): {detail}", EXIT_SOFTWARE
        )
    return status


def _fail(message: str, status: int) -> int:
    from lockkit._redact import redact_text  # noqa: PLC0415

    try:  # noqa: SIM105 - as in main
        print(f"lockkit: error: {redact_text(message)}", file=sys.stderr)
    except OSError:
        pass  # nowhere to say it
    return status


def _reader_went_away() -> int:
    """Exit quietly when stdout's reader has gone (``lockkit doctor | head -1``).

    What a Unix tool does when SIGPIPE kills it: no message, status 128 + SIGPIPE. Stdout
    is pointed at /dev/null so the interpreter's final flush does not complain either.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
