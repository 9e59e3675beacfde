"""``lockkit run NAME -- CMD``: hold a lock while a command runs (see `lockkit._run`)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: `lockkit run` does not import typing
if TYPE_CHECKING:
    import argparse

    from lockkit.cli._runargs import RunArgs

__all__ = ["run_command"]

EXIT_USAGE = 2


def run_command(args: argparse.Namespace | RunArgs) -> int:
    """``lockkit run``: exits with the command's status, or one of `lockkit._run`'s."""
    from lockkit._run import run_locked  # noqa: PLC0415

    if not args.argv:
        print(
            "lockkit run: error: no command to run; put it after --: "
            "lockkit run NAME [options] -- CMD [ARG ...]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    timeout = 0.0 if args.nonblock else args.timeout
    return run_locked(args.name, args.argv, backend=args.backend, timeout=timeout, ttl=args.ttl)
