"""lockkit: inter-process locks with pluggable backends that work on every filesystem.

Quick start::

    import lockkit

    with lockkit.Lock("/var/lib/app/state.json.lock", timeout=10):
        ...

See https://lockkit.readthedocs.io/ for backends, configuration and plugins.
"""

from __future__ import annotations

from lockkit._info import Lease, LockInfo, Owner
from lockkit._lock import Lock
from lockkit.errors import (
    BackendUnavailable,
    InvalidLockName,
    LockError,
    LockLost,
    LockNotHeld,
    LockTimeout,
    PluginError,
    SettingsError,
    UnknownBackend,
)

__all__ = [
    "BackendUnavailable",
    "InvalidLockName",
    "Lease",
    "Lock",
    "LockError",
    "LockInfo",
    "LockLost",
    "LockNotHeld",
    "LockTimeout",
    "Owner",
    "PluginError",
    "SettingsError",
    "UnknownBackend",
    "__version__",
]


def __getattr__(name: str) -> str:
    # The version is looked up lazily, as stamina does, so importing stays cheap.
    if name == "__version__":
        from lockkit._version import __version__  # noqa: PLC0415

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
