"""The stale-lock rules and TTL loss on exFAT and the link()-refusing FUSE mount.

The same scenarios as ``test_stale.py`` and ``test_ttl.py``, on filesystems where inode
numbers are not stable (exfat-fuse) and a file deleted while open lingers as
``.fuse_hidden*`` until closed.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import warnings

import pytest

import lockkit
from lockkit._stale import WRITE_GRACE, judge
from lockkit.errors import LockkitWarning
from tests.fs.test_stale import MALFORMED, assert_reclaimed, assert_respected, dead_pid, me, plant
from tests.multiprocess.test_ttl import HOLDER

pytestmark = [pytest.mark.realfs, pytest.mark.multiprocess]

FILE_BACKENDS = ["excl", "hardlink"]


@pytest.fixture(autouse=True)
def _fallback_warnings_expected() -> None:
    # hardlink reports its fallback to O_EXCL once per device here; that is tested
    # elsewhere, and is not what these tests are about.
    warnings.filterwarnings("ignore", category=LockkitWarning)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_dead_holder_reclaimed_live_respected(realfs_dir: pathlib.Path, backend: str) -> None:
    path = realfs_dir / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    assert_reclaimed(path, backend)
    plant(path, {"pid": os.getppid(), **me(), "token": "t"})
    assert_respected(path, backend, reason="is running")
    path.unlink()


@pytest.mark.parametrize("backend", FILE_BACKENDS)
@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lock_grace(realfs_dir: pathlib.Path, backend: str, content: str) -> None:
    path = realfs_dir / "bad.lock"
    plant(path, content)
    assert_respected(path, backend, reason="write in progress")
    plant(path, content, age=WRITE_GRACE + 1)
    assert_reclaimed(path, backend)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_break_refuses_a_lock_that_changed(realfs_dir: pathlib.Path, backend: str) -> None:
    path = realfs_dir / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "old"})
    lock = lockkit.Lock(path, backend=backend)
    stale = lock.inspect()
    assert stale is not None
    assert judge(stale).stale
    path.unlink()
    fresh = lockkit.Lock(path, backend=backend)
    fresh.acquire()
    assert not lock.backend.break_lock(lock.name, stale)
    assert fresh.is_held()
    fresh.release()


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_paused_holder_loses_lock(realfs_dir: pathlib.Path, backend: str) -> None:
    path = realfs_dir / "ttl.lock"
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", HOLDER, str(path), backend, "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        os.kill(child.pid, signal.SIGSTOP)
        waiter = lockkit.Lock(path, backend=backend, ttl=30)
        waiter.acquire(timeout=15)
        os.kill(child.pid, signal.SIGCONT)
        report = json.loads(child.stdout.readline())
        assert report == {"on_lost": True, "calls": [str(path)], "is_held": False}
        assert child.stdout.readline().strip() == "released"
        assert child.wait(timeout=30) == 0
        assert waiter.is_held()
        waiter.release()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
