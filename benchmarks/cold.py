"""Cold start: what a short-lived process pays for its one lock (issue 19).

Cron jobs, git hooks and ``lockkit run`` from Node or a shell start a process, take one
lock, and exit, so the whole process is the cost. Two measurements:

* **Fresh processes.** Whole-process wall time of each command below, as the caller
  sees it (fork, exec, interpreter start, imports, the lock, exit). The commands are
  run round-robin, one fresh process each, ``runs`` rounds (the first round of each
  is a warm-up that fills the bytecode cache; the rotation of the start keeps any one
  command from always following the same neighbour), and the median is reported with
  its ratio to ``python -c pass`` and to filelock's fresh process. Each command has its
  own lock path, so a file one tool leaves cannot block another. The children see the
  environment of `benchmarks.importcost` (no ``LOCKKIT_*``, a warm bytecode cache).
* **Co-process.** A program that locks often keeps one ``lockkit coprocess`` and sends
  it JSON Lines (``{"id":1,"op":"acquire","name":PATH,"timeout":5}``, then
  ``{"id":2,"op":"release","name":PATH}``); one acquire+release round trip is compared
  with a warm acquire+release pair of ``lockkit.Lock`` inside one process. Driven from
  Python and, when ``node`` is on PATH, from Node (``cold_driver.js``). When the
  installed lockkit has no ``coprocess`` command it is reported as not available.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import subprocess
import sys
import time

from benchmarks.importcost import _env as child_env
from benchmarks.stats import median, percentile

__all__ = ["Cold", "ColdRow", "RoundTrips", "measure"]

_PYTHON_LOCK = (
    "import sys, lockkit\n"
    "lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2] or None)\n"
    "lock.acquire()\n"
    "lock.release()\n"
)
_FILELOCK = (
    "import sys, filelock\nlock = filelock.FileLock(sys.argv[1])\nlock.acquire()\nlock.release()\n"
)
_WARM_PAIRS = """
import json, sys, time, lockkit
lock = lockkit.Lock(sys.argv[1])
for _ in range(20):
    lock.acquire()
    lock.release()
samples = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    lock.acquire()
    lock.release()
    samples.append((time.perf_counter() - start) * 1000)
print(json.dumps(samples))
"""
_NODE_DRIVER = os.path.join(os.path.dirname(__file__), "cold_driver.js")  # noqa: PTH118, PTH120
_REPLY_TIMEOUT = 30.0  # s: a first reply may wait for a cold start on a loaded machine

BARE = "python -c pass"
FILELOCK = "filelock: fresh process, first lock"


@dataclasses.dataclass
class ColdRow:
    """One command, run in fresh processes.

    Attributes:
        subject: What it is, e.g. ``lockkit excl: fresh process, first lock``.
        argv: The command line (lock paths as run).
        ms: Wall time of each run, milliseconds.
        error: Why it could not be measured (the last line of its stderr), if so.
    """

    subject: str
    argv: list[str]
    ms: list[float] = dataclasses.field(default_factory=list)
    error: str = ""

    @property
    def median_ms(self) -> float:
        """The median wall time, or NaN."""
        return median(self.ms) if not self.error else float("nan")


@dataclasses.dataclass
class RoundTrips:
    """Acquire+release round trips, one way of driving them.

    Attributes:
        subject: e.g. ``coprocess from Python``.
        ms: Time of each acquire+release, milliseconds.
        error: Why there are no numbers ("not available: ..." when there is no
            ``lockkit coprocess``).
    """

    subject: str
    ms: list[float] = dataclasses.field(default_factory=list)
    error: str = ""

    def p(self, pct: float) -> float:
        """The ``pct``-th percentile in milliseconds, or NaN."""
        return percentile(self.ms, pct) if not self.error else float("nan")


@dataclasses.dataclass
class Cold:
    """The cold-start measurement.

    Attributes:
        runs: Measured rounds (after one warm-up round).
        rows: One per command, ``python -c pass`` and filelock's first.
        round_trips: In-process warm pairs, then the co-process from Python and Node.
        notes: What was left out, and why.
    """

    runs: int = 0
    rows: list[ColdRow] = dataclasses.field(default_factory=list)
    round_trips: list[RoundTrips] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def row(self, subject: str) -> ColdRow | None:
        """The row of ``subject``, if it was measured."""
        return next((r for r in self.rows if r.subject == subject), None)

    def ratio(self, subject: str, reference: str) -> float:
        """``subject``'s median over ``reference``'s, or NaN."""
        row, ref = self.row(subject), self.row(reference)
        if row is None or ref is None:
            return float("nan")
        return row.median_ms / ref.median_ms


def lockkit_command() -> tuple[list[str], str]:
    """How to start the ``lockkit`` command: pip's script beside this Python, else ``-m``."""
    script = os.path.join(os.path.dirname(sys.executable), "lockkit")  # noqa: PTH118, PTH120
    if os.access(script, os.X_OK):
        return [script], "the `lockkit` script"
    return [sys.executable, "-m", "lockkit"], "`python -m lockkit`"


