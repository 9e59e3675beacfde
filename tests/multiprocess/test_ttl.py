"""TTL locks: renewal keeps a live holder's lock; a paused holder loses it, safely."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import lockkit

pytestmark = [pytest.mark.multiprocess]

TTL_BACKENDS = ["excl", "hardlink"]

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


@pytest.mark.parametrize("backend", TTL_BACKENDS)
def test_paused_holder_loses_lock_and_leaves_new_holder_alone(
    tmp_path: pathlib.Path, backend: str
) -> None:
    path = tmp_path / "ttl.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), backend, "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        os.kill(child.pid, signal.SIGSTOP)
        waiter = lockkit.Lock(path, backend=backend, ttl=30)
        waiter.acquire(timeout=15)  # succeeds once the paused holder's ttl has run out
        os.kill(child.pid, signal.SIGCONT)
        report = json.loads(child.stdout.readline())
        assert report == {"on_lost": True, "calls": [str(path)], "is_held": False}
        assert child.stdout.readline().strip() == "released"
        assert child.wait(timeout=30) == 0
        # The old holder's release left the new holder's lock intact.
        assert waiter.is_held()
        info = waiter.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        waiter.release()
        assert not path.exists()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize("backend", TTL_BACKENDS)
def test_renewal_keeps_a_live_holder(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "renewed.lock"
    holder = lockkit.Lock(path, backend=backend, ttl=0.3)
    holder.acquire()
    first = holder.inspect()
    assert first is not None
    assert first.expires is not None
    with pytest.raises(lockkit.LockTimeout):
        # Five ttl periods: without renewal this waiter would break the lock.
        lockkit.Lock(path, backend=backend).acquire(timeout=1.5)
    later = holder.inspect()
    assert later is not None
    assert later.expires is not None
    assert later.expires > first.expires
    assert holder.is_held()
    holder.release()


def test_is_held_detects_a_broken_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.lock"
    fired = threading.Event()
    lock = lockkit.Lock(path, on_lost=lambda _lock: fired.set())
    lock.acquire()
    path.unlink()  # e.g. `lockkit break --force` by an operator
    other = lockkit.Lock(path)
    other.acquire()
    assert not lock.is_held()
    assert fired.is_set()
    lock.release()  # must not remove the other holder's lock
    assert other.is_held()
    other.release()


def test_ttl_must_be_positive(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="ttl must be a positive"):
        lockkit.Lock(tmp_path / "x.lock", ttl=0)
