"""Uncontended acquire+release pairs per second, in one process.

Every subject gets its own lock in the benchmark directory. Each is warmed up and sized
so one repetition takes about ``Sizes.seconds_per_repeat``. The repetitions are
*interleaved*: each round measures every subject once, family by family, with the raw
primitive of the family first, and every other round runs in reverse order. A subject's
ratio is computed within each round against the raw primitive measured seconds earlier
or later, and the median of those ratios is reported (with the median rate), so a burst
of load from elsewhere on the machine moves both sides of a ratio rather than one. The
garbage collector is off while a loop runs, as in ``timeit``.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from typing import TYPE_CHECKING

from benchmarks.stats import median
from benchmarks.subjects import BASELINES, make_locker

if TYPE_CHECKING:
    from benchmarks.settings import Sizes
    from benchmarks.subjects import Locker, Subject

__all__ = ["UncontendedRow", "measure"]

_CALIBRATION_PAIRS = 50


@dataclasses.dataclass
class UncontendedRow:
    """One subject's uncontended result.

    Attributes:
        subject: The subject's name.
        kind: ``raw``, ``lockkit`` or ``peer``.
        family: Its family; ``ratio`` refers to that family's raw primitive.
        pairs: Acquire+release pairs in each repetition.
        rates: Pairs per second of every repetition, in order.
        ratios: Per repetition, time per pair over the raw primitive's in that round.
        pairs_per_second: The median of ``rates``.
        ratio: The median of ``ratios`` (``1.0`` for the primitive itself; ``None`` when
            the primitive was not measured).
        error: Why the subject could not be measured, if it could not.
    """

    subject: str
    kind: str
    family: str
    pairs: int = 0
    rates: list[float] = dataclasses.field(default_factory=list)
    ratios: list[float] = dataclasses.field(default_factory=list)
    pairs_per_second: float = float("nan")
    ratio: float | None = None
    error: str = ""

    @property
    def microseconds(self) -> float:
        """Median time of one pair, in microseconds."""
        return 1e6 / self.pairs_per_second if self.pairs_per_second > 0 else float("nan")


def _time_pairs(locker: Locker, pairs: int) -> float:
    """Run ``pairs`` acquire+release pairs with the GC off; return pairs per second."""
    acquire, release = locker.acquire, locker.release
    loop = range(pairs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in loop:
            acquire()
            release()
        elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return pairs / elapsed if elapsed > 0 else float("inf")


def _calibrate(locker: Locker, sizes: Sizes) -> int:
    """Warm up, then pick a pair count that takes about ``seconds_per_repeat``."""
    rate = _time_pairs(locker, _CALIBRATION_PAIRS)
    rate = max(rate, _time_pairs(locker, _CALIBRATION_PAIRS))
    wanted = int(rate * sizes.seconds_per_repeat)
    return max(sizes.min_pairs, min(sizes.max_pairs, wanted))


def _prepare(
    subjects: list[Subject],
    directory: str,
    redis_url: str | None,
    sizes: Sizes,
    rows: dict[str, UncontendedRow],
) -> dict[str, Locker]:
    """Build and calibrate a locker per subject; a failure goes into its row."""
    lockers: dict[str, Locker] = {}
    for subject in subjects:
        path = os.path.join(directory, f"uncontended-{subject.slug}.lock")  # noqa: PTH118
        try:
            locker = make_locker(subject.factory, path, redis_url)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows[subject.name].error = f"{type(exc).__name__}: {exc}"
            continue
        lockers[subject.name] = locker
        try:
            rows[subject.name].pairs = _calibrate(locker, sizes)
        except Exception as exc:  # noqa: BLE001
            rows[subject.name].error = f"{type(exc).__name__}: {exc}"
    return lockers


def _order(subjects: list[Subject]) -> list[Subject]:
    """Family by family, each family's raw primitive first."""
    families = list(dict.fromkeys(s.family for s in subjects))
    return [
        s
        for family in families
        for s in sorted(
            (s for s in subjects if s.family == family),
            key=lambda s: s.name != BASELINES[family],
        )
    ]


def _summarise(rows: dict[str, UncontendedRow]) -> None:
    """Fill in median rates, then median per-round ratios to each family's primitive."""
    for row in rows.values():
        if row.rates and not row.error:
            row.pairs_per_second = median(row.rates)
    for row in rows.values():
        base = rows.get(BASELINES[row.family])
        if base is None or base.error or row.error:
            continue
        row.ratios = [b / r for b, r in zip(base.rates, row.rates, strict=False) if r > 0]
        if row.ratios:
            row.ratio = median(row.ratios)


def measure(
    subjects: list[Subject], directory: str, redis_url: str | None, sizes: Sizes
) -> list[UncontendedRow]:
    """Measure every subject; a subject that fails is reported with its error."""
    rows = {s.name: UncontendedRow(s.name, s.kind, s.family) for s in subjects}
    lockers: dict[str, Locker] = {}
    ordered = _order(subjects)
    try:
        lockers = _prepare(ordered, directory, redis_url, sizes, rows)
        for repeat in range(sizes.repeats):
            names = [s.name for s in ordered if s.name in lockers]
            for name in names if repeat % 2 == 0 else reversed(names):
                row, locker = rows[name], lockers[name]
                if row.error:
                    continue
                try:
                    row.rates.append(_time_pairs(locker, row.pairs))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    row.error = f"{type(exc).__name__}: {exc}"
    finally:
        for locker in lockers.values():
            locker.close()
    _summarise(rows)
    return [rows[s.name] for s in subjects]