def _commands(directory: str, redis_url: str | None, cold: Cold) -> list[ColdRow]:
    py = sys.executable
    lockkit, how = lockkit_command()

    def path(slug: str) -> str:
        return os.path.join(directory, f"cold-{slug}.lock")  # noqa: PTH118

    rows = [
        ColdRow(BARE, [py, "-c", "pass"]),
        ColdRow(FILELOCK, [py, "-c", _FILELOCK, path("filelock-pkg")]),
    ]
    for backend in ("hardlink", "excl", "filelock"):
        argv = [py, "-c", _PYTHON_LOCK, path(backend), backend]
        rows.append(ColdRow(f"lockkit {backend}: fresh process, first lock", argv))
    auto = [py, "-c", _PYTHON_LOCK, path("auto"), ""]
    rows.append(ColdRow("lockkit automatic: fresh process, first lock", auto))
    if redis_url is not None:
        argv = [py, "-c", _PYTHON_LOCK, "lockkit-bench-cold", redis_url]
        rows.append(ColdRow("lockkit redis: fresh process, first lock", argv))
    else:
        cold.notes.append("lockkit redis fresh process: no Redis server for this run")
    rows.append(ColdRow("lockkit run LOCK -- true", [*lockkit, "run", path("run"), "--", "true"]))
    named = [*lockkit, "run", path("run-excl"), "--backend", "excl", "--", "true"]
    rows.append(ColdRow("lockkit run --backend excl LOCK -- true", named))
    cold.notes.append(f"`lockkit run` is started as {how}")
    flock = shutil.which("flock")
    if flock is not None:
        rows.append(ColdRow("flock(1) LOCK true", [flock, path("flock1"), "true"]))
    else:
        cold.notes.append("flock(1): not on PATH")
    return rows


