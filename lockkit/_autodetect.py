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
The verdict and its evidence are cached per device (``st_dev``) for the process, and
per mount in the user's cache (`lockkit._cache`) for later processes:

* The key is the mount's ``/proc/self/mountinfo`` line (mount id, device numbers,
  root, mount point, options, type, source, superblock options) with ``st_dev``, so a
  filesystem unmounted and another mounted at the same place never meets the old
  verdict (it gets a new mount id, and usually another type or source).
* A verdict holds only for the backends that took part (every installed backend,
  named by distribution and class, as the registry's record lists them) and for this
  version of lockkit: another set means a fresh probe.
* Not cached: network filesystems (the server, not the mount, decides what link() or
  an exclusive create does, and it can change or fail over under one mount), FUSE
  filesystems including ``fuseblk`` (a program answers every call, and its behaviour
  is not tied to anything the mount table shows), and systems without a mount table
  (nothing identifies a mount). They are probed once per process, as before.
* ``lockkit doctor`` re-probes and rewrites the verdict; ``LOCKKIT_NO_CACHE=1``
  bypasses the cache.
"""

from __future__ import annotations

import _thread
import os

from lockkit import _cache
from lockkit._fsinfo import NETWORK_FILESYSTEMS, FsInfo, filesystem_of, may_be_shared
from lockkit._log import log
from lockkit._value import evolve, frozen
from lockkit.errors import BackendUnavailable, LockkitWarning
from lockkit.spec import Support

__all__ = [
    "NETWORK_FILESYSTEMS",
    "Detection",
    "detect",
    "forget",
    "may_be_shared",
    "not_cached_because",
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
        cached: How the user's cache was used: ``"used"`` (this verdict came from it),
            ``"saved"`` (probed now and saved), or ``""`` (probed, not saved).
    """

    backend: str
    reason: str
    fstype: str
    mount_point: str
    evidence: tuple[tuple[str, Support], ...]
    cached: str = ""


_CACHE: dict[int, Detection] = {}
_GUARD = _thread.allocate_lock()
VERDICTS = "autodetect.cache"
"""The cache file of verdicts, in `lockkit._cache.cache_dir`."""
_FORMAT = 1
_MAX_VERDICTS = 64


def detect(directory: str, *, refresh: bool = False) -> Detection:
    """Probe ``directory`` (cached per device and per mount) and return the chosen backend.

    Args:
        directory: Where the lock file goes.
        refresh: Ignore every cached verdict for this filesystem, probe, and save the
            new verdict (``lockkit doctor``).

    Raises:
        BackendUnavailable: No registered backend can lock there; the message carries
            every probe's reason.
    """
    device = os.stat(directory).st_dev  # noqa: PTH116
    with _GUARD:
        cached = None if refresh else _CACHE.get(device)
    if cached is not None:
        return cached
    fs = filesystem_of(directory)
    remembered = None if refresh else _remembered(fs, device)
    if remembered is not None:
        with _GUARD:
            return _CACHE.setdefault(device, remembered)
    try:
        detection = _probe(directory, fs)
    except BackendUnavailable:
        if refresh:
            _save(fs, device, None)
        raise
    if _save(fs, device, detection):
        detection = evolve(detection, cached="saved")
    with _GUARD:
        if refresh:
            _CACHE.pop(device, None)
        first = device not in _CACHE
        detection = _CACHE.setdefault(device, detection)
    if first and detection.fstype in CLIENT_SIDE_EXCL:
        # Once per device and process, like hardlink's fallback: the choice works for
        # this client's processes, and other hosts' must not rely on it.
        message = f"locks in {directory}: {sharing_notes(detection.fstype)[-1]}"
        log.warning("%s", message)
        import warnings  # noqa: PLC0415 - only to warn (warnings is not preloaded)

        warnings.warn(message, LockkitWarning, stacklevel=4)
    return detection


def forget() -> None:
    """Drop this process's verdicts (tests, or after remounting); see also `detect`."""
    with _GUARD:
        _CACHE.clear()


def not_cached_because(fs: FsInfo) -> str:
    """Why verdicts for ``fs`` are not kept in the user's cache; ``""`` if they are."""
    if not _cache.enabled():
        return f"the cache is disabled ({_cache.NO_CACHE_ENV})"
    if _cache.cache_dir() is None:
        return "there is no cache directory (HOME is not set)"
    if not fs.mount:
        return "no mount table tells this mount apart from the next one"
    if fs.fstype in NETWORK_FILESYSTEMS:
        return f"{fs.fstype} is a network filesystem: its server decides, and may change"
    if fs.fstype.startswith("fuse"):
        return f"{fs.fstype} is a FUSE filesystem: the program behind it decides, and may change"
    return ""


def _participants() -> list[str] | None:
    from lockkit._registry import get_registry  # noqa: PLC0415 - avoids an import cycle

    return get_registry().participants()


def _entry_key(fs: FsInfo, device: int) -> str:
    return f"{fs.mount}\n{device}"


def _remembered(fs: FsInfo, device: int) -> Detection | None:  # noqa: PLR0911 - one per check
    """The verdict saved for this mount and these backends, if any."""
    if fs.device != device or not_cached_because(fs):
        return None
    participants = _participants()
    if participants is None:
        return None  # not known without loading every plugin: probing does that anyway
    record = _cache.read(VERDICTS)
    verdicts = record.get("verdicts") if record and record.get("format") == _FORMAT else None
    entry = verdicts.get(_entry_key(fs, device)) if isinstance(verdicts, dict) else None
    if not isinstance(entry, dict):
        return None
    from lockkit._version import __version__  # noqa: PLC0415

    if entry.get("lockkit") != __version__ or entry.get("participants") != participants:
        return None
    try:
        evidence = tuple(
            (str(name), Support(ok=bool(ok), preference=int(pref), reason=str(why)))
            for name, ok, pref, why in entry["evidence"]
        )
        backend, reason = str(entry["backend"]), str(entry["reason"])
    except (KeyError, TypeError, ValueError, OverflowError):  # damaged or planted: probe
        return None
    if not any(name == backend and support.ok for name, support in evidence):
        return None
    from lockkit._registry import get_registry  # noqa: PLC0415 - an import cycle otherwise
    from lockkit.errors import LockError  # noqa: PLC0415

    try:
        # The chosen backend is loaded right after anyway; if it is gone (uninstalled
        # with the site directory's time restored, as rsync -a does), probe again.
        get_registry().get(backend)
    except LockError:
        return None
    return Detection(backend, reason, fs.fstype, fs.mount_point, evidence, cached="used")


def _save(fs: FsInfo, device: int, detection: Detection | None) -> bool:
    """Save (or with None, drop) the verdict for this mount; whether it was saved."""
    if fs.device != device or not_cached_because(fs):
        return False
    participants = _participants() if detection is not None else []
    if participants is None:
        return False
    from lockkit._version import __version__  # noqa: PLC0415

    record = _cache.read(VERDICTS)
    verdicts = record.get("verdicts") if record and record.get("format") == _FORMAT else None
    kept = dict(verdicts) if isinstance(verdicts, dict) else {}
    key = _entry_key(fs, device)
    kept.pop(key, None)
    if detection is not None:
        kept[key] = {
            "lockkit": __version__,
            "participants": participants,
            "backend": detection.backend,
            "reason": detection.reason,
            "evidence": [
                [name, support.ok, support.preference, support.reason]
                for name, support in detection.evidence
            ],
        }
    # The newest last; mounts come and go, so the oldest verdicts make way.
    kept = dict(list(kept.items())[-_MAX_VERDICTS:])
    return _cache.write(VERDICTS, {"format": _FORMAT, "verdicts": kept}) and detection is not None


def _probe(directory: str, fs: FsInfo) -> Detection:
    from lockkit._registry import get_registry  # noqa: PLC0415 - avoids an import cycle

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
