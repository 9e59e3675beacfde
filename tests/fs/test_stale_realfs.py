"""The stale-lock rules and TTL loss on exFAT and the link()-refusing FUSE mount.

The same scenarios as ``test_stale.py`` and ``test_ttl.py``, on filesystems where inode
numbers are not stable (exfat-fuse) and a file deleted while open lingers as
``.fuse_hidden*`` until closed.
"""

from __future__ import annotations

import os
import pathlib
import warnings

import pytest

from lockkit._stale import WRITE_GRACE
from lockkit.errors import LockkitWarning
from tests.fs.test_stale import (
    MALFORMED,
    assert_break_refuses_a_changed_lock,
    assert_reclaimed,
    assert_respected,
    dead_pid,
    me,
    plant,
)
from tests.helpers.paused import take_over_from_paused_holder

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
    assert_break_refuses_a_changed_lock(realfs_dir / "a.lock", backend)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_paused_holder_loses_lock(realfs_dir: pathlib.Path, backend: str) -> None:
    waiter, _ = take_over_from_paused_holder(str(realfs_dir / "ttl.lock"), backend)
    waiter.release()
