"""The lock backend spec (v2): what a backend plugin implements and which hooks it may use.

lockkit finds backends through pluggy. A plugin is a module (or any object) with
``@hookimpl`` functions, advertised in the ``lockkit`` entry-point group of its
distribution. The built-in backends register exactly this way.

**Three methods are required** (`Backend.try_acquire`, `Backend.release`,
`Backend.inspect`). The rest are optional, and most are tied to a capability the
backend declares:

=====================  ==========================================================
``refresh``            required with ``Capabilities(ttl=True)``
``break_lock``         what makes a dead holder's lock recoverable; needed unless
                       locks are ``released_on_crash`` or expire (``ttl``)
``waiter``             with ``Capabilities(notify=True)``: a `Waiter` woken by a
                       release instead of polling
``from_url``           with ``schemes``: build the backend from a URL
``normalize_name``     validate and canonicalise names (file backends)
``probe``              auto-detection's evidence for a directory
=====================  ==========================================================

A complete plugin, ``my_lockkit_plugin.py``::

    from typing import ClassVar

    from lockkit import Lease, LockInfo, Owner
    from lockkit.spec import Backend, Capabilities, hookimpl


    class MyBackend(Backend):
        \"\"\"Locks kept in my store.\"\"\"

        name: ClassVar[str] = "mine"
        description: ClassVar[str] = "locks kept in my store"
        capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True)

        def try_acquire(self, name, owner, ttl, *, shared=False): ...
        def release(self, lease): ...
        def inspect(self, name): ...
        def break_lock(self, name, expected): ...


    @hookimpl
    def lockkit_register_backends():
        return [MyBackend]

and in its ``pyproject.toml``::

    [project.entry-points.lockkit]
    mine = "my_lockkit_plugin"

The entry-point name must equal ``Backend.name`` (or one of its ``schemes``):
selecting ``mine`` loads only that entry point, so unrelated plugins are never
imported.

**The core keeps the promises.** Whatever a backend raises reaches callers as a
`lockkit.LockError`: an `OSError` as `lockkit.errors.BackendUnavailable`, anything
else as `lockkit.errors.BackendError` naming the plugin and the original error. A lease
that lacks what the capabilities promise (``expires`` and ``ttl`` with ``ttl``, a
``fencing_token`` with ``fencing``) is refused with a `lockkit.PluginError`.

**asyncio** works for every backend through a core adapter that runs the blocking
methods in worker threads. A backend with a native async client opts in by defining
``try_acquire_async``, ``release_async``, ``inspect_async`` or ``break_lock_async``
(same arguments, awaited) and, for waiting, `Waiter.wait_async`. Such a method keeps
the cancellation rules the adapter keeps: an attempt cancelled in flight leaves nothing
held (it did not happen, or what it took is released); a release that has begun
completes even if its caller is cancelled; none of them blocks the event loop.
"""

from __future__ import annotations

import abc
import os
import time

from lockkit._backoff import POLL_MAX, POLL_MIN, poll_delay
from lockkit._spec_v1 import SpecV1Methods
from lockkit._value import fields, frozen

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import ClassVar, Self

    import pluggy

    from lockkit._info import Lease, LockInfo, Owner

    hookimpl: pluggy.HookimplMarker

__all__ = [
    "NAME",
    "POLL_MAX",
    "POLL_MIN",
    "Backend",
    "Capabilities",
    "Support",
    "Waiter",
    "hookimpl",
    "lockkit_acquired",
    "lockkit_contended",
    "lockkit_lost",
    "lockkit_register_backends",
    "lockkit_released",
    "lockkit_stale_broken",
    "poll_delay",
]

NAME = "lockkit"
"""The pluggy project name and the entry-point group plugins advertise themselves in."""


def __getattr__(name: str) -> object:
    """Make ``hookimpl`` on first use, so a process that needs no plugin skips pluggy.

    The built-in backends mark their hooks with `_builtin_hookimpl` instead.
    """
    if name == "hookimpl":
        import pluggy  # noqa: PLC0415

        return globals().setdefault("hookimpl", pluggy.HookimplMarker(NAME))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_BUILTIN_HOOKIMPL = f"_{NAME}_builtin_impl"


