"""Contending processes that record, inside the lock, the fencing token each one got.

`run_fenced` starts P processes (spawn) behind a barrier; each takes the lock K times
and, while holding it, appends ``token pid`` to a shared log, increments a counter file
by read-modify-write (a lost update shows as a final count below the acquisitions),
checks `Lock.is_held`, and counts overlaps with other holders through a shared gauge.
A ``milestone`` event is set when the first process reaches ``milestone_at``
acquisitions, so a test can inject a fault mid-run without sleeping.

Run as a script, it prints the counts for one run (the numbers in the docs)::

    python -m tests.helpers.fencing URL[,URL...] PROCESSES ACQUISITIONS
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pathlib
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.synchronize import Barrier, Event

__all__ = ["FencedRun", "run_fenced"]


@attrs.frozen
class FencedRun:
    """What one `run_fenced` saw.

    Attributes:
        tokens: The tokens in the order the holders wrote them.
        acquisitions: Completed acquisitions, over all processes.
        final: The counter file's final value.
        double_holders: Acquisitions that found another holder inside the lock.
        not_held: ``is_held()`` False inside the lock.
        lost_events: ``on_lost`` calls.
        errors: `lockkit.LockError` messages (an acquisition that failed is retried).
        escaped: Anything else raised (must be empty).
    """

    tokens: tuple[int, ...]
    acquisitions: int
    final: int
    double_holders: int
    not_held: int
    lost_events: int
    errors: tuple[str, ...]
    escaped: tuple[str, ...]

    @property
    def non_increasing(self) -> int:
        """Tokens not larger than the previous holder's."""
        return sum(1 for a, b in zip(self.tokens, self.tokens[1:], strict=False) if b <= a)

    @property
    def lost_updates(self) -> int:
        """Increments made under the lock that did not survive."""
        return self.acquisitions - self.final


def _worker(  # noqa: PLR0917 - multiprocessing passes arguments positionally
    url: str,
    name: str,
    directory: str,
    acquisitions: int,
    barrier: Barrier,
    gauge: Any,
    milestone: Event,
    milestone_at: int,
    results: Any,
    stop: Event,
    hold: float,
) -> None:
    import lockkit

    lost: list[int] = []
    done = double = not_held = 0
    errors: list[str] = []
    escaped: list[str] = []
    lock = lockkit.Lock(name, backend=url, timeout=30, on_lost=lambda _: lost.append(1))
    log_path = os.path.join(directory, "tokens.log")
    counter = pathlib.Path(directory, "counter")
    barrier.wait()
    deadline = time.monotonic() + 240
    while done < acquisitions and time.monotonic() < deadline and not stop.is_set():
        try:
            with lock:
                with gauge.get_lock():
                    gauge.value += 1
                    overlap = gauge.value > 1
                try:
                    assert lock.lease is not None
                    token = lock.lease.fencing_token
                    value = int(counter.read_text() or "0")
                    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        os.write(fd, f"{token} {os.getpid()}\n".encode())
                    finally:
                        os.close(fd)
                    if hold:
                        time.sleep(hold)  # the work done under the lock, not a wait
                    counter.write_text(str(value + 1))
                    if not lock.is_held():
                        not_held += 1
                finally:
                    with gauge.get_lock():
                        gauge.value -= 1
            double += overlap
            done += 1
            if done == milestone_at:
                milestone.set()
        except lockkit.LockError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)  # a server restarting: try again shortly
        except Exception as exc:  # noqa: BLE001 - what escapes is what the test reports
            escaped.append(f"{type(exc).__name__}: {exc}")
            break
    results.put((done, double, not_held, len(lost), errors, escaped))


def run_fenced(
    url: str,
    *,
    processes: int = 6,
    acquisitions: int = 50,
    name: str = "fenced",
    milestone_at: int = 0,
    during: Callable[[], None] | None = None,
    stop_after_during: bool = False,
    directory: str | None = None,
    hold: float = 0.0,
) -> FencedRun:
    """Run the contention; ``during`` runs once ``milestone_at`` acquisitions are done.

    With ``stop_after_during``, the processes stop once ``during`` returns (so
    ``acquisitions`` is only an upper bound): a fault injection that takes as long as
    it takes is covered from start to end. ``directory`` (default: a temporary one)
    holds ``counter``, which the caller may read to see progress. ``hold``: seconds
    each holder stays inside the lock between reading and writing the counter.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    gauge = context.Value("i", 0)
    milestone = context.Event()
    stop = context.Event()
    results = context.Queue()
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="lockkit-fenced-"))
        pathlib.Path(directory, "counter").write_text("0")
        workers = [
            context.Process(
                target=_worker,
                args=(
                    url,
                    name,
                    directory,
                    acquisitions,
                    barrier,
                    gauge,
                    milestone,
                    milestone_at,
                    results,
                    stop,
                    hold,
                ),
            )
            for _ in range(processes)
        ]
        try:
            for worker in workers:
                worker.start()
            if during is not None:
                assert milestone.wait(timeout=120), "no process reached the milestone"
                try:
                    during()
                finally:
                    if stop_after_during:
                        stop.set()
            outcomes = [results.get(timeout=300) for _ in workers]
        finally:
            for worker in workers:
                if worker.pid is None:
                    continue  # never started (start() of an earlier one failed)
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
        log_path = pathlib.Path(directory, "tokens.log")
        lines = log_path.read_text().split() if log_path.exists() else []
        final = int(pathlib.Path(directory, "counter").read_text() or "0")
    return FencedRun(
        tokens=tuple(int(token) for token in lines[0::2]),
        acquisitions=sum(outcome[0] for outcome in outcomes),
        final=final,
        double_holders=sum(outcome[1] for outcome in outcomes),
        not_held=sum(outcome[2] for outcome in outcomes),
        lost_events=sum(outcome[3] for outcome in outcomes),
        errors=tuple(error for outcome in outcomes for error in outcome[4]),
        escaped=tuple(error for outcome in outcomes for error in outcome[5]),
    )


def main(argv: list[str]) -> None:
    """Print one run's counts (see the module docstring)."""
    url, processes, acquisitions = argv[0], int(argv[1]), int(argv[2])
    run = run_fenced(url, processes=processes, acquisitions=acquisitions // processes)
    print(
        f"acquisitions={run.acquisitions} non_increasing={run.non_increasing} "
        f"lost_updates={run.lost_updates} double_holders={run.double_holders} "
        f"not_held={run.not_held} on_lost={run.lost_events} errors={len(run.errors)} "
        f"escaped={len(run.escaped)}"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
