"""8 processes x 300 locked increments: zero lost updates on every filesystem we support.

The counter update is a deliberately racy read-modify-write; only the lock keeps the
final count exact. On exFAT (link() -> EPERM) and the FUSE mount whose link() answers
ENOTSUP, the hardlink backend must fall back to O_EXCL and say so exactly once per
process.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from lockkit._stress import run_increments

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

BACKENDS = ["hardlink", "excl", "filelock"]
PROCESSES = 8
INCREMENTS = 300


def _leftovers(directory: pathlib.Path) -> list[str]:
    # A filelock lock file legitimately stays; nothing else may.
    return sorted(name for name in os.listdir(directory) if name != "lockkit-stress.lock")


@pytest.mark.fs
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_lost_updates_locally(local_dir: pathlib.Path, backend: str) -> None:
    result = run_increments(
        str(local_dir), backend, processes=PROCESSES, increments=INCREMENTS, timeout=240
    )
    assert result.errors == ()
    assert result.final == PROCESSES * INCREMENTS
    assert result.lost == 0
    # link() works here: no fallback warnings at all.
    assert result.warnings == ((),) * PROCESSES
    assert _leftovers(local_dir) == []


@pytest.mark.realfs
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_lost_updates_without_hard_links(realfs_dir: pathlib.Path, backend: str) -> None:
    result = run_increments(
        str(realfs_dir), backend, processes=PROCESSES, increments=INCREMENTS, timeout=600
    )
    assert result.errors == ()
    assert result.final == PROCESSES * INCREMENTS
    assert result.lost == 0
    if backend == "hardlink":
        # Exactly one fallback report per process, naming the errno.
        assert len(result.warnings) == PROCESSES
        for seen in result.warnings:
            assert len(seen) == 1
            assert "falls back to O_CREAT|O_EXCL" in seen[0]
            assert "EPERM" in seen[0] or "EOPNOTSUPP" in seen[0] or "ENOTSUP" in seen[0]
    else:
        assert result.warnings == ((),) * PROCESSES
    assert _leftovers(realfs_dir) == []
