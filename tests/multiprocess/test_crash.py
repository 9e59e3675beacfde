"""Crash recovery with real processes: kill -9 a holder, and the next acquirer proceeds.

For excl and hardlink the stale rules break the dead holder's file; for filelock the
kernel frees the lock when the holder dies. Either way the next acquirer must get the
lock within 1 s (the acquire timeout; a miss raises LockTimeout and fails the test).
"""

from __future__ import annotations

import os
import pathlib
import signal

import pytest

import lockkit
from tests.helpers.processes import holder_server

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

BACKENDS = ["hardlink", "excl", "filelock"]


def _kill_and_take_over(directory: pathlib.Path, backend: str, repetitions: int) -> None:
    path = directory / "crash.lock"
    lock = lockkit.Lock(path, backend=backend)
    with holder_server() as server:
        for _ in range(repetitions):
            pid = server.hold(path, backend)
            info = lock.inspect()
            assert info is not None
            assert info.owner is not None
            assert info.owner.pid == pid
            os.kill(pid, signal.SIGKILL)
            lock.acquire(timeout=1.0)  # LockTimeout here fails the test
            held = lock.inspect()
            assert held is not None
            assert held.owner is not None
            assert held.owner.pid == os.getpid()
            lock.release()
    leftovers = sorted(set(os.listdir(directory)) - {"crash.lock"})
    assert leftovers == []


@pytest.mark.fs
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_holder_is_taken_over_within_a_second(local_dir: pathlib.Path, backend: str) -> None:
    _kill_and_take_over(local_dir, backend, repetitions=200)


@pytest.mark.realfs
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_holder_taken_over_without_hard_links(
    realfs_dir: pathlib.Path, backend: str
) -> None:
    with pytest.warns(lockkit.errors.LockkitWarning) if backend == "hardlink" else _nothing():
        _kill_and_take_over(realfs_dir, backend, repetitions=200)


class _nothing:  # noqa: N801 - reads like a context manager helper
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
