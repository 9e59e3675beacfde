"""Another host on the other end of a share, simulated with its own UTS and pid namespaces.

``unshare --uts --pid --fork --mount-proc`` gives a process another hostname and its own
pids, so its lock file names a holder this side cannot check: only the TTL in the lock
file tells whether that holder is alive. One side locks through mount A, the other
through mount B of the same share, in both directions:

* a live holder that renews its TTL is never taken over (5 s of trying);
* a holder killed with SIGKILL is recovered within its TTL plus 2 s.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lockkit
from tests.mounts import skip_or_fail
from tests.shares import ShareDir

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

TTL = 3.0
TRYING = 5.0
OTHER_HOST = "lockkit-other-host"

# Holds the lock (with a TTL, so it renews) until stdin closes; says who it is first.
HOLDER = """
import socket, sys, lockkit
lock = lockkit.Lock(sys.argv[1], backend="excl", ttl=float(sys.argv[2]))
lock.acquire(timeout=30)
print("held", socket.gethostname(), flush=True)
sys.stdin.read()
"""

# Tries for a while (must time out), then on "go" acquires and reports how long it took.
CONTENDER = """
import socket, sys, time, lockkit
lock = lockkit.Lock(sys.argv[1], backend="excl", ttl=float(sys.argv[2]))
start = time.monotonic()
try:
    lock.acquire(timeout=float(sys.argv[3]))
except lockkit.LockTimeout as exc:
    print("timeout", round(time.monotonic() - start, 3), exc.holder.owner.host, flush=True)
else:
    print("took-over", flush=True)
    sys.exit(1)
assert sys.stdin.readline() == "go\\n"
start = time.monotonic()
lock.acquire(timeout=30)
print("acquired", round(time.monotonic() - start, 3), socket.gethostname(), flush=True)
lock.release()
"""


def _other_host(argv: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        skip_or_fail("unshare not found (install util-linux)")
    # --kill-child: SIGKILL to the unshare process reaches the program in the namespace.
    return [
        unshare,
        "--uts",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sh",
        "-c",
        f'hostname {OTHER_HOST} && exec "$@"',
        "sh",
        *argv,
    ]


@contextlib.contextmanager
def _started(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def _line(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    return process.stdout.readline().split()


@pytest.mark.parametrize("holder_side", ["namespace", "root"])
def test_other_host_holder_is_respected_while_alive_and_recovered_after_death(
    share: ShareDir, holder_side: str
) -> None:
    if subprocess.run(["unshare", "--uts", "true"], check=False).returncode != 0:
        skip_or_fail("unshare --uts is not permitted here (needs root)")
    holder_path = share.a / "h.lock"
    contender_path = share.b / "h.lock"
    holder_argv = [sys.executable, "-c", HOLDER, str(holder_path), str(TTL)]
    contender_argv = [
        sys.executable,
        "-c",
        CONTENDER,
        str(contender_path),
        str(TTL),
        str(TRYING),
    ]
    if holder_side == "namespace":
        holder_argv = _other_host(holder_argv)
    else:
        contender_argv = _other_host(contender_argv)
    with _started(holder_argv) as holder:
        said = _line(holder)
        assert said[0] == "held"
        assert (said[1] == OTHER_HOST) == (holder_side == "namespace")
        with _started(contender_argv) as contender:
            verdict = _line(contender)
            # Five seconds of trying, past more than one TTL: the renewals kept it alive.
            assert verdict[0] == "timeout", verdict
            assert float(verdict[1]) >= TRYING
            assert (verdict[2] == OTHER_HOST) == (holder_side == "namespace")
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            assert contender.stdin is not None
            contender.stdin.write("go\n")
            contender.stdin.flush()
            done = _line(contender)
            assert done[0] == "acquired", done
            assert float(done[1]) < TTL + 2.0
            assert contender.wait(timeout=30) == 0
    assert sorted(p.name for p in share.server.iterdir()) == []


def test_a_cross_host_lock_without_ttl_is_never_broken_and_status_says_why(
    share: ShareDir,
) -> None:
    with _started(
        _other_host(
            [
                sys.executable,
                "-c",
                HOLDER.replace("ttl=float(sys.argv[2])", "ttl=None"),
                str(share.a / "n.lock"),
                "0",
            ]
        )
    ) as holder:
        assert _line(holder)[0] == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        lock = lockkit.Lock(share.b / "n.lock", backend="excl")
        start = time.monotonic()
        with pytest.raises(lockkit.LockTimeout):
            lock.acquire(timeout=1.0)
        assert time.monotonic() - start >= 1.0
        status = subprocess.run(
            [sys.executable, "-m", "lockkit", "status", str(share.b / "n.lock")],
            capture_output=True,
            text=True,
            check=False,
        )
        # Rule 8: a holder whose pid cannot be checked from here, and no expiry.
        assert "held from another machine" in status.stdout, status.stdout
        assert "without an expiry: never" in status.stdout, status.stdout
        assert (share.server / "n.lock").exists()
        (share.server / "n.lock").unlink()
