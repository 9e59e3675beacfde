"""How the core calls a backend: waiters, the async adapter, errors and lease checks.

This is where the core keeps its promises whatever a plugin does (architecture §10):

* `plan` looks at a backend class once: does ``try_acquire`` take a waiter, does it
  make its own `Waiter`, is it a spec v1 backend, which calls are natively async.
* `make_waiter` gives each waiting acquisition its own waiter (v1 backends get a
  `LegacyWaiter` over their ``wait``/``stop_waiting``).
* The ``*_async`` functions run blocking backends in worker threads, safely under
  cancellation, and call natively async ones directly.
* `failure` turns anything a backend raises into the `LockError` callers are promised.
* `refused_lease` checks a lease against the capabilities the backend declares.
"""

from __future__ import annotations

from lockkit._info import Lease
from lockkit._log import log
from lockkit._spec_v1 import SpecV1Methods
from lockkit._threads import try_acquire_in_thread
from lockkit._value import frozen
from lockkit.errors import BackendError, BackendUnavailable, LockError, PluginError
from lockkit.spec import Backend, Waiter

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from lockkit._info import LockInfo, Owner

    _T = TypeVar("_T")

__all__ = [
    "LegacyWaiter",
    "Plan",
    "call_backend",
    "failure",
    "make_waiter",
    "origin",
    "plan",
    "refused_lease",
    "try_acquire_async",
    "try_acquire_in_thread",
]


_V1_WAITING = ("wait", "stop_waiting", "wait_async", "stop_waiting_async")
_ASYNC = ("try_acquire_async", "release_async", "inspect_async", "break_lock_async")


@frozen
class Plan:
    """What the core knows about a backend class, worked out once.

    Attributes:
        accepts_waiter: ``try_acquire`` takes ``waiter=`` (spec v2).
        eager_waiter: It takes it from the first attempt (``Backend.eager_waiter``).
        legacy_waiting: Spec v1 waiting (``wait``/``stop_waiting`` overridden).
        native_async: The ``*_async`` methods the backend defines itself.
        async_accepts_waiter: ``try_acquire_async`` takes ``waiter=``.
    """

    accepts_waiter: bool
    eager_waiter: bool
    legacy_waiting: bool
    native_async: frozenset[str]
    async_accepts_waiter: bool


_PLANS: dict[type[Backend], Plan] = {}


_VARKEYWORDS = 0x08  # inspect.CO_VARKEYWORDS: the function takes **kwargs


def _takes_waiter(function: Any) -> bool:  # noqa: ANN401 - any callable
    code = getattr(function, "__code__", None)
    if code is not None and not hasattr(function, "__wrapped__"):
        # A plain function (every backend's own method): its code object says, without
        # importing inspect (which a first lock would otherwise pay for).
        names = code.co_varnames[
            code.co_posonlyargcount : code.co_argcount + code.co_kwonlyargcount
        ]
        return "waiter" in names or bool(code.co_flags & _VARKEYWORDS)
    import inspect  # noqa: PLC0415 - decorated or built-in callables only

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "waiter" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def plan(backend: Backend) -> Plan:
    """The `Plan` of ``backend``'s class (computed on first use, then cached)."""
    cls = type(backend)
    found = _PLANS.get(cls)
    if found is None:
        legacy = cls.waiter is Backend.waiter and any(
            getattr(cls, method) is not getattr(SpecV1Methods, method) for method in _V1_WAITING
        )
        native = frozenset(
            method
            for method in _ASYNC
            if getattr(cls, method) is not getattr(SpecV1Methods, method)
        )
        accepts = _takes_waiter(cls.try_acquire)
        found = Plan(
            accepts_waiter=accepts,
            eager_waiter=accepts and cls.eager_waiter,
            legacy_waiting=legacy,
            native_async=native,
            async_accepts_waiter=_takes_waiter(cls.try_acquire_async),
        )
        # Cached before warning: where warnings are errors, the warning is raised once per
        # class, not by every Lock() of that backend.
        _PLANS[cls] = found
        if legacy:
            message = (
                f"lockkit backend {cls.name!r} ({cls.__module__}) waits through spec v1's "
                "wait()/stop_waiting(); implement Backend.waiter() returning a "
                "lockkit.spec.Waiter instead (spec v1 support ends in lockkit 1.0)"
            )
            log.info("%s", message)
            import warnings  # noqa: PLC0415 - once per v1 plugin class

            warnings.warn(message, DeprecationWarning, stacklevel=2)
    return found


class LegacyWaiter(Waiter):
    """A `Waiter` driving a backend's spec v1 ``wait``/``stop_waiting`` (and async twins).

    ``stop_waiting`` is called only if the waiter waited, as spec v1 promised.
    """

    __slots__ = ("backend", "waited")

    def __init__(self, backend: Backend, name: str) -> None:
        """Wait for ``name`` through ``backend``'s v1 methods."""
        super().__init__(name)
        self.backend = backend
        self.waited = False

    def wait(self, deadline: float) -> bool:
        """``backend.wait(name, deadline, attempt)``."""
        self.waited = True
        return bool(self.backend.wait(self.name, deadline, self.attempts))

    async def wait_async(self, deadline: float) -> bool:
        """``backend.wait_async(name, deadline, attempt)``."""
        self.waited = True
        return bool(await self.backend.wait_async(self.name, deadline, self.attempts))

    def close(self) -> None:
        """``backend.stop_waiting(name)``, if it waited."""
        if self.waited:
            self.waited = False
            self.backend.stop_waiting(self.name)

    async def close_async(self) -> None:
        """``backend.stop_waiting_async(name)``, if it waited."""
        if self.waited:
            self.waited = False
            await self.backend.stop_waiting_async(self.name)


