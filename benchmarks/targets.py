"""The performance bar of issue 7, judged on one run's numbers (ratios from that run).

* excl and hardlink uncontended <= 1.5x the raw ``O_EXCL``+unlink pair; redis <= 1.15x
  raw ``SET NX`` + Lua delete;
* hand-off p50 <= 2 ms for the file backends, <= 1 ms for redis;
* contended throughput >= the best peer of the backend's family, with no lost update;
* ``import lockkit`` <= 30 ms over a bare interpreter, without importing ``redis``;
* cold start (issue 19): ``lockkit run LOCK -- true`` <= 3x ``python -c pass``; a fresh
  process's first lock <= filelock's fresh process with the automatic backend, and
  <= 0.8x of it with a named file backend.

Plugins and peers are shown for reference; no target applies to them. A target that
could not be judged (a subject missing or failed) is reported as such, never as met.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from benchmarks.cold import BARE, FILELOCK
from benchmarks.subjects import BASELINES

if TYPE_CHECKING:
    from benchmarks.results import Results

__all__ = ["Verdict", "judge"]

UNCONTENDED_LIMITS = {"lockkit excl": 1.5, "lockkit hardlink": 1.5, "lockkit redis": 1.15}
HANDOFF_P50_MS = {
    "lockkit excl": 2.0,
    "lockkit hardlink": 2.0,
    "lockkit filelock": 2.0,
    "lockkit redis": 1.0,
}
CONTENDED_SUBJECTS = ("lockkit excl", "lockkit hardlink", "lockkit filelock", "lockkit redis")
IMPORT_LIMIT_MS = 30.0
COLD_LIMITS = {  # subject -> (reference, most times the reference)
    "lockkit run LOCK -- true": (BARE, 3.0),
    "lockkit automatic: fresh process, first lock": (FILELOCK, 1.0),
    "lockkit hardlink: fresh process, first lock": (FILELOCK, 0.8),
    "lockkit excl: fresh process, first lock": (FILELOCK, 0.8),
    "lockkit filelock: fresh process, first lock": (FILELOCK, 0.8),
}


@dataclasses.dataclass
class Verdict:
    """One target, judged.

    Attributes:
        measurement: ``uncontended``, ``handoff``, ``contended``, ``import`` or ``cold``.
        subject: What it is about, e.g. ``lockkit excl``.
        target: The target in words, e.g. ``<= 1.5x raw O_EXCL+unlink``.
        measured: The measured value in words, e.g. ``2.31x``.
        met: ``True``/``False``; ``None`` when it could not be judged.
    """

    measurement: str
    subject: str
    target: str
    measured: str
    met: bool | None

    @property
    def status(self) -> str:
        """``MET``, ``MISSED`` or ``N/A``."""
        return {True: "MET", False: "MISSED", None: "N/A"}[self.met]


def _ok(value: float, limit: float, *, at_least: bool = False) -> bool | None:
    if not math.isfinite(value):
        return None
    return value >= limit if at_least else value <= limit


def _uncontended(results: Results) -> list[Verdict]:
    rows = {r.subject: r for r in results.uncontended}
    verdicts = []
    for name, limit in UNCONTENDED_LIMITS.items():
        row = rows.get(name)
        if row is None:
            continue
        ratio = row.ratio if row.ratio is not None else math.nan
        verdicts.append(
            Verdict(
                "uncontended",
                name,
                f"<= {limit:g}x {BASELINES[row.family]}",
                f"{ratio:.2f}x" if math.isfinite(ratio) else (row.error or "not measured"),
                _ok(ratio, limit),
            )
        )
    return verdicts


def _handoff(results: Results) -> list[Verdict]:
    verdicts = []
    for row in results.handoff:
        limit = HANDOFF_P50_MS.get(row.subject)
        if limit is None:
            continue
        p50 = row.ms(50) if not row.error else math.nan
        measured = f"p50 {p50:.3f} ms" if math.isfinite(p50) else (row.error or "not measured")
        verdicts.append(
            Verdict("handoff", row.subject, f"p50 <= {limit:g} ms", measured, _ok(p50, limit))
        )
    return verdicts


def _contended(results: Results) -> list[Verdict]:
    verdicts = []
    for row in results.contended:
        if row.subject not in CONTENDED_SUBJECTS:
            continue
        peers = [
            r
            for r in results.contended
            if r.kind == "peer" and r.family == row.family and not r.error and r.lost == 0
        ]
        best = max(peers, key=lambda r: r.pairs_per_second, default=None)
        rate = row.pairs_per_second if not row.error else math.nan
        if row.error or row.lost:
            measured = row.error or f"{row.lost} lost updates"
            verdicts.append(
                Verdict("contended", row.subject, "0 lost updates", measured, met=False)
            )
            continue
        if best is None:
            target, met = "no peer of its family measured", None
            measured = f"{rate:,.0f} pairs/s"
        else:
            target = f">= best peer ({best.subject})"
            measured = f"{rate / best.pairs_per_second:.2f}x of {best.pairs_per_second:,.0f}/s"
            met = _ok(rate, best.pairs_per_second, at_least=True)
        verdicts.append(Verdict("contended", row.subject, target, measured, met))
    return verdicts


def _import(results: Results) -> list[Verdict]:
    cost = results.importcost
    if cost is None:
        return []
    if cost.error:
        return [Verdict("import", "import lockkit", "measurable", cost.error, None)]
    over = cost.over_bare_ms
    return [
        Verdict(
            "import",
            "import lockkit",
            f"<= {IMPORT_LIMIT_MS:g} ms over bare",
            f"{over:.1f} ms",
            _ok(over, IMPORT_LIMIT_MS),
        ),
        Verdict(
            "import",
            "import lockkit",
            "no redis import",
            "redis imported" if cost.redis_imported else "no redis",
            not cost.redis_imported,
        ),
    ]


def _cold(results: Results) -> list[Verdict]:
    cold = results.cold
    if cold is None:
        return []
    verdicts = []
    for subject, (reference, limit) in COLD_LIMITS.items():
        row = cold.row(subject)
        ratio = cold.ratio(subject, reference)
        short = "python -c pass" if reference == BARE else "filelock fresh process"
        if math.isfinite(ratio):
            measured = f"{ratio:.2f}x"
        else:
            measured = (row.error if row else "") or "not measured"
        verdicts.append(
            Verdict("cold", subject, f"<= {limit:g}x {short}", measured, _ok(ratio, limit))
        )
    return verdicts


def judge(results: Results) -> list[Verdict]:
    """Every target that the measurements in ``results`` allow judging."""
    return [
        *_uncontended(results),
        *_handoff(results),
        *_contended(results),
        *_import(results),
        *_cold(results),
    ]
