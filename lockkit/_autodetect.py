"""Auto-detection: probe a lock's directory once per device and pick the best backend.

Every registered backend takes part through its ``probe()`` classmethod; the one that
works there with the highest preference wins. For the built-ins that means:

| where | link() | O_EXCL | flock | chosen |
| --- | --- | --- | --- | --- |
| ext4, xfs, btrfs, tmpfs, overlay, NFS | works | works | works | ``hardlink`` |
| SMB/CIFS, 9p, virtiofs, exFAT, vfat, many FUSE | ENOTSUP or EPERM | works | varies | ``excl`` |
| O_EXCL not atomic (rare FUSE stacks) | - | fails | works | ``filelock`` |
| read-only or nothing works | - | fails | fails | error: ``BackendUnavailable`` |

``hardlink`` and ``excl`` write the same lock file and exclude each other, so hosts that
reach different verdicts for one share (one can link, the other cannot) still agree.
The verdict and its evidence are cached per device (``st_dev``) for the process.
"""

from __future__ import annotations

import os
import threading
import warnings

from lockkit._fsinfo import NETWORK_FILESYSTEMS, filesystem_of, may_be_shared
from lockkit._log import log
from lockkit._value import frozen
from lockkit.errors import BackendUnavailable, LockkitWarning
from lockkit.spec import Support

__all__ = [
    "NETWORK_FILESYSTEMS",
    "Detection",
    "detect",
    "forget",
    "may_be_shared",
    "sharing_notes",
]

CLIENT_SIDE_EXCL = frozenset({"fuse.smbnetfs"})
"""Filesystems whose ``O_CREAT|O_EXCL`` excludes only the processes of one client.

Measured through two smbnetfs mounts of one Samba share: 260 of 300 races of an
exclusive create had two winners (the client looks the name up, then creates the file
without the server's exclusive disposition). Within one client the kernel serialises
creates in a directory, so processes of that client still exclude each other.
"""


def sharing_notes(fstype: str) -> list[str]:
    """What a filesystem of this type means for locks shared with other hosts."""
    notes = []
    if may_be_shared(fstype):
        notes.append(
            f"{fstype} may be shared with other hosts: only backends that work across "
            "hosts are chosen automatically (flock() through a FUSE or network client "
            "excludes only the processes of that client, so filelock never is)"
        )
    if fstype in CLIENT_SIDE_EXCL:
        notes.append(
            f"O_CREAT|O_EXCL through {fstype} is exclusive only among this client's "
            "processes (measured: 260 of 300 races between two clients had two winners); "
            "processes on other hosts that lock through their own mount are NOT excluded. "
            "Mount the share with the kernel's cifs client, or lock in a server "
            "(LOCKKIT_URL=redis://...)"
        )
    return notes


@frozen
class Detection:
    """The outcome of probing a directory.

    Attributes:
        backend: The chosen backend's name.
        reason: One sentence saying why.
        fstype: The filesystem type found there.
        mount_point: Where that filesystem is mounted.
        evidence: Every backend's probe verdict, by name.
    """

    backend: str
    reason: str
    fstype: str
    mount_point: str
    evidence: tuple[tuple[str, Support], ...]


_CACHE: dict[int, Detection] = {}
_GUARD = threading.Lock()


def detect(directory: str) -> Detection:
    """Probe ``directory`` (cached per device) and return the chosen backend.

    Raises:
        BackendUnavailable: No registered backend can lock there; the message carries
            every probe's reason.
    """
    device = os.stat(directory).st_dev  # noqa: PTH116
    with _GUARD:
        cached = _CACHE.get(device)
    if cached is not None:
        return cached
    detection = _probe(directory)
    with _GUARD:
        first = device not in _CACHE
        detection = _CACHE.setdefault(device, detection)
    if first and detection.fstype in CLIENT_SIDE_EXCL:
        # Once per device and process, like hardlink's fallback: the choice works for
        # this client's processes, and other hosts' must not rely on it.
        message = f"locks in {directory}: {sharing_notes(detection.fstype)[-1]}"
        log.warning("%s", message)
        warnings.warn(message, LockkitWarning, stacklevel=4)
    return detection


def forget() -> None:
    """Drop cached verdicts (tests, or after remounting)."""
    with _GUARD:
        _CACHE.clear()


def _probe(directory: str) -> Detection:
    from lockkit._registry import get_registry  # noqa: PLC0415 - avoids an import cycle

    fs = filesystem_of(directory)
    shared = may_be_shared(fs.fstype)
    evidence = []
    local_only = set()
    for entry in get_registry().entries():
        if not entry.cls.capabilities.across_hosts:
            local_only.add(entry.name)
        try:
            support = entry.cls.probe(directory)
        except Exception as exc:  # noqa: BLE001 - a plugin's probe must not break detection
            support = Support(ok=False, reason=f"probe raised {type(exc).__name__}: {exc}")
        evidence.append((entry.name, support))
    usable = [
        (name, support)
        for name, support in evidence
        if support.ok and not (shared and name in local_only)
    ]
    if not usable:
        reasons = "; ".join(f"{name}: {support.reason}" for name, support in evidence)
        why = (
            "; other hosts may share this filesystem, so backends that exclude only this "
            f"host's processes ({', '.join(sorted(local_only))}) are not chosen automatically"
            if shared and local_only
            else ""
        )
        raise BackendUnavailable(
            f"no lock backend works in {directory} ({fs.fstype} at {fs.mount_point}): "
            f"{reasons}{why}. Use a writable directory on another filesystem, name a "
            "backend explicitly, or use a server backend such as LOCKKIT_BACKEND=redis://host"
        )
    # Highest preference wins; ties go to the name, so every process picks the same one.
    name, support = max(usable, key=lambda item: (item[1].preference, item[0]))
    where = f"{fs.fstype} at {fs.mount_point}" if fs.mount_point else fs.fstype
    note = " (may be shared with other hosts)" if shared else ""
    reason = f"{where}{note}: {support.reason}"
    return Detection(name, reason, fs.fstype, fs.mount_point, tuple(evidence))
