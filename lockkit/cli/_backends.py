"""``lockkit backends``: every registered backend, its capabilities and whether it works here."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

import attrs

from lockkit.cli._report import Report, emit, show
from lockkit.errors import LockError, LockkitWarning

if TYPE_CHECKING:
    import argparse

    from lockkit._registry import Registry
    from lockkit.spec import Support

__all__ = ["BackendRow", "BackendsReport", "run_backends"]


@attrs.frozen
class BackendRow(Report):
    """One registered backend.

    Attributes:
        name: The backend's name (``Lock(..., backend=NAME)``).
        distribution: The distribution and version that provides it.
        available: Whether it works in the current directory (or its configured server
            answers).
        reason: The evidence for ``available``.
        capabilities: The names of its capabilities.
        description: Its one-line description.
    """

    name: str
    distribution: str
    available: bool
    reason: str
    capabilities: list[str]
    description: str

    def text(self, width: int) -> list[str]:
        """Four lines, the name in a column ``width`` wide."""
        mark = "ok  " if self.available else "no  "
        caps = ", ".join(self.capabilities) or "none"
        return [
            f"{self.name:<{width}}  {mark}{self.distribution}",
            f"{'':<{width}}      {self.description}",
            f"{'':<{width}}      capabilities: {caps}",
            f"{'':<{width}}      here: {self.reason}",
        ]


def _rows_text(_: BackendsReport, rows: list[BackendRow]) -> list[str]:
    width = max((len(row.name) for row in rows), default=4)
    return [line for row in rows for line in row.text(width)]


@attrs.frozen
class BackendsReport(Report):
    """What ``lockkit backends`` prints.

    Attributes:
        backends: One row per registered backend.
        problems: Plugins that could not be loaded, and why.
    """

    backends: list[BackendRow] = attrs.field(metadata=show(text=_rows_text))
    problems: list[str] = attrs.field(
        metadata=show(text=lambda _, v: [f"problem: {problem}" for problem in v])
    )


def run_backends(args: argparse.Namespace) -> int:
    """``lockkit backends``: always exits 0."""
    from lockkit._registry import get_registry  # noqa: PLC0415

    registry = get_registry()
    here = os.getcwd()  # noqa: PTH109
    rows = []
    with warnings.catch_warnings():
        # Each plugin problem is printed below as a `problem:` line; its warning would
        # say it a second time.
        warnings.filterwarnings("ignore", message="lockkit plugin ", category=LockkitWarning)
        configured = _configured_server(here)
        entries = registry.entries()
    for entry in entries:
        if configured is not None and configured[0] == entry.name:
            support = _check_server(registry, *configured)
        else:
            support = _probe(entry.cls, here)
        rows.append(
            BackendRow(
                name=entry.name,
                distribution=entry.distribution,
                available=support.ok,
                reason=support.reason,
                capabilities=entry.cls.capabilities.names(),
                description=entry.cls.description,
            )
        )
    problems = [problem.describe() for problem in registry.problems()]
    emit(BackendsReport(rows, problems), as_json=args.json)
    return 0


def _probe(cls: Any, here: str) -> Support:  # noqa: ANN401 - any Backend class
    """The backend's probe of ``here``; a probe that raises says so instead."""
    from lockkit.spec import Support  # noqa: PLC0415

    try:
        support: Support = cls.probe(here)
    except Exception as exc:  # noqa: BLE001 - a plugin's probe is reported, not a crash
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Support(ok=False, reason=f"the probe raised {detail}")
    return support


def _configured_server(here: str) -> tuple[str, str, str] | None:
    """The server backend this deployment selects (name, URL, source), if any.

    A directory probe cannot say whether a server backend works: only its URL can.
    """
    from lockkit._select import select  # noqa: PLC0415

    try:
        selection = select(os.path.join(here, "lockkit-backends.lock"))  # noqa: PTH118
    except LockError:
        return None  # reported by doctor and by Lock(); `backends` lists what is installed
    if selection.url is None:
        return None
    return selection.backend, selection.url, selection.source


def _check_server(registry: Registry, name: str, url: str, source: str) -> Support:
    """Ask the configured server about a lock nobody holds: it answers or it is down."""
    from lockkit._calls import call_backend  # noqa: PLC0415
    from lockkit._redact import redact_url  # noqa: PLC0415
    from lockkit.spec import Support  # noqa: PLC0415

    shown = f"configured by {source}: {redact_url(url)}"
    probe = "lockkit-backends-check"
    try:
        backend: Any = registry.backend(name, url)
        call_backend("reading", backend, probe, backend.inspect, probe)
    except (LockError, OSError) as exc:
        return Support(ok=False, reason=f"{shown}; {redact_url(str(exc))}")
    return Support(ok=True, reason=f"{shown}; the server answers")