def _builtin_hookimpl(function: Callable[..., object]) -> Callable[..., object]:
    """``@hookimpl`` for lockkit's own backends, without importing pluggy.

    It only flags the function; the registry applies the real `hookimpl` to it
    when it registers the module with pluggy (see `lockkit._registry`).
    """
    setattr(function, _BUILTIN_HOOKIMPL, True)
    return function


@frozen
class Capabilities:
    """What a backend can do; every flag is off unless the backend says otherwise.

    Selection and routes can require a capability, and ``lockkit backends`` shows them.
    Some flags oblige the backend to more (see each one); the core checks the leases.

    Attributes:
        across_hosts: Excludes processes on different machines (shared filesystem or
            a server), not only processes on one machine.
        released_on_crash: The lock is freed by the kernel or server when the holder
            dies, without any stale-lock rule.
        ttl: Supports expiring locks: `Backend.refresh` is implemented, and a lease
            taken with a ``ttl`` carries ``ttl`` and ``expires`` (the core renews it).
        fencing: Every lease carries a ``fencing_token`` greater than any earlier
            holder's.
        shared: Supports shared (read) locks via ``try_acquire(..., shared=True)``.
        notify: `Backend.waiter` returns a `Waiter` woken by a release, not polling.
    """

    across_hosts: bool = False
    released_on_crash: bool = False
    ttl: bool = False
    fencing: bool = False
    shared: bool = False
    notify: bool = False

    def names(self) -> list[str]:
        """The names of the capabilities that are on, in declaration order."""
        return [field.name for field in fields(Capabilities) if getattr(self, field.name)]


@frozen
class Support:
    """A backend's verdict on whether it works at a location, from ``Backend.probe``.

    Attributes:
        ok: Whether the backend can lock correctly there.
        preference: Higher wins when auto-detection compares backends that are ``ok``.
        reason: One human sentence of evidence, e.g. ``"link() failed: EPERM"``.
    """

    ok: bool
    preference: int = 0
    reason: str = ""


class Waiter:
    """One caller's wait for one lock: owned by the core, filled in by the backend.

    When an acquisition may have to wait, the core gets a waiter from
    `Backend.waiter`, passes it to every attempt (``try_acquire(..., waiter=w)``), calls
    `wait` between failed attempts and `close` exactly once at the end, whether the
    lock was won, the time ran out or the caller was cancelled. A backend keeps what its
    waiting needs on its waiter (a subscription, a place in a queue, an armed watch),
    so the backend itself stays stateless between calls: an attempt that receives a
    waiter knows the caller will wait, and may queue or arm a watch as it fails.

    This base class polls: `wait` sleeps with `poll_delay` backoff. Backends with a
    release notification subclass it and declare ``Capabilities(notify=True)``.

    Attributes:
        name: The lock waited for.
        attempts: Failed attempts so far in this acquisition (the core counts them).
        seen: The holder a failed attempt saw, set by a backend whose attempt reads it
            anyway (in the same round trip): the core judges that holding instead of
            calling ``inspect``, and clears it. ``None`` (the default): the core asks
            ``inspect``.
    """

    __slots__ = ("attempts", "name", "seen")

    def __init__(self, name: str) -> None:
        """A waiter for lock ``name`` (a name from `Backend.normalize_name`)."""
        self.name = name
        self.attempts = 0
        self.seen: LockInfo | None = None

    def wait(self, deadline: float) -> bool:
        """Block until the lock may have become free, or until ``deadline``.

        Returning early is always allowed (the core simply tries again); sleeping past
        ``deadline`` (a `time.monotonic` value, ``math.inf`` for no limit) is not.

        Returns:
            ``True`` when woken by a release; the core then retries without re-reading
                the holder. ``False`` after a poll or a timeout.
        """
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(min(poll_delay(self.attempts), remaining))
        return False

    async def wait_async(self, deadline: float) -> bool:
        """`wait` for asyncio callers: must leave the event loop (and threads) free.

        The default sleeps on the event loop with the same backoff; it never calls
        `wait`. Cancellation may interrupt it at any point.
        """
        import asyncio  # noqa: PLC0415 - already imported by whoever awaits this

        remaining = deadline - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(min(poll_delay(self.attempts), remaining))
        return False

    def close(self) -> None:
        """Give back what waiting set up (leave a queue, pass on an unused wake-up)."""

    async def close_async(self) -> None:
        """`close` for asyncio callers; the default calls `close`, which must not block."""
        self.close()


