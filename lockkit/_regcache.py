"""The registry's record of what a scan found, so a fresh process need not scan again.

Finding backend ``excl`` the long way reads the metadata of every installed
distribution (``importlib.metadata``) and registers plugins with pluggy: most of a
fresh process's first lock. The registry writes down what that found, per name: the
backend class as ``module:qualname``, its distribution, and the entry point that
provided it. A later process with the same installation imports just that class.

**The key.** A record is used only if these are unchanged since it was written:
lockkit's version, ``sys.executable``, ``sys.prefix``, ``LOCKKIT_DISABLED_PLUGINS``,
the metadata finders on ``sys.meta_path`` and every ``sys.path`` entry with its
modification time. That is the rule the standard library's own metadata cache uses:
installing, upgrading or removing a distribution adds or removes a ``.dist-info``
directory, which changes the modification time of the directory it is in.

``sys.path[0]`` (the script's directory, or the current directory) is the exception:
its time changes whenever a lock file is created there, which would make every lock
in the current directory pay for a scan. Installers never put distributions there, so
its time is not part of the key. Instead: a scan that finds a lockkit entry point in
a distribution there writes nothing (that layout always scans), and a record written
with another ``sys.path[0]`` is used only if the current one holds no ``.dist-info``
or ``.egg-info`` at all. A distribution copied into the directory a record was written
in is found when it is selected by its own name (names not in the record are looked
up the long way), and for observers and auto-detection after ``lockkit doctor``
or with ``LOCKKIT_NO_CACHE=1``.

**Trust.** The file is the user's own (see `lockkit._cache`). Even so, a record
cannot make lockkit import a module an installed entry point could not: before
importing, the distribution's own ``entry_points.txt`` (in a directory on
``sys.path``) must still list the recorded entry point, and the class's module must
belong to the same top-level package as that entry point's module. The imported class
must be a concrete `lockkit.spec.Backend` with the recorded name; anything else and
the registry takes the long way.
"""

from __future__ import annotations

import os
import sys

from lockkit._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lockkit.spec import Backend

__all__ = [
    "FORMAT",
    "current_key",
    "file_name",
    "import_backend",
    "in_script_dir",
    "script_dir",
    "script_dir_has_distributions",
]

FORMAT = 1
"""Bumped whenever the record's layout changes."""


def file_name() -> str:
    """One file per interpreter and environment, so venvs do not evict each other."""
    where = f"{sys.executable}\0{sys.prefix}".encode(errors="surrogateescape")
    return f"registry-{_fnv1a(where):016x}.cache"


def _fnv1a(data: bytes) -> int:
    """64-bit FNV-1a of ``data``: a stable file name (zlib's crc32 costs an import)."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def script_dir() -> str | None:
    """``sys.path[0]`` made absolute when it is the script's place, else None."""
    if getattr(sys.flags, "safe_path", False) or not sys.path:
        return None
    return os.path.abspath(sys.path[0] or os.curdir)  # noqa: PTH100


def _mtime(entry: str) -> int | None:
    try:
        return os.stat(entry or os.curdir).st_mtime_ns  # noqa: PTH116
    except (OSError, ValueError):
        return None


def _describe(finder: object) -> str:
    kind = finder if isinstance(finder, type) else type(finder)  # PathFinder is a class
    return f"{kind.__module__}.{kind.__qualname__}"


def current_key(disabled: str) -> dict[str, object]:
    """What a record must have been written under to be used now."""
    entries = sys.path if script_dir() is None else sys.path[1:]
    return {
        "format": FORMAT,
        "lockkit": __version__,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "disabled": disabled,
        "finders": [
            _describe(finder) for finder in sys.meta_path if hasattr(finder, "find_distributions")
        ],
        "path": [[entry, _mtime(entry)] for entry in entries],
    }


def in_script_dir(info: str) -> bool:
    """Whether the distribution metadata at ``info`` sits in ``sys.path[0]``."""
    here = script_dir()
    return here is not None and os.path.dirname(os.path.abspath(info)) == here  # noqa: PTH100, PTH120


def script_dir_has_distributions() -> bool:
    """Whether ``sys.path[0]`` holds any distribution metadata (one directory listing)."""
    here = script_dir()
    if here is None:
        return False
    try:
        with os.scandir(here) as found:
            return any(e.name.endswith((".dist-info", ".egg-info")) for e in found)
    except OSError:
        return False


def _lists_entry_point(info: str, group: str, name: str, value: str) -> bool:
    """Whether ``info/entry_points.txt`` has ``name = value`` in ``[group]``."""
    try:
        with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as handle:  # noqa: PTH118, PTH123
            text = handle.read(1 << 20)
    except (OSError, ValueError):
        return False
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            key, _, target = line.partition("=")
            if key.strip() == name and target.strip() == value:
                return True
    return False


def _on_sys_path(info: str) -> bool:
    parent = os.path.dirname(info)  # noqa: PTH120
    return any(os.path.abspath(entry or os.curdir) == parent for entry in sys.path)  # noqa: PTH100


def import_backend(  # noqa: PLR0911 - one return per failed check
    name: str, record: dict[str, object], group: str
) -> type[Backend] | None:
    """The backend class ``record`` names, if every check passes; else None.

    ``record`` is one provider as the registry wrote it: ``cls`` (``module:qualname``),
    ``ep`` and ``value`` (the entry point), ``info`` (its ``.dist-info`` directory).
    """
    target, ep, value, info = (record.get(k) for k in ("cls", "ep", "value", "info"))
    if not (
        isinstance(target, str)
        and isinstance(ep, str)
        and isinstance(value, str)
        and isinstance(info, str)
    ):
        return None
    module_name, _, qualname = target.partition(":")
    ep_module = value.partition(":")[0].strip()
    if (
        not qualname
        or not os.path.isabs(info)  # noqa: PTH117
        or module_name.partition(".")[0] != ep_module.partition(".")[0]
        or not _on_sys_path(info)
        or not _lists_entry_point(info, group, ep, value)
    ):
        return None
    from lockkit.spec import Backend  # noqa: PLC0415

    try:
        # __import__ rather than importlib.import_module: importlib is not otherwise
        # part of a first lock (the interpreter's own import machinery is built in).
        found: object = __import__(module_name, fromlist=["_"])
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # noqa: BLE001 - the long way reports it properly
        return None
    if not (isinstance(found, type) and issubclass(found, Backend)):
        return None
    if getattr(found, "name", None) != name or getattr(found, "__abstractmethods__", None):
        return None
    if found.capabilities.ttl and found.refresh is Backend.refresh:
        return None
    return found
