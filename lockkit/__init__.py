"""lockkit: inter-process locks with pluggable backends that work on every filesystem.

Quick start::

    import lockkit

    with lockkit.Lock("/var/lib/app/state.json.lock", timeout=10):
        ...

The public names are loaded on first access (PEP 562), so ``import lockkit`` costs
almost nothing: a program that only imports it for a code path it may never take pays
for attrs, the registry and the backends only when it first locks.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing alone would double the cost
# of `import lockkit`. Type checkers treat this constant the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from lockkit._asynclock import AsyncAcquireResult, AsyncLock
    from lockkit._info import Lease, LockInfo, Owner
    from lockkit._lock import AcquireResult, Lock
    from lockkit._registry import register_plugin
    from lockkit._rwlock import ReadWriteLock
    from lockkit.errors import (
        BackendError,
        BackendUnavailable,
        InvalidLockName,
        LockError,
        LockLost,
        LockNotHeld,
        LockTimeout,
        PluginError,
        SettingsError,
        SharedLocksUnsupported,
        UnknownBackend,
    )

__all__ = [
    "AcquireResult",
    "AsyncAcquireResult",
    "AsyncLock",
    "BackendError",
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
    "ReadWriteLock",
    "SettingsError",
    "SharedLocksUnsupported",
    "UnknownBackend",
    "__version__",
    "register_plugin",
]

_ORIGINS = {
    "Lease": "lockkit._info",
    "LockInfo": "lockkit._info",
    "Owner": "lockkit._info",
    "AcquireResult": "lockkit._lock",
    "AsyncAcquireResult": "lockkit._asynclock",
    "AsyncLock": "lockkit._asynclock",
    "Lock": "lockkit._lock",
    "ReadWriteLock": "lockkit._rwlock",
    "BackendError": "lockkit.errors",
    "BackendUnavailable": "lockkit.errors",
    "InvalidLockName": "lockkit.errors",
    "LockError": "lockkit.errors",
    "LockLost": "lockkit.errors",
    "LockNotHeld": "lockkit.errors",
    "LockTimeout": "lockkit.errors",
    "PluginError": "lockkit.errors",
    "SettingsError": "lockkit.errors",
    "SharedLocksUnsupported": "lockkit.errors",
    "UnknownBackend": "lockkit.errors",
    "__version__": "lockkit._version",
    "register_plugin": "lockkit._registry",
}


def __getattr__(name: str) -> object:
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__, not importlib.import_module: importing importlib costs a first lock.
    value = getattr(__import__(origin, fromlist=[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