def _once(row: ColdRow, directory: str) -> float | None:
    """One fresh process of ``row``: its wall time in ms, or ``None`` (error recorded)."""
    start = time.perf_counter()
    done = subprocess.run(
        row.argv,
        cwd=directory,
        env=child_env(directory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=120,
    )
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        row.error = lines[-1][:300]
        return None
    return elapsed


def _fresh_processes(rows: list[ColdRow], directory: str, runs: int) -> None:
    for round_number in range(runs + 1):
        shift = round_number % len(rows)
        for row in rows[shift:] + rows[:shift]:
            if row.error:
                continue
            elapsed = _once(row, directory)
            if elapsed is not None and round_number > 0:  # round 0 warms the caches
                row.ms.append(elapsed)


class _Lines:
    """Lines from a pipe, with a deadline (a silent co-process must not hang the run)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def next(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None  # it exited
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _ask(process: subprocess.Popen[bytes], lines: _Lines, request: dict[str, object]) -> str:
    """Send one request; ``""`` on an ``ok`` reply, else what went wrong."""
    assert process.stdin is not None
    process.stdin.write(json.dumps(request).encode() + b"\n")
    process.stdin.flush()
    while True:
        line = lines.next(_REPLY_TIMEOUT)
        if line is None:
            return "no reply"
        try:
            reply = json.loads(line)
        except ValueError:
            return f"not JSON: {line[:200]!r}"
        if isinstance(reply, dict) and reply.get("id") == request["id"]:
            return "" if reply.get("ok") is True else f"refused: {line[:200].decode()}"


def _python_round_trips(path: str, directory: str, count: int) -> RoundTrips:
    result = RoundTrips("coprocess, driven from Python")
    lockkit, _ = lockkit_command()
    process = subprocess.Popen(
        [*lockkit, "coprocess"],
        cwd=directory,
        env=child_env(directory),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    lines = _Lines(process.stdout.fileno())
    try:
        for number in range(count + 5):  # 5 warm-up pairs
            start = time.perf_counter()
            acquire = {"id": 2 * number + 1, "op": "acquire", "name": path, "timeout": 5}
            problem = _ask(process, lines, acquire) or _ask(
                process, lines, {"id": 2 * number + 2, "op": "release", "name": path}
            )
            if problem:
                result.error = problem
                break
            if number >= 5:
                result.ms.append((time.perf_counter() - start) * 1000)
    except OSError as exc:  # a broken pipe: it exited
        result.error = str(exc)
    finally:
        _stop(process)
    if result.error:
        result.ms.clear()
        result.error = _why_absent(process, result.error)
    return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Close its stdin (end of requests), then make sure it is gone."""
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


def _why_absent(process: subprocess.Popen[bytes], problem: str) -> str:
    """``not available`` when the command does not exist, else the problem itself."""
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if "invalid choice" in stderr and "coprocess" in stderr:
        return "not available (this lockkit has no `lockkit coprocess`)"
    last = stderr.strip().splitlines()[-1:] or [""]
    return f"{problem} {last[0][:200]}".strip()


def _node_round_trips(path: str, directory: str, count: int) -> RoundTrips | None:
    node = shutil.which("node")
    if node is None:
        return None
    result = RoundTrips("coprocess, driven from Node")
    lockkit, _ = lockkit_command()
    done = subprocess.run(
        [node, _NODE_DRIVER, json.dumps([*lockkit, "coprocess"]), path, str(count)],
        cwd=directory,
        env=child_env(directory),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    try:
        data = json.loads(done.stdout)
    except ValueError:
        data = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result.ms = [float(x) for x in data.get("ms", [])]
    if data.get("error"):
        result.ms.clear()
        error = str(data["error"])
        absent = "invalid choice" in error and "coprocess" in error
        result.error = (
            "not available (this lockkit has no `lockkit coprocess`)" if absent else error
        )
    return result


def _in_process(path: str, directory: str, count: int) -> RoundTrips:
    result = RoundTrips("lockkit.Lock, warm, in one process")
    done = subprocess.run(
        [sys.executable, "-c", _WARM_PAIRS, path, str(count)],
        cwd=directory,
        env=child_env(directory),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        result.error = (done.stderr.strip().splitlines() or ["failed"])[-1]
    else:
        result.ms = [float(x) for x in json.loads(done.stdout)]
    return result


def measure(directory: str, runs: int, round_trips: int, redis_url: str | None) -> Cold:
    """Run both measurements; ``runs`` rounds of fresh processes, ``round_trips`` pairs."""
    cold = Cold(runs=runs)
    cold.rows = _commands(directory, redis_url, cold)
    _fresh_processes(cold.rows, directory, runs)
    pairs = os.path.join(directory, "cold-pairs.lock")  # noqa: PTH118
    cold.round_trips.append(_in_process(pairs, directory, round_trips))
    cold.round_trips.append(_python_round_trips(pairs, directory, round_trips))
    node = _node_round_trips(pairs, directory, round_trips)
    if node is None:
        cold.notes.append("co-process from Node: node not on PATH")
    else:
        cold.round_trips.append(node)
    return cold
