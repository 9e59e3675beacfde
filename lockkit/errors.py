"""Every exception lockkit raises, under one base class, `LockError`.

Catch `LockError` to handle anything lockkit reports; catch a subclass when you
want to react to one situation (for example `LockTimeout` to retry later).
Messages say what was wrong and what to do, and never contain secrets.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Iterable

    from lockkit._info import LockInfo

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "InvalidLockName",
    "LockError",
    "LockLost",
    "LockNotHeld",
    "LockTimeout",
    "LockkitWarning",
    "PluginError",
    "SettingsError",
    "SharedLocksUnsupported",
    "UnknownBackend",
]


class LockError(Exception):
    """Base class of every error lockkit raises."""


class LockTimeout(LockError, TimeoutError):
    """The lock could not be acquired before the timeout ran out.

    Attributes:
        name: The lock that was busy.
        timeout: The timeout in seconds that ran out (``0`` for a non-blocking attempt).
        holder: What the backend knows of the current holder, or ``None`` when it could
            not tell (the lock was released between the last attempt and the report).
    """

    def __init__(self, name: str, timeout: float, holder: LockInfo | None) -> None:
        """Build the message from the lock name, the timeout and the holder."""
        self.name = name
        self.timeout = timeout
        self.holder = holder
        wait = "could not acquire" if timeout <= 0 else f"timed out after {timeout:g} s acquiring"
        who = f": held by {holder.describe()}" if holder is not None else ""
        super().__init__(f"{wait} lock {name!r}{who}")


class LockNotHeld(LockError, RuntimeError):
    """``release()`` was called on a lock this object does not hold."""


class LockLost(LockError, RuntimeError):
    """A held lock was taken over by someone else (its TTL ran out or it was broken)."""


class InvalidLockName(LockError, ValueError):
    """The lock name or path cannot be used (empty, contains NUL, a directory, a symlink...)."""


class UnknownBackend(LockError, LookupError):
    """No backend is registered under the requested name.

    Attributes:
        requested: The name that was asked for.
        available: The names that are registered, sorted.
        hint: What else is known (disabled, failed to load, where it was chosen).
    """

    def __init__(self, requested: str, available: Iterable[str], hint: str = "") -> None:
        """Build the message, listing every available backend."""
        self.requested = requested
        self.available = sorted(available)
        self.hint = hint
        names = ", ".join(self.available) or "none"
        extra = f" {hint}" if hint else ""
        super().__init__(f"unknown lock backend {requested!r}; available backends: {names}.{extra}")


class BackendUnavailable(LockError, OSError):
    """The backend exists but cannot work here (server unreachable, filesystem unsuitable)."""


class BackendError(BackendUnavailable):
    """A backend raised an error of its own: its store failed, or the plugin has a bug.

    lockkit turns whatever a backend raises into a `LockError`; this is what an error
    that is neither a `LockError` nor an `OSError` becomes (an `OSError` becomes
    `BackendUnavailable`). The message names the backend, the distribution it comes
    from and the original error, which is also chained as ``__cause__``.

    Attributes:
        backend: The backend's name.
        plugin: Where the backend comes from, e.g. ``"lockkit-sqlite 0.1.0"``.
        original: The exception the backend raised.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        plugin: str = "",
        original: BaseException | None = None,
    ) -> None:
        """Keep the backend, its plugin and the original error beside the message."""
        super().__init__(message)
        self.backend = backend
        self.plugin = plugin
        self.original = original


class SettingsError(LockError, ValueError):
    """A settings file or environment variable holds a value lockkit cannot use.

    Attributes:
        source: The file (or environment variable) the value came from.
        line: The 1-based line in ``source``, when known.
        key: The dotted key that was wrong, when known.
    """

    def __init__(
        self, message: str, *, source: str = "", line: int | None = None, key: str = ""
    ) -> None:
        """Prefix the message with ``source:line`` and the key, compiler style."""
        self.source = source
        self.line = line
        self.key = key
        where = source
        if source and line is not None:
            where = f"{source}:{line}"
        prefix = f"{where}: " if where else ""
        at_key = f"{key}: " if key else ""
        super().__init__(f"{prefix}{at_key}{message}")


class PluginError(LockError, RuntimeError):
    """A plugin is broken: duplicate backend name, or a hook returned something wrong."""


class LockkitWarning(UserWarning):
    """Warnings lockkit emits, such as a backend falling back to another primitive."""


class SharedLocksUnsupported(LockError, ValueError):
    """The chosen backend cannot take shared (read) locks, which `ReadWriteLock` needs.

    Attributes:
        backend: The name of the backend that was chosen.
        supported: The names of the registered backends that can, sorted.
    """

    def __init__(self, backend: str, supported: Iterable[str], hint: str = "") -> None:
        """Build the message, naming the backends with the ``shared`` capability."""
        self.backend = backend
        self.supported = sorted(supported)
        names = ", ".join(self.supported) or "none installed"
        extra = f" {hint}" if hint else ""
        super().__init__(
            f"backend {backend!r} cannot take shared (read) locks, which ReadWriteLock "
            f"needs; backends that can: {names}. Choose one of them with backend=... or "
            f"the deployment's settings.{extra}"
        )
