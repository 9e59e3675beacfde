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

import attrs

from lockkit._fsinfo import filesystem_of
from lockkit.errors import BackendUnavailable
from lockkit.spec import Support

__all__ = ["Detection", "detect", "forget"]

# Filesystems whose locks other machines may share: a note for doctor and the reason.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb2", "smb3", "smbfs", "9p", "virtiofs", "ceph", "glusterfs"}
)


@attrs.frozen
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
        return _CACHE.setdefault(device, detection)


def forget() -> None:
    """Drop cached verdicts (tests, or after remounting)."""
    with _GUARD:
        _CACHE.clear()


def _probe(directory: str) -> Detection:
    from lockkit._registry import get_registry  # noqa: PLC0415 - avoids an import cycle

    fs = filesystem_of(directory)
    evidence = []
    for entry in get_registry().entries():
        try:
            support = entry.cls.probe(directory)
        except Exception as exc:  # noqa: BLE001 - a plugin's probe must not break detection
            support = Support(ok=False, reason=f"probe raised {type(exc).__name__}: {exc}")
        evidence.append((entry.name, support))
    usable = [(name, support) for name, support in evidence if support.ok]
    if not usable:
        reasons = "; ".join(f"{name}: {support.reason}" for name, support in evidence)
        raise BackendUnavailable(
            f"no lock backend works in {directory} ({fs.fstype} at {fs.mount_point}): {reasons}."
            " Use a writable directory on another filesystem, or a server backend such as "
            "LOCKKIT_BACKEND=redis://host"
        )
    # Highest preference wins; ties go to the name, so every process picks the same one.
    name, support = max(usable, key=lambda item: (item[1].preference, item[0]))
    where = f"{fs.fstype} at {fs.mount_point}" if fs.mount_point else fs.fstype
    shared = " (a network filesystem)" if fs.fstype in NETWORK_FILESYSTEMS else ""
    reason = f"{where}{shared}: {support.reason}"
    return Detection(name, reason, fs.fstype, fs.mount_point, tuple(evidence))
