"""Paused writers and forked holders, with real processes (findings 2, 3 and 6).

- An ``excl`` holder paused between creating its lock file and writing its payload,
  past the write grace, has its empty file broken and taken; on resuming it must not
  report the lock as its own.
- A lock with a TTL that appears already expired (its process paused between computing
  the expiry and creating the lock file) is renewed before ``acquire()`` returns.
- A ``filelock`` holder that forks and then dies leaves the lock free, even while the
  child lives.

Pauses are real ``SIGSTOP``s the process sends itself at the exact step; the test waits
for the stop with ``waitpid(WUNTRACED)``, an event, not a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import lockkit
from lockkit._stale import WRITE_GRACE
from tests.helpers.paused import reap_stopped

pytestmark = [pytest.mark.fs, pytest.mark.multiprocess, pytest.mark.timeout(60)]


def _wait_stopped(child: subprocess.Popen[str]) -> None:
    """Block until ``child`` has stopped itself (SIGSTOP), without reaping it."""
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status


@contextlib.contextmanager
def _child(code: str, *argv: str) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(code), *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        reap_stopped(child)


# -- finding 2: a writer paused between O_EXCL create and its payload -------------------

PAUSED_WRITER = """
    import os, signal, sys
    import lockkit
    import lockkit.backends._lockfile as F

    real = F.write_all

    def paused(fd, data):
        if b'"breaker"' not in data:
            os.kill(os.getpid(), signal.SIGSTOP)  # right after the O_EXCL create
        return real(fd, data)

    F.write_all = paused
    lock = lockkit.Lock(sys.argv[1], backend="excl")
    try:
        lock.acquire(timeout=float(sys.argv[2]))
    except lockkit.LockTimeout:
        print("busy", flush=True)
    else:
        print("acquired", flush=True)
        lock.release()
"""


def test_a_writer_paused_past_the_write_grace_does_not_become_a_second_holder(
    tmp_path: pathlib.Path,
) -> None:
    """Before: the paused process's acquire succeeded on a lock another process held."""
    path = tmp_path / "job.lock"
    with _child(PAUSED_WRITER, str(path), "0.5") as child:
        _wait_stopped(child)
        assert path.read_bytes() == b""
        # The pause lasted past the write grace: the file's age says so.
        past = time.time() - WRITE_GRACE - 5
        os.utime(path, (past, past))
        taker = lockkit.Lock(path, backend="excl")
        taker.acquire(timeout=0)  # breaks the "malformed" empty file, takes the lock
        try:
            os.kill(child.pid, signal.SIGCONT)
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "busy"
            assert child.wait(timeout=30) == 0
            assert taker.is_held()
            info = taker.inspect()
            assert info is not None
            assert info.owner is not None
            assert info.owner.pid == os.getpid()
        finally:
            taker.release()
    assert os.listdir(tmp_path) == []


# -- finding 6: a TTL lock that arrives expired ----------------------------------------

EXPIRED_ON_ARRIVAL = """
    import os, signal, sys
    import lockkit
    import lockkit.backends._lease as E
    import lockkit.backends._lockfile as F
    import lockkit.backends.hardlink as H

    path, backend = sys.argv[1], sys.argv[2]
    real_link, real_create = os.link, F.create_held

    def link(source, target):
        if target == path:
            os.kill(os.getpid(), signal.SIGSTOP)  # the expiry is computed: pause
        return real_link(source, target)

    def create(name, payload):
        if name == path:
            os.kill(os.getpid(), signal.SIGSTOP)
        return real_create(name, payload)

    os.link = link
    E.create_held = create
    H.create_held = create
    lock = lockkit.Lock(path, backend=backend, ttl=float(sys.argv[3]))
    lock.acquire(timeout=0)
    print("held", flush=True)
    sys.stdin.readline()
    print(lock.is_held(), flush=True)
    lock.release()
"""


@pytest.mark.parametrize("backend", ["hardlink", "excl"])
def test_a_ttl_lock_that_arrives_expired_is_renewed_before_it_is_returned(
    tmp_path: pathlib.Path, backend: str
) -> None:
    """Before: acquire() returned an expired lease; a waiter broke it at once."""
    path = tmp_path / "x.lock"
    ttl = 1.0
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(EXPIRED_ON_ARRIVAL),
         str(path), backend, str(ttl)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_stopped(child)
        time.sleep(ttl * 1.5)  # not a synchronisation: the pause must outlast the TTL
        os.kill(child.pid, signal.SIGCONT)
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "held"
        info = lockkit.Lock(path, backend=backend).inspect()
        assert info is not None
        assert info.owner is not None
        assert info.expires is not None
        assert info.expires.timestamp() > time.time() + ttl / 4  # renewed on arrival
        with pytest.raises(lockkit.LockTimeout):
            lockkit.Lock(path, backend=backend).acquire(timeout=0)  # not broken
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "True"
        assert child.wait(timeout=30) == 0
    finally:
        reap_stopped(child)
        if child.stdin is not None:
            child.stdin.close()
    assert os.listdir(tmp_path) == []


# -- finding 3: a filelock holder forks, then dies -------------------------------------

FORKING_HOLDER = """
    import os, sys, time
    import lockkit

    lock = lockkit.Lock(sys.argv[1], backend="filelock")
    lock.acquire()
    child = os.fork()
    if child == 0:
        time.sleep(120)  # unrelated work; killed by the test
        os._exit(0)
    print(child, flush=True)
    time.sleep(120)  # holds the lock until killed
"""


def test_a_filelock_holder_that_forked_and_died_leaves_the_lock_free(
    tmp_path: pathlib.Path,
) -> None:
    """Before: the child's inherited descriptor kept the flock until the child ended."""
    path = tmp_path / "x.lock"
    grandchild = 0
    with _child(FORKING_HOLDER, str(path)) as holder:
        try:
            assert holder.stdout is not None
            grandchild = int(holder.stdout.readline())
            # The parent still holds its lock while it lives.
            with pytest.raises(lockkit.LockTimeout):
                lockkit.Lock(path, backend="filelock").acquire(timeout=0.2)
            holder.kill()
            holder.wait(timeout=30)
            assert _alive(grandchild)
            with lockkit.Lock(path, backend="filelock", timeout=5):
                payload = json.loads(path.read_text())
                assert payload["pid"] == os.getpid()
        finally:
            if grandchild:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(grandchild, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
