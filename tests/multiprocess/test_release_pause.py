"""A release paused at any step past its TTL never removes the next holder's lock.

A child takes a TTL lock, then releases it with every system call of the release
counted; at step ``k`` it stops itself (SIGSTOP) before making the call. While it is
stopped, its lease expires and a waiter (this process) tries to break the lock and take
it. Then the child is resumed and finishes its release, and a third process tries to
get in while the waiter still holds the lock. Whatever the step: 0 double holders, and
a waiter that got the lock still holds it.

The pause is forced at each step, not hoped for: the wrapper counts the calls of the
release (``os.open``, ``os.unlink``...) made by the child's main thread.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

import lockkit
from tests.helpers.paused import reap_stopped

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

TTL = 1.2  # longer than the 1 s margin within which the old release took the breaker

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, threading
    import lockkit

    name, backend, ttl, step = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    main = threading.get_ident()
    state = {"armed": False, "count": 0}
    CALLS = ("open", "read", "write", "pread", "pwrite", "fstat", "lstat", "stat",
             "unlink", "close", "ftruncate", "link", "rename")

    def wrap(call):
        def paused(*args, **kwargs):
            if state["armed"] and threading.get_ident() == main:
                index = state["count"]
                state["count"] += 1
                if index == step:
                    print(f"paused before os.{call.__name__}", flush=True)
                    os.kill(os.getpid(), signal.SIGSTOP)
            return call(*args, **kwargs)
        return paused

    for call in CALLS:
        setattr(os, call, wrap(getattr(os, call)))
    lock = lockkit.Lock(name, backend=backend, ttl=ttl)
    lock.acquire(timeout=10)
    print("held", flush=True)
    state["armed"] = True
    lock.release()
    state["armed"] = False
    print(json.dumps({"steps": state["count"]}), flush=True)
    """
)

THIRD = textwrap.dedent(
    """
    import sys
    import lockkit

    lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2])
    try:
        lock.acquire(timeout=0)
    except lockkit.LockTimeout:
        print("kept-out", flush=True)
    else:
        print("got-in", flush=True)
        lock.release()
    """
)


def _child(path: pathlib.Path, backend: str, step: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", CHILD, str(path), backend, str(TTL), str(step)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _third_gets_in(path: pathlib.Path, backend: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", THIRD, str(path), backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip() == "got-in"


def _count_steps(path: pathlib.Path, backend: str) -> int:
    child = _child(path, backend, -1)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return int(json.loads(out.splitlines()[-1])["steps"])


def _run_step(path: pathlib.Path, backend: str, step: int) -> dict[str, object]:
    """Pause the child's release before call ``step``; what happened next."""
    child = _child(path, backend, step)
    waiter = lockkit.Lock(path, backend=backend, ttl=30)
    got = False
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        where = child.stdout.readline().strip()
        assert where.startswith("paused"), where
        _, status = os.waitpid(child.pid, os.WUNTRACED)  # the event: it has stopped
        assert os.WIFSTOPPED(status)
        # The child's lease runs out while it is stopped; the waiter breaks it if it can.
        try:
            waiter.acquire(timeout=TTL + 1.5)
            got = True
        except lockkit.LockTimeout:
            got = False  # the paused child holds the breaker: nobody may break
        os.kill(child.pid, signal.SIGCONT)
        assert json.loads(child.stdout.readline())["steps"] > step
        assert child.wait(timeout=60) == 0
        double = got and (not waiter.is_held() or _third_gets_in(path, backend))
        return {"step": step, "where": where, "waiter_got_it": got, "double_holder": double}
    finally:
        reap_stopped(child)
        if got and waiter.is_held():
            waiter.release()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_release_paused_at_any_step_leaves_the_next_holder_alone(
    tmp_path: pathlib.Path, backend: str
) -> None:
    path = tmp_path / "paused.lock"
    steps = _count_steps(path, backend)
    assert steps > 3  # the release does make calls: the wrapper sees them
    results = [_run_step(path, backend, step) for step in range(steps)]
    doubles = [result for result in results if result["double_holder"]]
    assert doubles == [], json.dumps(results, indent=1)
    # Both outcomes occur: paused before taking the breaker, the waiter takes over (and
    # the release then leaves its lock alone); paused holding it, nobody breaks.
    assert {result["waiter_got_it"] for result in results} == {True, False}
