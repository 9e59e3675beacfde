"""Breaking a stale lock: the one place that judges, breaks, logs and fires the event.

Whoever breaks a lock -- `lockkit.Lock` finding a dead holder while acquiring, or
``lockkit break`` -- goes through `break_steps`: judge the holder with the stale rules
(`lockkit._stale.judge`), ask the backend to break exactly that holding, re-read once if
the backend declined (another breaker was first, or what was read was out of date), log
at ``INFO`` on the ``lockkit`` logger and fire ``lockkit_stale_broken``.

`break_steps` is a generator of backend requests (`lockkit._steps.Break`,
`lockkit._steps.Inspect`), like the acquisition loop, so the blocking and the ``async``
drivers of `Lock` can run it with ``yield from``; `break_stale` runs it with blocking
calls for the command line. A lock that vanished while it was checked is *free*, not
stale: nothing is removed on that path.
"""

from __future__ import annotations

from lockkit._calls import call_backend
from lockkit._log import log
from lockkit._stale import judge
from lockkit._steps import Break, Inspect
from lockkit._value import frozen

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    from lockkit._info import LockInfo
    from lockkit._registry import Registry
    from lockkit._stale import Verdict
    from lockkit._steps import Step
    from lockkit.spec import Backend

__all__ = ["Outcome", "break_stale", "break_steps"]


@frozen
class Outcome:
    """What an attempt to break a lock came to.

    Attributes:
        broken: The holding in ``info`` was broken (and the event fired).
        info: The holding judged last; ``None`` when the lock turned out to be free.
        verdict: The stale rules' verdict on ``info`` (``None`` when free).
        forced: ``info`` was live and broken (or tried) only because of ``force``.
    """

    broken: bool
    info: LockInfo | None
    verdict: Verdict | None = None
    forced: bool = False

    @property
    def free(self) -> bool:
        """The lock was (or became) free: retry an acquisition at once."""
        return self.info is None


def break_steps(  # noqa: PLR0911 - one return per outcome
    name: str,
    backend: str,
    info: LockInfo | None,
    *,
    stale_after: float | None,
    registry: Registry | None,
    force: bool = False,
) -> Generator[Step, Any, Outcome]:
    """Judge ``info`` and break it if stale, as requests to a driver.

    Args:
        name: The canonical lock name.
        backend: The backend's name, for the log and the event.
        info: The holding just read (``None``: the lock is free).
        stale_after: The ``stale`` setting (see `lockkit._stale.judge`).
        registry: Where ``lockkit_stale_broken`` is fired (``None``: nowhere).
        force: Break ``info`` even if the stale rules say it is live (``lockkit break
            --force``). A forced break that the backend declines is not retried: the
            lock has changed, and nobody asked to break the new holding.

    Returns:
        The `Outcome`. ``outcome.broken or outcome.free`` is what the acquisition loop
        needs: whether to retry at once.
    """
    if info is None:
        # It vanished between the attempt and the look: free, not stale.
        return Outcome(broken=False, info=None)
    verdict = judge(info, stale_after=stale_after)
    forced = force and not verdict.stale
    if not verdict.stale and not force:
        return Outcome(broken=False, info=info, verdict=verdict)
    if not (yield Break(info)):
        if force:
            return Outcome(broken=False, info=info, verdict=verdict, forced=forced)
        # Another breaker was first, or what we read was out of date: a share's client
        # caches attributes, and the breaker's own re-read found another version of
        # the lock. Read it once more, and break that if it is stale.
        fresh: LockInfo | None = yield Inspect()
        if fresh is None:
            return Outcome(broken=False, info=None)
        if fresh.identity == info.identity:
            return Outcome(broken=False, info=info, verdict=verdict)
        verdict = judge(fresh, stale_after=stale_after)
        if not verdict.stale or not (yield Break(fresh)):
            return Outcome(broken=False, info=fresh, verdict=verdict)
        info = fresh
    reason = f"broken by force although {verdict.reason}" if forced else verdict.reason
    log.info("lockkit: broke stale lock %s: %s", name, reason)
    if registry is not None and registry.has_event_hooks:
        registry.stale_broken(name, backend, info, reason)
    return Outcome(broken=True, info=info, verdict=verdict, forced=forced)


def break_stale(
    backend: Backend,
    name: str,
    info: LockInfo | None,
    *,
    stale_after: float | None = None,
    registry: Registry | None = None,
    force: bool = False,
) -> Outcome:
    """Break the lock ``name`` if ``info``, its holder, is stale (`break_steps`, blocking).

    Args:
        backend: The backend that holds the lock.
        name: The canonical lock name (``backend.normalize_name``).
        info: The holder as read by ``backend.inspect(name)``.
        stale_after: The ``stale`` setting.
        registry: Where ``lockkit_stale_broken`` is fired.
        force: Break a live lock too.

    Raises:
        BackendUnavailable: The backend failed (whatever it raised; see
            `lockkit._calls.failure`).
    """
    steps = break_steps(
        name, backend.name, info, stale_after=stale_after, registry=registry, force=force
    )
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        if isinstance(step, Break):
            reply = call_backend("breaking", backend, name, backend.break_lock, name, step.info)
        else:
            reply = call_backend("reading", backend, name, backend.inspect, name)
