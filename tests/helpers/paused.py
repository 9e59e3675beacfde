"""The paused-holder scenario shared by the TTL tests of every backend and filesystem.

A child process takes a TTL lock and reports; the test pauses it with SIGSTOP, takes the
lock itself once the child's TTL has run out, resumes the child, and checks what the
child saw: ``on_lost`` fired once, ``is_held()`` is false, and its ``release()`` went
through without touching the new holder's lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import lockkit

HOLDER = textwrap.dedent(
    """
    import json, sys, threading
    import lockkit

    lost = threading.Event()
    calls = []

    def on_lost(lock):
        calls.append(lock.name)
        lost.set()

    lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2], ttl=float(sys.argv[3]), on_lost=on_lost)
    lock.acquire(timeout=10)
    print("held", flush=True)
    fired = lost.wait(60)
    print(json.dumps({"on_lost": fired, "calls": calls, "is_held": lock.is_held()}), flush=True)
    lock.release()
    print("released", flush=True)
    """
)


def take_over_from_paused_holder(
    name: str, backend: str, *, expected_name: str | None = None
) -> tuple[lockkit.Lock, lockkit.LockInfo | None]:
    """Run the scenario; return the new holder (still held) and the old holder's info.

    The caller releases the returned lock. ``expected_name`` is the lock's canonical
    name as the child's ``on_lost`` sees it (defaults to ``name``).
    """
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", HOLDER, name, backend, "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        before = lockkit.Lock(name, backend=backend).inspect()
        os.kill(child.pid, signal.SIGSTOP)
        waiter = lockkit.Lock(name, backend=backend, ttl=30)
        waiter.acquire(timeout=15)  # succeeds once the paused holder's ttl has run out
        os.kill(child.pid, signal.SIGCONT)
        report = json.loads(child.stdout.readline())
        assert report == {"on_lost": True, "calls": [expected_name or name], "is_held": False}
        assert child.stdout.readline().strip() == "released"
        assert child.wait(timeout=30) == 0
        # The old holder's release left the new holder's lock intact.
        assert waiter.is_held()
        info = waiter.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        return waiter, before
    finally:
        reap_stopped(child)


def reap_stopped(child: subprocess.Popen[str]) -> None:
    """Kill and reap ``child`` even if it is stopped, and close its output."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGCONT)
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()
