"""Helpers to run real contending processes and always reap them."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import lockkit

ROOT = pathlib.Path(__file__).parents[2]


class HolderServer:
    """Client of `holder_server`: ``hold(path, backend)`` returns a holder's pid."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.pids: list[int] = []

    def hold(self, path: os.PathLike[str] | str, backend: str) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"path": str(path), "backend": backend}) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        pid = int(reply["pid"])
        self.pids.append(pid)
        return pid


@contextlib.contextmanager
def holder_server() -> Iterator[HolderServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.holder_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    server = HolderServer(process)
    try:
        yield server
    finally:
        for pid in server.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert process.stdin is not None
        process.stdin.close()
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def free_now(name: str | os.PathLike[str], backend: str) -> bool:
    """Whether the lock can be taken right now, by a new lock object (then let go)."""
    lock = lockkit.Lock(name, backend=backend)
    try:
        lock.acquire(timeout=0)
    except lockkit.LockTimeout:
        return False
    lock.release()
    return True
