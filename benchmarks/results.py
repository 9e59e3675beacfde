"""Everything one run measured, and its JSON form (all raw numbers included)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from benchmarks.cold import BARE, FILELOCK

if TYPE_CHECKING:
    from benchmarks.cold import Cold
    from benchmarks.contended import ContendedRow
    from benchmarks.handoff import HandoffRow
    from benchmarks.importcost import ImportCost
    from benchmarks.settings import Sizes
    from benchmarks.targets import Verdict
    from benchmarks.uncontended import UncontendedRow

__all__ = ["Results"]


@dataclasses.dataclass
class Results:
    """One benchmark run.

    Attributes:
        mode: ``full`` or ``smoke``.
        sizes: The iteration counts used.
        machine: `benchmarks.machine.describe` output.
        load_before: Load averages when the run started.
        load_after: Load averages when it ended.
        redis: ``{"url", "server", "private"}`` of the server used, or empty.
        engines: The same for the other distributed engines, by family (``postgres``,
            ``etcd``); an engine left out has no entry.
        skipped: One note per subject left out, and why.
        uncontended: Rows of the uncontended measurement (empty if not run).
        handoff: Rows of the hand-off measurement.
        contended: Rows of the contended measurement.
        importcost: The import measurement, if run.
        cold: The cold-start measurement, if run.
        verdicts: The targets, judged.
        seconds: Wall time of the whole run.
    """

    mode: str
    sizes: Sizes
    machine: dict[str, object]
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    redis: dict[str, object] = dataclasses.field(default_factory=dict)
    engines: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)
    uncontended: list[UncontendedRow] = dataclasses.field(default_factory=list)
    handoff: list[HandoffRow] = dataclasses.field(default_factory=list)
    contended: list[ContendedRow] = dataclasses.field(default_factory=list)
    importcost: ImportCost | None = None
    cold: Cold | None = None
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the raw samples plus the derived numbers the tables show."""
        data: dict[str, Any] = _clean(dataclasses.asdict(self))
        for single, out in zip(self.uncontended, data["uncontended"], strict=True):
            out["microseconds_per_pair"] = _finite(single.microseconds)
        for handed, out in zip(self.handoff, data["handoff"], strict=True):
            out.update({f"p{p}_ms": _finite(handed.ms(p)) for p in (50, 90, 99)})
        for contended, out in zip(self.contended, data["contended"], strict=True):
            out["lost"] = contended.lost
            out["error"] = contended.error
            out["pairs_per_second"] = _finite(contended.pairs_per_second)
            for run, raw_run in zip(contended.runs, out["runs"], strict=True):
                raw_run["pairs_per_second"] = _finite(run.pairs_per_second())
        for verdict, out in zip(self.verdicts, data["verdicts"], strict=True):
            out["status"] = verdict.status
        if self.importcost is not None:
            data["importcost"]["over_bare_ms"] = _finite(self.importcost.over_bare_ms)
        if self.cold is not None:
            _cold_json(self.cold, data["cold"])
        return data


def _cold_json(cold: Cold, out: dict[str, Any]) -> None:
    """Add the medians and the ratios to the references that the report shows."""
    for row, raw in zip(cold.rows, out["rows"], strict=True):
        raw["median_ms"] = _finite(row.median_ms)
        raw["x_python_pass"] = _finite(cold.ratio(row.subject, BARE))
        raw["x_filelock_fresh"] = _finite(cold.ratio(row.subject, FILELOCK))
    for trips, raw in zip(cold.round_trips, out["round_trips"], strict=True):
        raw.update({f"p{p}_ms": _finite(trips.p(p)) for p in (50, 90, 99)})


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _clean(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) by ``None``, recursively."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
