"""``lockkit status PATH`` and ``lockkit break PATH``: who holds a lock, and removing it.

Both choose the backend exactly as ``lockkit.Lock(PATH)`` does (``--backend``, then
``LOCKKIT_BACKEND``/``LOCKKIT_URL``, the settings file, auto-detection: see
`lockkit._select`), and show that choice with its reason. Breaking goes through
`lockkit._breaking.break_stale`, which judges, breaks, logs and fires
``lockkit_stale_broken`` exactly as a `Lock` that finds a stale lock does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import attrs

from lockkit._breaking import break_stale
from lockkit._calls import call_backend
from lockkit._value import evolve
from lockkit.cli._report import Report, emit, show
from lockkit.errors import LockError

if TYPE_CHECKING:
    import argparse

    from lockkit._breaking import Outcome
    from lockkit._info import LockInfo
    from lockkit._stale import Verdict
    from lockkit.spec import Backend

__all__ = ["BreakReport", "Holder", "StatusReport", "Target", "run_break", "run_status"]

EXIT_OK = 0
EXIT_FAILED = 1


@attrs.frozen
class Holder(Report):
    """Who holds a lock, as far as its payload says (never its token).

    Attributes:
        pid: The holder's process id.
        host: The holder's host name.
        created: When the lock was taken (ISO 8601), where known.
    """

    pid: int | None
    host: str | None
    created: str | None

    def who(self) -> str:
        """``pid 12 on host vm``."""
        return f"pid {self.pid}" + (f" on host {self.host}" if self.host else "")


def _held(report: StatusReport) -> bool:
    return report.held


def _holder_text(report: StatusReport, holder: Holder | None) -> str:
    who = holder.who() if holder is not None else f"unknown ({report.problem})"
    return f"{who} ({report.machine_view} machine view)"


def _verdict_text(report: StatusReport, stale: bool) -> str:  # noqa: FBT001 - a field
    return f"{'STALE' if stale else 'live'} (rule {report.rule}): {report.reason}"


@attrs.frozen
class StatusReport(Report):
    """What ``lockkit status`` prints: the lock, the backend's choice, holder and verdict.

    Every field but ``lock``, ``chosen`` and ``held`` exists only for a held lock.

    Attributes:
        lock: The canonical lock name.
        chosen: The backend that was asked and why (`lockkit._select.Selection.describe`);
            text only.
        held: Whether somebody holds the lock.
        backend: The backend that wrote the lock.
        holder: The holder, or ``None`` when its payload cannot be read.
        problem: Why the payload cannot be read.
        age_seconds: Seconds since the lock was taken, where known.
        expires: When the lock expires (ISO 8601) unless renewed, if it has a TTL.
        machine_view: ``same``, ``other`` or ``unknown``: whether the holder's pid can be
            checked from here.
        stale: The verdict of the stale rules.
        rule: The rule that decided.
        reason: The verdict in words.
    """

    label_width = 8

    lock: str = attrs.field(metadata=show("lock"))
    chosen: str = attrs.field(metadata=show("chosen", key=None))
    held: bool = attrs.field(metadata=show("state", text=lambda _, v: "held" if v else "free"))
    backend: str | None = attrs.field(default=None, metadata=show("backend", when=_held))
    holder: Holder | None = attrs.field(
        default=None, metadata=show("holder", text=_holder_text, when=_held)
    )
    problem: str | None = attrs.field(default=None, metadata=show(when=_held))
    age_seconds: float | None = attrs.field(
        default=None,
        metadata=show("age", when=_held, text=lambda _, v: "?" if v is None else f"{v:.1f} s"),
    )
    expires: str | None = attrs.field(default=None, metadata=show("expires", when=_held))
    machine_view: str = attrs.field(default="unknown", metadata=show(when=_held))
    stale: bool = attrs.field(
        default=False, metadata=show("verdict", text=_verdict_text, when=_held)
    )
    rule: str = attrs.field(default="", metadata=show(when=_held))
    reason: str = attrs.field(default="", metadata=show(when=_held))

    @classmethod
    def of(cls, name: str, chosen: str, info: LockInfo | None, verdict: Verdict | None) -> Self:
        """The report for the holding ``info`` of lock ``name`` and its ``verdict``."""
        if info is None or verdict is None:
            return cls(lock=name, chosen=chosen, held=False)
        owner = info.owner
        holder = None
        if owner is not None:
            created = owner.created.isoformat() if owner.created else None
            holder = Holder(pid=owner.pid, host=owner.host, created=created)
        return cls(
            lock=name,
            chosen=chosen,
            held=True,
            backend=info.backend,
            holder=holder,
            problem=info.problem or None,
            age_seconds=None if info.age is None else round(info.age, 3),
            expires=info.expires.isoformat() if info.expires else None,
            machine_view=verdict.view,
            stale=verdict.stale,
            rule=verdict.rule,
            reason=verdict.reason,
        )


def _message_text(report: BreakReport, message: str) -> str:
    if report.removed or not report.status.held:
        return message
    return f"error: {message}"


@attrs.frozen
class BreakReport(Report):
    """What ``lockkit break`` prints: the lock's status (while held), then the outcome.

    Attributes:
        status: The status of the lock that was judged (its keys are this report's).
        removed: Whether the lock was removed.
        message: ``removed``, or why not.
    """

    status: StatusReport = attrs.field(
        metadata=show(inline=True, text=lambda r, v: v.lines() if r.status.held else None)
    )
    removed: bool = attrs.field(metadata=show())
    message: str = attrs.field(metadata=show(text=_message_text))


@attrs.frozen
class Target:
    """The lock a command looks at: its backend, canonical name and the choice's reason.

    Attributes:
        backend: The backend to ask.
        name: The canonical lock name.
        chosen: Which backend and why, one line, safe to print.
        stale_after: The ``stale`` setting in force for this lock.
    """

    backend: Backend
    name: str
    chosen: str
    stale_after: float | None


def resolve(path: str, spec: str | None) -> Target:
    """Choose the backend for ``path`` as ``lockkit.Lock(path, backend=spec)`` does."""
    from lockkit._lock import Lock  # noqa: PLC0415 - keeps `import lockkit.cli` light

    # Constructing a Lock acquires nothing: it selects (argument > environment > settings
    # file > auto-detect, see lockkit._select) and validates the name, the same way a
    # program's Lock(path) does, so `status` asks the backend that program would use.
    lock = Lock(path, backend=spec)
    selection = lock.selection
    if spec is not None and selection.source == "argument":
        selection = evolve(selection, source="--backend")
    return Target(lock.backend, lock.name, selection.describe(), lock.stale)


def inspect(target: Target, *, by_writer: bool) -> tuple[Target, LockInfo | None]:
    """Read the holder; with ``by_writer``, ask the backend that wrote a lock file instead.

    Only the backend that wrote a lock file knows, e.g., whether a ``filelock`` file is
    actually locked; the reason shown says so when another backend is asked.
    """
    from lockkit._registry import get_registry  # noqa: PLC0415

    backend = target.backend
    info = call_backend("reading", backend, target.name, backend.inspect, target.name)
    if not by_writer or info is None or info.backend == backend.name:
        return target, info
    try:
        writer = get_registry().backend(info.backend)
    except LockError:
        return target, info  # not installed here, or needs a URL: keep the chosen one
    chosen = f"{target.chosen}; read with {writer.name}, which wrote the lock"
    target = attrs.evolve(target, backend=writer, chosen=chosen)
    return target, call_backend("reading", writer, target.name, writer.inspect, target.name)


def _look(args: argparse.Namespace) -> tuple[Target, LockInfo | None, Verdict | None]:
    from lockkit._stale import judge  # noqa: PLC0415

    target, info = inspect(resolve(args.path, args.backend), by_writer=args.backend is None)
    verdict = None if info is None else judge(info, stale_after=target.stale_after)
    return target, info, verdict


def run_status(args: argparse.Namespace) -> int:
    """``lockkit status``: exits 0 whenever it could look at the lock."""
    target, info, verdict = _look(args)
    emit(StatusReport.of(target.name, target.chosen, info, verdict), as_json=args.json)
    return EXIT_OK


def run_break(args: argparse.Namespace) -> int:
    """``lockkit break``: 0 removed (or nothing to remove), 1 refused or not removed."""
    from lockkit._registry import get_registry  # noqa: PLC0415

    target, info, verdict = _look(args)
    if info is None:
        status = StatusReport.of(target.name, target.chosen, None, None)
        emit(BreakReport(status, False, "not locked: nothing to remove"), as_json=args.json)  # noqa: FBT003
        return EXIT_OK
    outcome = break_stale(
        target.backend,
        target.name,
        info,
        stale_after=target.stale_after,
        registry=get_registry(),
        force=args.force,
    )
    status = StatusReport.of(target.name, target.chosen, outcome.info, outcome.verdict)
    report = BreakReport(status, outcome.broken, _message(target, outcome, verdict))
    emit(report, as_json=args.json)
    return EXIT_OK if outcome.broken or outcome.free else EXIT_FAILED


def _message(target: Target, outcome: Outcome, first: Verdict | None) -> str:
    if outcome.broken:
        return "removed"
    if outcome.info is None:
        return "not removed: the lock was released while it was checked; it is free now"
    verdict = outcome.verdict or first
    if verdict is not None and not verdict.stale and not outcome.forced:
        return (
            f"refusing to break a live lock ({verdict.reason}); pass --force if you are "
            "sure its holder is gone"
        )
    return _why_not_broken(target.backend, target.name)


def _why_not_broken(backend: Any, name: str) -> str:  # noqa: ANN401 - any Backend
    """Say why ``break_lock`` declined: a breaker in the way, or the lock changed."""
    from lockkit.backends._file import (  # noqa: PLC0415 - file backends only
        BREAKER_MAX_AGE,
        FileBackend,
        breaker_path,
        observed_age,
        read_lock_file,
    )

    if isinstance(backend, FileBackend):
        path = breaker_path(name)
        found = read_lock_file(path)
        if found is not None:
            left = max(0.0, BREAKER_MAX_AGE - observed_age(path, found[1]))
            return (
                f"not removed: another process holds the breaker lock {path} (it is breaking "
                f"or releasing this lock right now, or left the file behind). A breaker whose "
                f"holder cannot be shown alive is cleared after {BREAKER_MAX_AGE:.0f} s of "
                f"age, about {left:.0f} s from now; try again then"
            )
    return (
        "not removed: the lock changed while it was checked, or this backend cannot "
        f"break locks ({backend.name}: {backend.description})"
    )
