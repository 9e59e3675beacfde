"""What kind of filesystem a lock directory is on: local, or reachable by other hosts.

Decided once per directory from ``/proc/self/mountinfo`` (see `lockkit._fsinfo`) and
cached: it picks inline or threaded I/O for asyncio callers and turns on shares.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    _P = ParamSpec("_P")
    _T = TypeVar("_T")

LOCAL_FSTYPES = frozenset({
    "bcachefs", "btrfs", "exfat", "ext2", "ext3", "ext4", "f2fs", "hfsplus", "jfs",
    "msdos", "nilfs2", "ntfs3", "overlay", "ramfs", "reiserfs", "tmpfs", "vfat", "xfs",
    "zfs",
})  # fmt: skip
"""Kernel filesystems on local storage: a lock-file system call there takes microseconds
and cannot hang waiting for a server, so asyncio callers make it on the event loop."""

_FS_FACTS: dict[str, tuple[str, bool]] = {}


def _fs_facts(directory: str) -> tuple[str, bool]:
    """The type of ``directory``'s filesystem and whether other hosts may reach it, cached."""
    facts = _FS_FACTS.get(directory)
    if facts is None:
        from lockkit._fsinfo import filesystem_of, may_be_shared  # noqa: PLC0415 - once per dir

        try:
            fstype = filesystem_of(directory).fstype
        except OSError:
            fstype = ""
        facts = (fstype, may_be_shared(fstype))
        if len(_FS_FACTS) >= 1024:  # noqa: PLR2004 - a bound, not a tunable
            _FS_FACTS.clear()
        _FS_FACTS[directory] = facts
    return facts


def fstype_of(directory: str) -> str:
    """The type of the filesystem ``directory`` is on (``""`` if unknown), cached."""
    return _fs_facts(directory)[0]


def on_share(directory: str) -> bool:
    """Whether other hosts may reach ``directory`` (a network or FUSE filesystem), cached."""
    return _fs_facts(directory)[1]


def inline_io(directory: str) -> bool:
    """Whether lock-file system calls in ``directory`` may run on an asyncio event loop.

    Yes on `LOCAL_FSTYPES`: the few system calls of an attempt cost less there than a
    hop to a worker thread and back, and an attempt that never suspends cannot be
    interrupted by cancellation. No on network filesystems (NFS, SMB, 9p...), FUSE
    (a user-space daemon answers) and anything unrecognised: there a call may stall
    while a server is unreachable, so it goes to a worker thread. Decided once per
    directory, from ``/proc/self/mountinfo``.
    """
    return fstype_of(directory) in LOCAL_FSTYPES


async def run_file_io(path: str, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run ``call`` for the lock file ``path``: inline where `inline_io`, else in a thread.

    Only for calls whose interruption by cancellation leaves nothing behind (reading,
    breaking a stale lock); attempts and releases have their own methods.
    """
    if inline_io(os.path.dirname(path)):  # noqa: PTH120
        return call(*args, **kwargs)
    import asyncio  # noqa: PLC0415 - already imported by the running event loop

    return await asyncio.to_thread(call, *args, **kwargs)
