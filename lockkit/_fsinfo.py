"""Which filesystem a path lives on, read from ``/proc/self/mountinfo`` where it exists.

Elsewhere (macOS, Windows, a container without ``/proc``) the type is ``"unknown"``
and the mount point is found by walking up the path until the device changes.
"""

from __future__ import annotations

import os

from lockkit._value import frozen

__all__ = [
    "MOUNT_TABLE",
    "NETWORK_FILESYSTEMS",
    "FsInfo",
    "filesystem_of",
    "may_be_shared",
]

MOUNT_TABLE = "/proc/self/mountinfo"
"""Linux's table of mounted filesystems, with their types."""


NETWORK_FILESYSTEMS = frozenset(
    {
        *("nfs", "nfs4", "cifs", "smb2", "smb3", "smbfs", "9p", "virtiofs", "ceph", "glusterfs"),
        # Cluster and distributed filesystems with kernel clients (HPC sites, SANs, AFS).
        *("lustre", "gpfs", "gfs2", "ocfs2", "afs", "beegfs", "orangefs", "pvfs2", "cephfs"),
    }
)
"""Kernel network and cluster filesystems: other machines may share the locks on them."""


def may_be_shared(fstype: str) -> bool:
    """Whether other hosts may reach a filesystem of this type: network or FUSE.

    A FUSE filesystem (``fuse.sshfs``, ``fuse.smbnetfs``...) is served by a program
    that may itself be a network client; ``fuseblk`` (exFAT, NTFS on a local block
    device) is not counted.
    """
    return fstype in NETWORK_FILESYSTEMS or fstype == "fuse" or fstype.startswith("fuse.")


@frozen
class FsInfo:
    """The filesystem holding a path.

    Attributes:
        fstype: Kernel filesystem type (``ext4``, ``tmpfs``, ``fuseblk``, ``cifs``...), or
            ``"unknown"`` where it cannot be read.
        mount_point: Where that filesystem is mounted.
        source: The mounted device or share (``/dev/sda1``, ``//server/share``...).
        device: ``st_dev`` of the path.
        mount: What tells this mount apart from any other, now or later at the same
            place: its ``mountinfo`` line without the propagation fields (mount id,
            device, root, mount point, options, type, source, superblock options);
            ``""`` without a mount table.
    """

    fstype: str
    mount_point: str
    source: str
    device: int
    mount: str = ""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal \\ooo.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def filesystem_of(path: str) -> FsInfo:
    """Describe the filesystem ``path`` is on (the longest matching mount point wins)."""
    real = os.path.realpath(path)
    device = os.stat(real).st_dev  # noqa: PTH116
    best = FsInfo("unknown", "", "", device)
    try:
        with open(MOUNT_TABLE, encoding="utf-8") as handle:  # noqa: PTH123
            lines = handle.read().splitlines()
    except OSError:
        return FsInfo("unknown", _mount_point_by_device(real, device), "", device)
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
            # Fields 0-5 (id, parent, major:minor, root, mount point, options) and all
            # after " - "; the optional fields between them (propagation peers) may
            # change while the mount stays the same.
            mount = " ".join([fields[0], *fields[2:6], "-", *extra])
            best = FsInfo(extra[0], mount_point, _unescape(extra[1]), device, mount)
    return best


def _mount_point_by_device(real: str, device: int) -> str:
    """The highest directory above ``real`` on the same device: its mount point.

    What ``df`` finds without a mount table. A bind mount of a directory of the same
    filesystem is not told apart (it has the same device), so this may name a directory
    above the real mount point; ``doctor`` only shows it.
    """
    current = real if os.path.isdir(real) else os.path.dirname(real)  # noqa: PTH112, PTH120
    while True:
        parent = os.path.dirname(current)  # noqa: PTH120
        if parent == current:
            return current  # the root of the tree (or of a Windows drive)
        try:
            if os.stat(parent).st_dev != device:  # noqa: PTH116
                return current
        except OSError:
            return current  # not allowed to look further up: the best we know
        current = parent