def make_waiter(backend: Backend, how: Plan, name: str) -> Waiter:
    """The waiter for one acquisition of ``name`` that may wait."""
    if how.legacy_waiting:
        return LegacyWaiter(backend, name)
    return backend.waiter(name)


# -- asyncio ---------------------------------------------------------------------------


async def try_acquire_async(
    backend: Backend,
    how: Plan,
    name: str,
    owner: Owner,
    ttl: float | None,
    *,
    shared: bool,
    waiter: Waiter | None,
) -> Lease | None:
    """One attempt for an asyncio caller: native if the backend has it, else in a thread."""
    if "try_acquire_async" not in how.native_async:
        given = waiter if how.accepts_waiter else None
        return await try_acquire_in_thread(backend, name, owner, ttl, shared=shared, waiter=given)
    native: Any = backend.try_acquire_async
    if waiter is not None and how.async_accepts_waiter:
        lease: Lease | None = await native(name, owner, ttl, shared=shared, waiter=waiter)
    else:
        lease = await native(name, owner, ttl, shared=shared)
    return lease


async def release_async(backend: Backend, how: Plan, lease: Lease) -> bool:
    """``release`` for an asyncio caller (native, else in a worker thread)."""
    if "release_async" in how.native_async:
        return await backend.release_async(lease)
    import asyncio  # noqa: PLC0415

    return await asyncio.to_thread(backend.release, lease)


async def inspect_async(backend: Backend, how: Plan, name: str) -> LockInfo | None:
    """``inspect`` for an asyncio caller (native, else in a worker thread)."""
    if "inspect_async" in how.native_async:
        return await backend.inspect_async(name)
    import asyncio  # noqa: PLC0415

    return await asyncio.to_thread(backend.inspect, name)


async def break_lock_async(backend: Backend, how: Plan, name: str, expected: LockInfo) -> bool:
    """``break_lock`` for an asyncio caller (native, else in a worker thread)."""
    if "break_lock_async" in how.native_async:
        return await backend.break_lock_async(name, expected)
    import asyncio  # noqa: PLC0415

    return await asyncio.to_thread(backend.break_lock, name, expected)


# -- promises --------------------------------------------------------------------------


def origin(backend: Backend | type[Backend]) -> str:
    """Where a backend comes from: ``"lockkit-mkdir 0.1.0"``, or its module."""
    cls = backend if isinstance(backend, type) else type(backend)
    from lockkit._registry import get_registry  # noqa: PLC0415 - loaded by every lock

    return get_registry().origin(cls)


def failure(exc: Exception, doing: str, name: str, backend: Backend) -> LockError:
    """What a backend raised, as the `LockError` callers are promised.

    A `LockError` is itself; an `OSError` becomes `BackendUnavailable` (keeping
    ``errno``); anything else becomes `BackendError`, naming the backend, its plugin
    and the original error (also chained as ``__cause__`` by the caller).
    """
    if isinstance(exc, LockError):
        return exc
    plugin = origin(backend)
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and exc.filename != name else ""
        who = backend.name if plugin.startswith("lockkit ") else f"{backend.name} from {plugin}"
        return BackendUnavailable(
            exc.errno, f"{doing} lock {name!r} ({who}) failed: {reason}{where}"
        )
    from lockkit._redact import redact_text  # noqa: PLC0415 - only on failure

    detail = redact_text(str(exc))
    said = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return BackendError(
        f"{doing} lock {name!r} failed in backend {backend.name!r} (from {plugin}): {said}",
        backend=backend.name,
        plugin=plugin,
        original=exc,
    )


def call_backend(
    doing: str,
    backend: Backend,
    name: str,
    method: Callable[..., _T],
    *args: Any,  # noqa: ANN401 - the method's own arguments
) -> _T:
    """Call ``method(*args)`` of ``backend``; whatever it raises becomes a `LockError`.

    For callers outside `lockkit.Lock` (the command line): see `failure`.
    """
    try:
        return method(*args)
    except Exception as exc:
        raise failure(exc, doing, name, backend) from exc


def refused_lease(backend: Backend, lease: object, ttl: float | None) -> str:
    """Why ``lease`` breaks the spec for ``backend``'s capabilities, or ``""`` if it is fine."""
    if not isinstance(lease, Lease):
        return f"try_acquire() returned {type(lease).__name__}, not a lockkit.Lease or None"
    caps = backend.capabilities
    if ttl is not None and caps.ttl and (lease.expires is None or not lease.ttl):
        missing = " and ".join(
            field for field, value in (("expires", lease.expires), ("ttl", lease.ttl)) if not value
        )
        return (
            f"its lease has no {missing} although the backend declares the ttl capability "
            f"and ttl={ttl:g} was asked, so the lock would never be renewed; return "
            "Lease(..., expires=<now + ttl>, ttl=ttl)"
        )
    if caps.fencing and lease.fencing_token is None:
        return (
            "its lease has no fencing_token although the backend declares the fencing "
            "capability; set Lease(..., fencing_token=...) or drop the capability"
        )
    return ""


def refuse(backend: Backend, lease: object, problem: str) -> PluginError:
    """Give back a lease that breaks the spec, and the error that says so."""
    if isinstance(lease, Lease):
        try:
            backend.release(lease)
        except Exception:
            log.debug("lockkit: releasing a refused lease failed", exc_info=True)
    return PluginError(
        f"backend {backend.name!r} (from {origin(backend)}) broke the lockkit backend "
        f"spec: {problem}"
    )
