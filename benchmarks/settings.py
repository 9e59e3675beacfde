"""How much work each measurement does: the full run and the ``--smoke`` run."""

from __future__ import annotations

import dataclasses

__all__ = ["FULL", "SMOKE", "Sizes"]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Iteration counts and time budgets of one benchmark run.

    Attributes:
        repeats: Uncontended: timed repetitions per subject (the median is reported).
        seconds_per_repeat: Uncontended: each repetition is sized to take about this long.
        min_pairs: Uncontended: fewest acquire+release pairs in one repetition.
        max_pairs: Uncontended: most acquire+release pairs in one repetition.
        handoff_rounds: Hand-off: releases timed per subject.
        handoff_budget: Hand-off: seconds after which a subject stops early (slow pollers).
        handoff_pause: Hand-off: the holder releases a random time in this range (s)
            after the waiter starts to acquire, so polling waiters are caught at
            every phase of their sleep.
        processes: Contended: processes per run.
        increments: Contended: locked increments per process.
        contended_repeats: Contended: runs per subject (the median run is reported).
        contended_timeout: Contended: seconds one run may take before it is abandoned.
        import_runs: Import cost: interpreter starts per variant.
        first_lock_runs: Import cost: fresh interpreters timing the first ``Lock(...)``.
        cold_runs: Cold start: rounds of fresh processes per command (after a warm-up).
        cold_round_trips: Cold start: acquire+release pairs timed per co-process driver.
    """

    repeats: int
    seconds_per_repeat: float
    min_pairs: int
    max_pairs: int
    handoff_rounds: int
    handoff_budget: float
    handoff_pause: tuple[float, float]
    processes: int
    increments: int
    contended_repeats: int
    contended_timeout: float
    import_runs: int
    first_lock_runs: int
    cold_runs: int
    cold_round_trips: int


FULL = Sizes(
    repeats=9,
    seconds_per_repeat=0.3,
    min_pairs=200,
    max_pairs=200_000,
    handoff_rounds=200,
    handoff_budget=120.0,
    handoff_pause=(0.005, 0.015),
    processes=4,
    increments=250,
    contended_repeats=3,
    contended_timeout=300.0,
    import_runs=20,
    first_lock_runs=10,
    cold_runs=15,
    cold_round_trips=500,
)
"""The numbers quoted in docs and issues."""

SMOKE = Sizes(
    repeats=3,
    seconds_per_repeat=0.02,
    min_pairs=20,
    max_pairs=5_000,
    handoff_rounds=20,
    handoff_budget=1.0,
    handoff_pause=(0.002, 0.006),
    processes=2,
    increments=10,
    contended_repeats=1,
    contended_timeout=60.0,
    import_runs=5,
    first_lock_runs=3,
    cold_runs=2,
    cold_round_trips=10,
)
"""Tiny counts for CI: proves every code path still runs, says little about speed."""
