"""A forked child never releases, renews or finalizes its parent's lock.

Every built-in backend x `Lock`/`AsyncLock`/`ReadWriteLock` x the ways a child can
leave: falling out of the ``with`` block and exiting normally, ``sys.exit`` inside it,
``os._exit`` inside it, and (for `Lock`) a finalizer at exit. Each case runs in a fresh
interpreter (`fork_child.py`), so the interpreter's real exit path runs in the child.
Before the fix, the parent's ``is_held()`` turned false and another process took the
lock in every such run on excl, hardlink, filelock and redis.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

HERE = pathlib.Path(__file__).parent
FILE_BACKENDS = ["excl", "hardlink", "filelock"]
MODES = ["with", "sys.exit", "os._exit", "finalizer"]


def run_case(kind: str, backend: str, name: str, mode: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(HERE / "fork_child.py"), kind, backend, name, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, (result.stdout, result.stderr)
    return json.loads(lines[0])  # type: ignore[no-any-return]


def cases(backends: list[str]) -> list[Any]:
    out = []
    for kind in ("Lock", "AsyncLock", "ReadWriteLock"):
        for backend in backends:
            if kind == "ReadWriteLock" and backend in {"excl", "hardlink"}:
                continue  # they cannot share; ReadWriteLock refuses them
            for mode in MODES:
                if mode == "finalizer" and kind != "Lock":
                    continue
                out.append(pytest.param(kind, backend, mode, id=f"{kind}-{backend}-{mode}"))
    return out


def check(outcome: dict[str, object]) -> None:
    assert outcome["child_status"] == 0, outcome
    assert outcome["held_after_child"] is True, outcome
    assert outcome["taken_by_another"] is False, outcome


@pytest.mark.parametrize(("kind", "backend", "mode"), cases(FILE_BACKENDS))
def test_child_leaves_the_parents_file_lock_alone(
    tmp_path: pathlib.Path, kind: str, backend: str, mode: str
) -> None:
    check(run_case(kind, backend, str(tmp_path / "state.lock"), mode))


@pytest.mark.redis
@pytest.mark.parametrize(("kind", "backend", "mode"), cases(["redis"]))
def test_child_leaves_the_parents_redis_lock_alone(
    redis_url: str, kind: str, backend: str, mode: str
) -> None:
    name = f"fork-{kind}-{mode}"
    check(run_case(kind, redis_url, name, mode))


def test_child_can_take_its_own_lock_after_the_parent_lets_go(tmp_path: pathlib.Path) -> None:
    """The inherited object is usable in the child: it contends like any other process."""
    script = f"""
import os, lockkit
lock = lockkit.Lock({str(tmp_path / "x.lock")!r}, backend="excl")
lock.acquire()
child_reads, parent_writes = os.pipe()
parent_reads, child_writes = os.pipe()
pid = os.fork()
if pid == 0:
    assert not lock.locked and lock.lease is None and not lock.is_held()
    try:
        lock.acquire(timeout=0)
    except lockkit.LockTimeout:
        pass
    else:
        os._exit(3)  # took the lock the parent holds
    os.write(child_writes, b"x")  # tried, and was refused
    os.read(child_reads, 1)  # the parent released
    with lock.acquire(timeout=5):
        assert lock.is_held()
    os._exit(0)
os.read(parent_reads, 1)
assert lock.is_held()
lock.release()
os.write(parent_writes, b"x")
_, status = os.waitpid(pid, 0)
print("status", status)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "status 0" in result.stdout
