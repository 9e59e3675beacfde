"""A single-threaded fork server that makes lock holders on request.

Tests kill lock holders with SIGKILL hundreds of times. Spawning a fresh interpreter for
each costs ~150 ms here; forking from this small, thread-free server costs ~2 ms and is
safe (pytest itself may run threads, and fork in a threaded process is not).

Protocol (one JSON object per line on stdin/stdout):
``{"path": ..., "backend": ...}`` -> ``{"pid": N}`` once child N holds the lock, or
``{"error": "..."}``. The child then blocks until it is killed. SIGCHLD is ignored, so
killed children are reaped by the kernel and never linger as zombies.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _hold(path: str, backend: str, ready_fd: int) -> None:
    from lockkit import Lock

    lock = Lock(path, backend=backend, timeout=30)
    lock.acquire()
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    signal.pause()  # until SIGKILL


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Warm imports and the registry once, before forking: each child would otherwise
    # scan entry points again.
    from lockkit._registry import get_registry

    for name in ("excl", "hardlink", "filelock"):
        get_registry().backend(name)

    for line in sys.stdin:
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            try:
                _hold(request["path"], request["backend"], write_fd)
            finally:
                os._exit(1)
        os.close(write_fd)
        ok = os.read(read_fd, 1)
        os.close(read_fd)
        reply = {"pid": pid} if ok == b"1" else {"error": f"holder {pid} failed to lock"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
