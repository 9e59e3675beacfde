"""The lock backend spec: what a backend plugin implements and which hooks it may use.

lockkit finds backends through pluggy. A plugin is a module (or any object) with
``@hookimpl`` functions, advertised in the ``lockkit`` entry-point group of its
distribution. The built-in backends register exactly this way.

A complete plugin, ``my_lockkit_plugin.py``::

    from typing import ClassVar

    from lockkit.spec import Backend, Capabilities, hookimpl


    class MyBackend(Backend):
        \"\"\"Locks kept in my store.\"\"\"

        name: ClassVar[str] = "mine"
        description: ClassVar[str] = "locks kept in my store"
        capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True)

        def try_acquire(self, name, owner, ttl, *, shared=False): ...
        def release(self, lease): ...
        def inspect(self, name): ...


    @hookimpl
    def lockkit_register_backends():
        return [MyBackend]

and in its ``pyproject.toml``::

    [project.entry-points.lockkit]
    mine = "my_lockkit_plugin"

The entry-point name must equal ``Backend.name``: selecting ``mine`` loads only that
entry point, so unrelated plugins are never imported.

**asyncio.** `lockkit.AsyncLock` calls the ``*_async`` twins of these methods
(``try_acquire_async``, ``release_async``, ``inspect_async``, ``break_lock_async``,
``wait_async``, ``stop_waiting_async``). Their defaults run the blocking method in a
worker thread (``asyncio.to_thread``), because an unknown backend's call may block,
and ``wait_async`` sleeps with bounded backoff on the event loop, so the plugin above
works with asyncio unchanged. Override them for a native async client, or to run calls
that are only a few local system calls directly on the event loop.
"""

from __future__ import annotations

import abc
import os
import time
from typing import TYPE_CHECKING, ClassVar, Self

import attrs
import pluggy

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable

    from lockkit._info import Lease, LockInfo, Owner

__all__ = [
    "NAME",
    "Backend",
    "Capabilities",
    "Support",
    "hookimpl",
    "lockkit_acquired",
    "lockkit_contended",
    "lockkit_lost",
    "lockkit_register_backends",
    "lockkit_released",
    "lockkit_stale_broken",
]

NAME = "lockkit"
"""The pluggy project name and the entry-point group plugins advertise themselves in."""

_spec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)
"""Decorator that marks a plugin's hook implementations."""


@attrs.frozen
class Capabilities:
    """What a backend can do; every flag is off unless the backend says otherwise.

    Selection and routes can require a capability, and ``lockkit backends`` shows them.

    Attributes:
        across_hosts: Excludes processes on different machines (shared filesystem or
            a server), not only processes on one machine.
        released_on_crash: The lock is freed by the kernel or server when the holder
            dies, without any stale-lock rule.
        ttl: Supports expiring locks (``ttl=``) and ``refresh``.
        fencing: Hands out a monotonically increasing ``fencing_token`` per acquisition.
        shared: Supports shared (read) locks via ``try_acquire(..., shared=True)``.
        notify: ``wait`` is woken by a release instead of polling.
    """

    across_hosts: bool = False
    released_on_crash: bool = False
    ttl: bool = False
    fencing: bool = False
    shared: bool = False
    notify: bool = False

    def names(self) -> list[str]:
        """The names of the capabilities that are on, in declaration order."""
        return [field.name for field in attrs.fields(Capabilities) if getattr(self, field.name)]


@attrs.frozen
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


