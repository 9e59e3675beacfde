"""Which fork of the process this is, so a lease stays with the process that took it.

A forked child inherits its parent's `Lock` objects, leases included, but not the
locks themselves: the parent still holds them. If the child released them (leaving a
``with`` block, ``sys.exit`` unwinding it, or a finalizer at exit), another process
could take a lock the parent believes it holds. The core records `generation` when a
lock object is made or acquired and compares it before acting on a lease; a mismatch
means the lease was inherited, and the child forgets it without telling the backend.
"""

from __future__ import annotations

import os

__all__ = ["generation"]

generation = 0
"""Bumped in every forked child; compared, never read for its value."""


def _forked() -> None:
    global generation  # noqa: PLW0603 - one int, read on the hot path without a call
    generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
