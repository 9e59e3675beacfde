"""Hand-off latency: from a holder's release to a waiting process's acquire.

Two processes (``spawn``), a holder and a waiter, each with its own lock object, and the
parent conducting them over pipes. One round:

1. the holder acquires;
2. the waiter says it is starting, then calls ``acquire`` and blocks;
3. the parent lets a random pause in ``Sizes.handoff_pause`` pass (so the waiter is
   inside its wait, and polling waiters are caught at every phase of their sleep),
   then tells the holder to release;
4. the holder reads ``time.monotonic_ns()`` just before ``release``; the waiter reads
   it right after ``acquire`` returns. ``CLOCK_MONOTONIC`` is one clock for the whole
   machine, so the difference is the hand-off latency;
5. the waiter releases, and the next round starts.

A subject gets ``Sizes.handoff_rounds`` rounds, fewer if ``Sizes.handoff_budget``
seconds run out first (a 250 ms poll makes 200 rounds take a minute). The waiter
reports the CPU time it used per round, which shows a busy wait. One pair of processes
serves every subject in turn; after a timeout or an error both are killed and a fresh
pair takes the next subject. Children are always reaped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import random
import time
from typing import TYPE_CHECKING, Any

from benchmarks.stats import percentile
from benchmarks.subjects import Locker, make_locker

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from benchmarks.settings import Sizes
    from benchmarks.subjects import Subject

__all__ = ["HandoffRow", "handoff_child", "measure"]

_REPLY_TIMEOUT = 60.0  # seconds; portalocker's 250 ms poll is slow, not this slow
_START_TIMEOUT = 120.0


@dataclasses.dataclass
class HandoffRow:
    """One subject's hand-off result.

    Attributes:
        subject: The subject's name.
        kind: ``raw``, ``lockkit`` or ``peer``.
        family: Its family.
        latencies_ns: Release-to-acquire latency of every round, in nanoseconds.
        waiter_cpu_ms: CPU time (user+system) the waiter used per round, milliseconds.
        error: Why the subject could not be measured, if it could not.
    """

    subject: str
    kind: str
    family: str
    latencies_ns: list[int] = dataclasses.field(default_factory=list)
    waiter_cpu_ms: float = float("nan")
    error: str = ""

    def ms(self, pct: float) -> float:
        """The ``pct``-th percentile latency in milliseconds."""
        return percentile([v / 1e6 for v in self.latencies_ns], pct)


def _obey(role: str, locker: Locker, conn: Any, command: str) -> None:
    if command == "acquire":
        if role == "waiter":
            conn.send(("starting", 0))
        locker.acquire()
        conn.send(("acquired", time.monotonic_ns()))
    else:
        now = time.monotonic_ns()
        locker.release()
        conn.send(("released", now))


def handoff_child(role: str, redis_url: str | None, conn: Any) -> None:
    """Child process body: obey ``setup``/``acquire``/``release``/``stop`` from the parent.

    ``("setup", factory, path)`` switches to a new subject and answers ``ready``;
    ``stop`` ends the subject and answers with the CPU time used since its setup.
    """
    locker: Locker | None = None
    cpu_start = 0
    try:
        while True:
            message = conn.recv()
            if message == "exit":
                return
            if isinstance(message, tuple):
                _, factory, path = message
                locker = make_locker(factory, path, redis_url)
                conn.send(("ready", 0))
                cpu_start = time.process_time_ns()
            elif message == "stop" and locker is not None:
                conn.send(("cpu", time.process_time_ns() - cpu_start))
                locker.close()
                locker = None
            elif locker is not None:
                _obey(role, locker, conn, message)
    except EOFError:
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _expect(conn: Connection, what: str, timeout: float = _REPLY_TIMEOUT) -> int:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what!r} within {timeout:.0f} s")
    tag, value = conn.recv()
    if tag == "error":
        raise RuntimeError(value)
    if tag != what:
        raise RuntimeError(f"expected {what!r}, got {tag!r}")
    return int(value)


class _Pair:
    """A holder and a waiter process, and the parent's ends of their pipes."""

    def __init__(self, redis_url: str | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: dict[str, Connection] = {}
        self.children: list[multiprocessing.process.BaseProcess] = []
        try:
            for role in ("holder", "waiter"):
                mine, theirs = ctx.Pipe()
                child = ctx.Process(
                    target=handoff_child,
                    args=(role, redis_url, theirs),
                    daemon=True,
                    name=f"handoff-{role}",
                )
                self.conns[role] = mine
                self.children.append(child)
                child.start()
                theirs.close()
        except BaseException:
            self.close(kill=True)
            raise

    @property
    def holder(self) -> Connection:
        return self.conns["holder"]

    @property
    def waiter(self) -> Connection:
        return self.conns["waiter"]

    def close(self, *, kill: bool) -> None:
        """Ask the children to exit (or kill them), reap them, close the pipes."""
        for conn in self.conns.values():
            if not kill:
                with contextlib.suppress(OSError):
                    conn.send("exit")
        for child in self.children:
            if child.pid is None:
                continue
            child.join(timeout=0.1 if kill else 5)
            if child.is_alive():
                child.kill()
            child.join()
        for conn in self.conns.values():
            conn.close()


def _rounds(pair: _Pair, row: HandoffRow, sizes: Sizes) -> None:
    rng = random.Random(7)  # the same pauses for every subject  # noqa: S311
    low, high = sizes.handoff_pause
    budget_end = time.monotonic() + sizes.handoff_budget
    holder, waiter = pair.holder, pair.waiter
    for _ in range(sizes.handoff_rounds):
        holder.send("acquire")
        _expect(holder, "acquired")
        waiter.send("acquire")
        _expect(waiter, "starting")
        time.sleep(rng.uniform(low, high))
        holder.send("release")
        released = _expect(holder, "released")
        acquired = _expect(waiter, "acquired")
        row.latencies_ns.append(acquired - released)
        waiter.send("release")
        _expect(waiter, "released")
        if time.monotonic() > budget_end:
            break


def _one_subject(pair: _Pair, subject: Subject, directory: str, sizes: Sizes) -> HandoffRow:
    row = HandoffRow(subject.name, subject.kind, subject.family)
    path = os.path.join(directory, f"handoff-{subject.slug}.lock")  # noqa: PTH118
    for conn in (pair.holder, pair.waiter):
        conn.send(("setup", subject.factory, path))
    for conn in (pair.holder, pair.waiter):
        _expect(conn, "ready", _START_TIMEOUT)
    _rounds(pair, row, sizes)
    for conn in (pair.holder, pair.waiter):
        conn.send("stop")
    _expect(pair.holder, "cpu")
    row.waiter_cpu_ms = _expect(pair.waiter, "cpu") / 1e6 / max(1, len(row.latencies_ns))
    return row


def measure(
    subjects: list[Subject], directory: str, redis_url: str | None, sizes: Sizes
) -> list[HandoffRow]:
    """Measure every subject whose ``acquire`` waits."""
    rows = []
    pair: _Pair | None = None
    try:
        for subject in subjects:
            if not subject.waits:
                continue
            if pair is None:
                pair = _Pair(redis_url)
            try:
                rows.append(_one_subject(pair, subject, directory, sizes))
            except Exception as exc:  # noqa: BLE001 - reported in the table
                rows.append(
                    HandoffRow(
                        subject.name,
                        subject.kind,
                        subject.family,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                pair.close(kill=True)  # its state is unknown: the next subject gets a new pair
                pair = None
    finally:
        if pair is not None:
            pair.close(kill=False)
    return rows