class Backend(SpecV1Methods, abc.ABC):
    """Base class of every lock backend.

    A backend performs single, non-blocking lock operations; the core
    (`lockkit.Lock`) owns timeouts, waiting, reentrancy and events. Backends are
    shared by every lock that selects them, so they must be thread-safe and keep
    per-lock state in the `lockkit.Lease` they return and per-wait state in the
    `Waiter` they make.

    Subclasses set the class variables and implement ``try_acquire``, ``release`` and
    ``inspect``, plus what their capabilities require (see the module docstring).
    """

    name: ClassVar[str] = ""
    """The name used for selection: entry-point name, `LOCKKIT_BACKEND` value and
    `LOCKKIT_DISABLED_PLUGINS` token. Two installed backends with one name are told
    apart as ``distribution:name``."""
    description: ClassVar[str] = ""
    """One line describing the backend, shown by `lockkit backends`."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this backend can do."""
    schemes: ClassVar[tuple[str, ...]] = ()
    """URL schemes this backend serves (``LOCKKIT_URL=scheme://...``), built by
    `from_url`. Advertise each extra scheme as an entry point too, so a URL loads only
    this plugin."""
    eager_waiter: ClassVar[bool] = False
    """Hand the `Waiter` to the *first* attempt of a caller that will wait, not only to
    the attempts after a failure (for a ``try_acquire`` that declares ``waiter=``): the
    failing attempt can then queue the caller in the same round trip. It costs a waiter
    per blocking acquisition, so only backends that use it set it."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build a backend for a server ``url`` whose scheme is in ``schemes``.

        Server backends override this; the default refuses, because file backends take
        no URL.

        Raises:
            SettingsError: This backend takes no URL.
        """
        from lockkit._redact import redact_url  # noqa: PLC0415
        from lockkit.errors import SettingsError  # noqa: PLC0415

        raise SettingsError(
            f"backend {cls.name!r} takes no URL, but got {redact_url(url)}; "
            "give a URL only to server backends such as redis"
        )

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Validate a lock name and return its canonical form.

        The default accepts any non-empty string without NUL. File backends override it
        to require an existing parent directory and return an absolute path.

        Raises:
            InvalidLockName: The name cannot be used; the message says why.
        """
        from lockkit.errors import InvalidLockName  # noqa: PLC0415 - keeps spec import light

        text = os.fspath(name)
        if not text:
            raise InvalidLockName("lock name is empty; pass a path or a non-empty name")
        if "\0" in text:
            raise InvalidLockName(f"lock name {text!r} contains a NUL character")
        return text

    @abc.abstractmethod
    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Make one attempt to take the lock; never block.

        Args:
            name: A name returned by `normalize_name`.
            owner: The identity to record as holder (its ``token`` is fresh).
            ttl: Seconds after which the lock expires unless refreshed, or ``None``.
                Backends without the ``ttl`` capability get ``None``. With it, the lease
                must carry ``ttl`` and ``expires``: that is what makes the core renew.
            shared: Ask for a shared (read) lock. Only ``True`` for backends with the
                ``shared`` capability.

        **Optional keyword** ``waiter: Waiter | None = None``: a backend that declares
        it receives the `Waiter` of a caller that waits (made by `waiter`) on every
        attempt after the first failure, and on the first one too with
        ``eager_waiter``; otherwise ``None``. It may queue or arm a watch as it fails.
        The core passes it only to backends whose ``try_acquire`` declares it.

        Returns:
            A lease on success, ``None`` when the lock is held by someone else.
        """

    @abc.abstractmethod
    def release(self, lease: Lease) -> bool:
        """Release a lock taken with `try_acquire`.

        Must never remove a lock that now belongs to someone else.

        Returns:
            ``True`` when the lock was ours and is now free, ``False`` when it had
                already been taken over or removed (the lock was lost).
        """

    @abc.abstractmethod
    def inspect(self, name: str) -> LockInfo | None:
        """Report the current holder of ``name``, or ``None`` when the lock is free.

        The ``identity`` of the `LockInfo` tells one version of the lock from the next:
        it must change whenever the lock is taken again *or refreshed*, so that
        `break_lock` can refuse a holding that changed since it was read.
        """

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Extend a TTL lock to ``ttl`` seconds from now (required with ``ttl``).

        Must change the lock's ``identity`` (see `inspect`), and must not touch a lock
        that now belongs to someone else.

        Returns:
            ``True`` when the lock is still ours and was extended, ``False`` when lost.
        """
        raise NotImplementedError(f"backend {self.name!r} does not support ttl")

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock ``expected`` describes, and only that one.

        Called when the stale rules judge the holder `inspect` reported dead or expired
        (and by ``lockkit break``). Compare the token *and* the ``identity``: a lock that
        was released and taken again, or refreshed, is not the one judged stale.

        Returns:
            ``True`` when it removed exactly that holding; ``False`` (removing nothing)
                when the lock is gone or changed. The default always returns ``False``,
                so a dead holder's lock is never recovered: implement it unless your
                locks are ``released_on_crash`` or expire.
        """
        del name, expected
        return False

    def waiter(self, name: str) -> Waiter:
        """Make the `Waiter` for one acquisition of ``name`` that may wait.

        The default polls with backoff; backends with a release notification return
        their own subclass and declare ``Capabilities(notify=True)``. Keep it cheap:
        set things up on the first `Waiter.wait`, not here.
        """
        return Waiter(name)

    @classmethod
    def probe(cls, location: str) -> Support:
        """Tell whether this backend works at ``location`` (a directory), and why.

        Used by auto-detection and ``lockkit doctor``. Must not raise for an unsuitable
        location (explain it in ``Support.reason`` instead) and must leave no files
        behind. The default claims support without evidence, with preference 0.
        """
        del location
        return Support(ok=True, preference=0, reason="no probe implemented")