class Backend(abc.ABC):
    """Base class of every lock backend.

    A backend performs single, non-blocking lock operations; the core
    (`lockkit.Lock`) owns timeouts, waiting, reentrancy and events. Backends are
    shared by every lock that selects them, so they must be thread-safe and keep
    per-lock state in the `lockkit.Lease` they return.

    Subclasses set the class variables and implement at least ``try_acquire``,
    ``release`` and ``inspect``. The ``*_async`` methods, used by `lockkit.AsyncLock`,
    work for every backend by default (see each one); override them only to do better.
    """

    name: ClassVar[str] = ""
    """The name used for selection: entry-point name, `LOCKKIT_BACKEND` value and
    `LOCKKIT_DISABLED_PLUGINS` token. Must be unique across installed plugins."""
    description: ClassVar[str] = ""
    """One line describing the backend, shown by `lockkit backends`."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this backend can do."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build a backend for a server ``url`` (``LOCKKIT_BACKEND=scheme://...``).

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
            ttl: Seconds after which the lock may be considered stale, or ``None``.
                Backends without the ``ttl`` capability ignore it.
            shared: Ask for a shared (read) lock. Only called when the backend has the
                ``shared`` capability.

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

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Extend a TTL lock by ``ttl`` seconds from now.

        Returns:
            ``True`` when the lock is still ours and was extended, ``False`` when lost.
        """
        raise NotImplementedError(f"backend {self.name!r} does not support ttl")

    @abc.abstractmethod
    def inspect(self, name: str) -> LockInfo | None:
        """Report the current holder of ``name``, or ``None`` when the lock is free."""

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock ``expected`` describes, and only that one.

        Returns ``False`` (and removes nothing) when the lock is gone or is no longer
        the holding ``expected`` describes, e.g. it was released and taken again. The
        default returns ``False``: a backend that cannot break locks simply waits for
        them to be released or to expire.
        """
        del name, expected
        return False

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        """Block until the lock may have become free, or until ``deadline``.

        Called by the core between failed attempts. Returning early is always allowed
        (the core simply tries again); sleeping past ``deadline`` is not. The default
        polls with exponential backoff from 2 ms up to 50 ms; backends with a real
        release notification override it and set ``Capabilities.notify``.

        Args:
            name: The lock being waited for.
            deadline: A `time.monotonic` value; ``math.inf`` waits without limit.
            attempt: How many attempts have failed so far in this acquisition (from 1).

        Returns:
            ``True`` when woken by a release notification; the core then retries
                without re-reading the holder (it has no reason to think it died).
                ``False`` after a timeout or a poll.
        """
        del name
        delay = min(0.001 * (2 ** min(attempt, 16)), 0.05)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(min(delay, remaining))
        return False

    def stop_waiting(self, name: str) -> None:
        """Release what `wait` set up for ``name`` in this thread (a subscription...).

        Called once by the core when an acquisition that waited at least once ends,
        whether it got the lock or timed out. The default does nothing.
        """
        del name

    # -- asyncio ---------------------------------------------------------------------------
    # What `lockkit.AsyncLock` calls. The defaults never block the event loop: blocking
    # calls go to a worker thread, and waiting is `asyncio.sleep` with backoff.

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """`try_acquire` for asyncio callers; must not block the event loop.

        **Cancellation.** If the calling task is cancelled while the attempt is in
        flight, the attempt must leave nothing held: either it did not happen, or what it
        took is released. The default runs `try_acquire` in a worker thread, which
        cannot be stopped, so on cancellation it lets the thread finish and releases
        the lease it returns (in a worker thread too).

        Returns:
            A lease on success, ``None`` when the lock is held by someone else.
        """
        import asyncio  # noqa: PLC0415 - already imported by whoever runs this coroutine

        attempt = asyncio.ensure_future(
            asyncio.to_thread(self.try_acquire, name, owner, ttl, shared=shared)
        )
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(self._release_abandoned)
            raise

    def _release_abandoned(self, attempt: asyncio.Future[Lease | None]) -> None:
        """Release what an attempt got after its caller was cancelled (a done callback)."""
        if attempt.cancelled() or attempt.exception() is not None:
            return
        lease = attempt.result()
        if lease is not None:
            import asyncio  # noqa: PLC0415

            # In a worker thread, like the attempt: the release may block too. The
            # executor keeps the work item alive; nobody needs its result.
            try:
                asyncio.get_running_loop().run_in_executor(None, self.release, lease)
            except RuntimeError:  # the loop is shutting its executor down: do it here
                self.release(lease)

    async def release_async(self, lease: Lease) -> bool:
        """`release` for asyncio callers; must not block the event loop.

        A release that has begun must complete even if the calling task is cancelled.
        The default runs `release` in a worker thread, which a cancellation cannot stop.
        """
        import asyncio  # noqa: PLC0415

        return await asyncio.to_thread(self.release, lease)

    async def inspect_async(self, name: str) -> LockInfo | None:
        """`inspect` for asyncio callers; the default runs it in a worker thread."""
        import asyncio  # noqa: PLC0415

        return await asyncio.to_thread(self.inspect, name)

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """`break_lock` for asyncio callers; the default runs it in a worker thread.

        A break interrupted by cancellation may still happen; that is harmless, since it
        only ever removes the stale holding ``expected`` describes.
        """
        import asyncio  # noqa: PLC0415

        return await asyncio.to_thread(self.break_lock, name, expected)

    async def wait_async(self, name: str, deadline: float, attempt: int) -> bool:
        """`wait` for asyncio callers: sleep until the lock may be free, or ``deadline``.

        Must leave the event loop free while waiting, and should not hold a thread
        either: many tasks may wait at once. The default sleeps on the event loop with
        the same backoff as `wait` (2 ms up to 50 ms); it never calls `wait`.
        Backends with a release notification override it (and `stop_waiting_async`).
        Cancellation may interrupt it at any point; clean up what it set up.

        Returns:
            ``True`` when woken by a release notification, ``False`` after a timeout
                or a poll (see `wait`).
        """
        import asyncio  # noqa: PLC0415

        del name
        delay = min(0.001 * (2 ** min(attempt, 16)), 0.05)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(min(delay, remaining))
        return False

    async def stop_waiting_async(self, name: str) -> None:
        """Release what `wait_async` set up for ``name`` in this task.

        Called once when an acquisition that waited at least once ends. The default
        does nothing, like the default `wait_async`; it never calls `stop_waiting`,
        whose state belongs to a thread.
        """
        del name

    @classmethod
    def probe(cls, location: str) -> Support:
        """Tell whether this backend works at ``location`` (a directory), and why.

        Used by auto-detection and ``lockkit doctor``. Must not raise for an unsuitable
        location (explain it in ``Support.reason`` instead) and must leave no files
        behind. The default claims support without evidence, with preference 0.
        """
        del location
        return Support(ok=True, preference=0, reason="no probe implemented")


@_spec
def lockkit_register_backends() -> Iterable[type[Backend]]:  # type: ignore[empty-body]
    """Return the backend classes this plugin provides.

    Called once per loaded plugin when the registry collects backends. Each class must
    subclass `Backend` and have a unique, non-empty ``name``.
    """


@_spec
def lockkit_acquired(name: str, backend: str, lease: Lease, waited: float) -> None:
    """Fire after a lock was acquired (not on reentrant re-acquisition).

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that was granted.
        waited: Seconds spent waiting before the successful attempt.
    """


@_spec
def lockkit_released(name: str, backend: str, lease: Lease, held: float) -> None:
    """Fire after a lock was released by its holder.

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that was released.
        held: Seconds the lock was held.
    """


@_spec
def lockkit_contended(name: str, backend: str, holder: LockInfo | None) -> None:
    """Fire once per acquisition that found the lock busy and starts to wait.

    Args:
        name: The lock name.
        backend: The backend's name.
        holder: The current holder as far as the backend can tell.
    """


@_spec
def lockkit_stale_broken(name: str, backend: str, info: LockInfo, reason: str) -> None:
    """Fire after a stale lock was broken.

    Args:
        name: The lock name.
        backend: The backend's name.
        info: The holder that was removed.
        reason: Which stale rule decided it, in words.
    """


@_spec
def lockkit_lost(name: str, backend: str, lease: Lease) -> None:
    """Fire when a held lock turns out to belong to someone else (expired or broken).

    Args:
        name: The lock name.
        backend: The backend's name.
        lease: The lease that is no longer valid.
    """
