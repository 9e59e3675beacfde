"""``lockkit coprocess``: serve locks to another program on stdin/stdout."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["run_coprocess"]


def run_coprocess(args: argparse.Namespace) -> int:
    """``lockkit coprocess``: 0 at end of input, 128+N after signal N.

    Standard output carries only protocol lines: the answers get a descriptor of their
    own, and descriptor 1 (and ``sys.stdout``) is pointed at standard error, so a stray
    ``print`` of a plugin or a library lands there instead of corrupting the protocol.
    """
    from lockkit._coprocess import serve  # noqa: PLC0415

    sys.stdout.flush()
    answers = os.dup(sys.stdout.fileno())
    os.set_inheritable(answers, False)  # noqa: FBT003 - positional in os's own API
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    try:
        return serve(
            sys.stdin.fileno(),
            answers,
            backend=args.backend,
            timeout=args.timeout,
            ttl=args.ttl,
            stale=args.stale,
        )
    finally:
        os.close(answers)