# The hook specs. `lockkit._hookspecs` marks them for pluggy when the registry first
# needs pluggy, so that a process that never does imports neither.


def lockkit_register_backends() -> Iterable[type[Backend]]:  # type: ignore[empty-body]
    """Return the backend classes this plugin provides.

    Called once per loaded plugin when the registry collects backends. Each class must
    subclass `Backend` and have a unique, non-empty ``name``.
    """


def lockkit_acquired(name: str, backend: str, lease: Lease, waited: float) -> None:
    """Fire after a lock was acquired (not on reentrant re-acquisition).

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that was granted.
        waited: Seconds spent waiting before the successful attempt.
    """


def lockkit_released(name: str, backend: str, lease: Lease, held: float) -> None:
    """Fire after a lock was released by its holder.

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that was released.
        held: Seconds the lock was held.
    """


def lockkit_contended(name: str, backend: str, holder: LockInfo | None) -> None:
    """Fire once per acquisition that found the lock busy and starts to wait.

    Args:
        name: The lock name.
        backend: The backend's name.
        holder: The current holder as far as the backend can tell.
    """


def lockkit_stale_broken(name: str, backend: str, info: LockInfo, reason: str) -> None:
    """Fire after a stale lock was broken.

    Args:
        name: The lock name.
        backend: The backend's name.
        info: The holder that was removed.
        reason: Which stale rule decided it, in words.
    """


def lockkit_lost(name: str, backend: str, lease: Lease) -> None:
    """Fire when a held lock turns out to belong to someone else (expired or broken).

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that is no longer valid.
    """
