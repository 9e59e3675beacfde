"""16 processes race to break one planted stale lock, 500 times: one winner per trial.

Each trial: a barrier action plants a lock file whose holder is dead; all processes
make one non-blocking attempt at once. Winners append "enter"/"exit" records with
O_APPEND to a shared log before releasing. The log must show exactly one winner per
trial and never two holders at the same time. The traps this guards against: an inode
number reused by a fresh lock (ext4), and a lock that vanished while being checked
(free, not stale: never unlink on that path).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import pathlib
import subprocess
from multiprocessing.synchronize import Barrier

import pytest

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

PROCESSES = 16
TRIALS = 500


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plant_stale_lock(path: str, dead_pid: int) -> None:
    """Barrier action: write a lock whose holder is dead (and whose start time is wrong)."""
    payload = json.dumps({"pid": dead_pid, "startTime": 1, "token": "stale", "host": ""})
    temp = path + ".plant"
    with open(temp, "w") as handle:
        handle.write(payload)
    os.replace(temp, path)


def racer(  # noqa: PLR0917 - multiprocessing passes args positionally
    path: str, log_path: str, backend: str, trials: int, start: Barrier, done: Barrier
) -> None:
    import lockkit

    lock = lockkit.Lock(path, backend=backend)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    me = os.getpid()
    for trial in range(trials):
        start.wait(timeout=60)
        won = False
        try:
            lock.acquire(blocking=False)
        except lockkit.LockTimeout:
            pass
        else:
            won = True
            os.write(log, f"{trial} enter {me}\n".encode())
        done.wait(timeout=60)
        if won:
            os.write(log, f"{trial} exit {me}\n".encode())
            lock.release()
    os.close(log)


def race(
    directory: pathlib.Path,
    backend: str,
    trials: int,
    *,
    clients: tuple[pathlib.Path, ...] = (),
    processes: int = PROCESSES,
) -> None:
    """Run the race in ``directory``, or through ``clients`` (one share, several mounts).

    With clients, the processes are dealt round-robin over them, the stale lock is
    planted through the first, and the log stays in ``directory`` (local disk).
    """
    ctx = multiprocessing.get_context("spawn")
    paths = [str(client / "race.lock") for client in clients or (directory,)]
    log_path = str(directory / "race.log")
    pathlib.Path(log_path).touch()
    plant = functools.partial(plant_stale_lock, paths[0], _dead_pid())
    start = ctx.Barrier(processes, action=plant)
    done = ctx.Barrier(processes)
    children = [
        ctx.Process(
            target=racer,
            args=(paths[index % len(paths)], log_path, backend, trials, start, done),
        )
        for index in range(processes)
    ]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=900)
        assert [child.exitcode for child in children] == [0] * processes
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()

    records = pathlib.Path(log_path).read_text().splitlines()
    holder: str | None = None
    winners: dict[int, int] = {}
    for record in records:
        trial, event, pid = record.split()
        if event == "enter":
            assert holder is None, f"two holders at once: {holder} and {pid} (trial {trial})"
            holder = pid
            winners[int(trial)] = winners.get(int(trial), 0) + 1
        else:
            assert holder == pid, f"exit by {pid} while {holder} held the lock"
            holder = None
    assert holder is None
    assert winners == dict.fromkeys(range(trials), 1)
    # Nothing is left behind but the log: no breaker files, no temp files.
    assert sorted(os.listdir(directory)) == ["race.log"]


@pytest.mark.fs
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_stale_break_race_has_one_winner(local_dir: pathlib.Path, backend: str) -> None:
    race(local_dir, backend, TRIALS)


@pytest.mark.realfs
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_stale_break_race_without_hard_links(realfs_dir: pathlib.Path, backend: str) -> None:
    race(realfs_dir, backend, TRIALS)
