"""Which filesystem a path lives on, read from ``/proc/self/mountinfo`` where it exists."""

from __future__ import annotations

import os

import attrs

__all__ = ["FsInfo", "filesystem_of"]


@attrs.frozen
class FsInfo:
    """The filesystem holding a path.

    Attributes:
        fstype: Kernel filesystem type (``ext4``, ``tmpfs``, ``fuseblk``, ``cifs``...), or
            ``"unknown"`` where it cannot be read.
        mount_point: Where that filesystem is mounted.
        source: The mounted device or share (``/dev/sda1``, ``//server/share``...).
        device: ``st_dev`` of the path.
    """

    fstype: str
    mount_point: str
    source: str
    device: int


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal \\ooo.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def filesystem_of(path: str) -> FsInfo:
    """Describe the filesystem ``path`` is on (the longest matching mount point wins)."""
    real = os.path.realpath(path)
    device = os.stat(real).st_dev  # noqa: PTH116
    best = FsInfo("unknown", "", "", device)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:  # noqa: PTH123
            lines = handle.read().splitlines()
    except OSError:
        return best
    best_len = -1
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        extra = right.split()
        if len(fields) < 5 or len(extra) < 2:  # noqa: PLR2004 - mountinfo's fixed fields
            continue
        mount_point = _unescape(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        # Later lines for the same mount point shadow earlier ones (stacked mounts).
        if inside and len(mount_point) >= best_len:
            best_len = len(mount_point)
            best = FsInfo(extra[0], mount_point, _unescape(extra[1]), device)
    return best
