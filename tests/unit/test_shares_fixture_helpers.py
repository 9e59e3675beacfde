"""The process and socket helpers behind the share fixtures, without root or servers.

The share fixtures must stop every process their daemons start, whatever
signal dispositions pytest inherited, and must notice a port that a second
server silently shares (smbd's SO_REUSEPORT).
"""

from __future__ import annotations

import signal
import socket
import sys
import textwrap
from pathlib import Path

from tests.shares import (
    _spawn,
    _stop_tree,
    _Tracked,
    _tracked_tree,
    _wait_for_listener,
    _wait_until,
)

SHOW_SIGNALS = textwrap.dedent(
    """
    import signal
    print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    """
)

LISTEN = textwrap.dedent(
    """
    import socket, sys, time
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen()
    time.sleep(300)
    """
)


def _free_reusable_port() -> int:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_spawned_processes_start_with_default_signals(tmp_path: Path) -> None:
    # As under nohup, or a runner that ignores SIGTERM: exec keeps both.
    log = tmp_path / "child.log"
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        process = _spawn([sys.executable, "-c", SHOW_SIGNALS], log)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGTERM, previous)
    assert process.wait(timeout=30) == 0
    assert log.read_text().split("\n")[:2] == ["True", "[]"]


def test_stop_tree_stops_what_the_leader_left_running(tmp_path: Path) -> None:
    log = tmp_path / "sh.log"
    # One follower in the leader's session, one in a session of its own
    # (as sshd's per-connection processes are); neither exits with the leader.
    script = "sleep 300 & setsid sleep 301 & echo started; exec sleep 302"
    process = _spawn(["sh", "-c", script], log)
    assert _wait_until(lambda: "started" in log.read_text(), 30)
    known: dict[int, _Tracked] = {}
    _tracked_tree(process.pid, known, running=True)
    followers = list(known.values())
    try:
        assert len(followers) == 2
        problems: list[str] = []
        assert _stop_tree(process, "sh", problems, follow_timeout=0.2)
        assert process.returncode == -signal.SIGTERM
        assert not any(follower.alive() for follower in followers)
        assert len(problems) == 1
        assert "sh left 2 processes running" in problems[0]
    finally:
        for follower in followers:
            follower.signal(signal.SIGKILL)
            follower.close()


def test_wait_for_listener_notices_a_shared_port(tmp_path: Path) -> None:
    port = _free_reusable_port()
    process = _spawn([sys.executable, "-c", LISTEN, str(port)], tmp_path / "listen.log")
    try:
        assert _wait_for_listener(process, "127.0.0.1", port, timeout=30) == "ready"
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.bind(("127.0.0.1", port))  # no error: that is the trap
            intruder.listen()
            assert _wait_for_listener(process, "127.0.0.1", port, timeout=30) == "shared"
    finally:
        _stop_tree(process, "listener", [])


def test_wait_for_listener_notices_an_exit(tmp_path: Path) -> None:
    process = _spawn(["true"], tmp_path / "true.log")
    assert _wait_for_listener(process, "127.0.0.1", 9, timeout=30) == "exited"
