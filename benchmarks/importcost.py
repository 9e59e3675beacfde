"""What ``import lockkit`` and the first ``lockkit.Lock(...)`` cost a program.

* Wall time of ``python -c "import lockkit"`` minus ``python -c "pass"``: the two are
  run alternately, each in a fresh interpreter, and the medians are subtracted.
* ``python -X importtime -c "import lockkit"``: lockkit's cumulative import time, the
  modules it adds to a bare interpreter, and whether any of them is ``redis``.
* The first ``lockkit.Lock(path, ...)`` in a fresh interpreter, which imports attrs,
  pluggy, the registry and the backend (timed with ``perf_counter`` inside the child),
  and the first acquire+release after it; both with ``backend="excl"`` and with the
  default selection (settings, else auto-detection).

The children run in the benchmark directory with ``LOCKKIT_*`` variables removed, so
the deployment's own settings do not change what is measured. They measure what an
installed program sees, a warm bytecode cache: ``PYTHONDONTWRITEBYTECODE`` is dropped and
``PYTHONPYCACHEPREFIX`` points into the benchmark directory (so nothing is written into
the source tree), and one unmeasured run of each variant fills it first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from benchmarks.stats import median

__all__ = ["FirstLock", "ImportCost", "measure"]

_FIRST_LOCK = """
import json, sys, time
t0 = time.perf_counter()
import lockkit
t1 = time.perf_counter()
lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2] or None)
t2 = time.perf_counter()
lock.acquire()
lock.release()
t3 = time.perf_counter()
print(json.dumps({
    "import": t1 - t0, "construct": t2 - t1, "first_pair": t3 - t2,
    "redis": any(m == "redis" or m.startswith("redis.") for m in sys.modules),
    "backend": lock.backend.name,
}))
"""


@dataclasses.dataclass
class FirstLock:
    """The first ``Lock(...)`` of a fresh interpreter, for one ``backend=`` value.

    Attributes:
        backend_arg: What was passed as ``backend`` (``None``: the default selection).
        backend: The backend that was chosen.
        construct_ms: Time of ``Lock(...)`` in each run, milliseconds.
        first_pair_ms: Time of the first acquire+release after it, milliseconds.
        redis_imported: Whether ``redis`` was imported by then, in any run.
    """

    backend_arg: str | None
    backend: str = ""
    construct_ms: list[float] = dataclasses.field(default_factory=list)
    first_pair_ms: list[float] = dataclasses.field(default_factory=list)
    redis_imported: bool = False


@dataclasses.dataclass
class ImportCost:
    """The import measurement.

    Attributes:
        bare_ms: Wall time of each ``python -c pass``, milliseconds.
        import_ms: Wall time of each ``python -c "import lockkit"``, milliseconds.
        importtime_us: lockkit's cumulative time in ``-X importtime``, microseconds.
        added_modules: Modules ``import lockkit`` loads beyond a bare interpreter.
        heaviest: The slowest of those by self time: ``(module, microseconds)``.
        redis_imported: Whether ``import lockkit`` imports ``redis``.
        first_lock: The first ``Lock(...)``, per ``backend=`` variant.
        error: Why the measurement failed, if it did.
    """

    bare_ms: list[float] = dataclasses.field(default_factory=list)
    import_ms: list[float] = dataclasses.field(default_factory=list)
    importtime_us: int = 0
    added_modules: list[str] = dataclasses.field(default_factory=list)
    heaviest: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    redis_imported: bool = False
    first_lock: list[FirstLock] = dataclasses.field(default_factory=list)
    error: str = ""

    @property
    def over_bare_ms(self) -> float:
        """Median ``import lockkit`` run minus median bare run, milliseconds."""
        return median(self.import_ms) - median(self.bare_ms)


def _env(cwd: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LOCKKIT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = os.path.join(cwd, "pycache")  # noqa: PTH118
    return env


def _wall_ms(args: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=_env(cwd), check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def _importtime(code: str, cwd: str) -> dict[str, tuple[int, int]]:
    """``-X importtime`` of ``code``: module -> (self us, cumulative us)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env=_env(cwd),
        check=True,
        capture_output=True,
        text=True,
    )
    found = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, total, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if own.isdigit():
            found[name] = (int(own), int(total))
    return found


def _first_lock(cost: ImportCost, backend: str | None, directory: str, runs: int) -> None:
    entry = FirstLock(backend)
    path = os.path.join(directory, "first-lock.lock")  # noqa: PTH118
    for run in range(runs + 1):
        done = subprocess.run(
            [sys.executable, "-c", _FIRST_LOCK, path, backend or ""],
            cwd=directory,
            env=_env(directory),
            check=True,
            capture_output=True,
            text=True,
        )
        if run == 0:
            continue  # fills the bytecode cache
        data = json.loads(done.stdout)
        entry.backend = data["backend"]
        entry.construct_ms.append(data["construct"] * 1000)
        entry.first_pair_ms.append(data["first_pair"] * 1000)
        entry.redis_imported = entry.redis_imported or bool(data["redis"])
    cost.first_lock.append(entry)


def measure(directory: str, runs: int, first_lock_runs: int) -> ImportCost:
    """Measure everything above; ``runs`` interpreter starts per variant."""
    cost = ImportCost()
    python = sys.executable
    try:
        for args in ([python, "-c", "pass"], [python, "-c", "import lockkit"]):
            _wall_ms(args, directory)  # warm the page cache and .pyc files
        for _ in range(runs):
            cost.bare_ms.append(_wall_ms([python, "-c", "pass"], directory))
            cost.import_ms.append(_wall_ms([python, "-c", "import lockkit"], directory))
        bare = _importtime("pass", directory)
        loaded = _importtime("import lockkit", directory)
        cost.importtime_us = loaded.get("lockkit", (0, 0))[1]
        cost.added_modules = sorted(set(loaded) - set(bare))
        cost.heaviest = sorted(
            ((m, loaded[m][0]) for m in cost.added_modules), key=lambda item: -item[1]
        )[:5]
        cost.redis_imported = any(m == "redis" or m.startswith("redis.") for m in loaded)
        for backend in ("excl", None):
            _first_lock(cost, backend, directory, first_lock_runs)
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        cost.error = f"{type(exc).__name__}: {exc} {detail[-500:]}".strip()
    return cost
