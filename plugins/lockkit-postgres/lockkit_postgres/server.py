"""Throw-away PostgreSQL servers on free loopback ports, for tests and benchmarks.

`PostgresServer` runs Debian's (or any) ``initdb`` and ``postgres`` binaries in a
temporary directory: one cluster, trust authentication on 127.0.0.1 only, no Unix
socket, nothing kept after `PostgresServer.remove`. Run as root, the server runs as
the ``postgres`` user (PostgreSQL refuses to run as root), through ``setpriv``, which
also sets the parent-death signal: if the process that started it is killed outright,
the kernel shuts the server down (immediate mode) instead of leaking it.

The server is a direct child of this process (not daemonized by ``pg_ctl``), so
`PostgresServer.kill`, `PostgresServer.pause` and `PostgresServer.resume` reach it and
its backends directly: the fault-injection tests crash, restart and freeze it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PostgresServer", "find_bindir", "running"]

_START_TIMEOUT = 60.0
_SERVER_USER = "postgres"


def find_bindir() -> pathlib.Path | None:
    """The directory holding ``initdb`` and ``postgres``: PATH, then Debian's layout."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return pathlib.Path(on_path).resolve().parent
    # Debian and Ubuntu install the binaries per major version, off PATH.
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = pathlib.Path(candidate)
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, restartable on its port.

    Attributes:
        bindir: Where ``initdb`` and ``postgres`` live (`find_bindir`).
        directory: The temporary directory (``data/`` and ``server.log``).
        port: The loopback port, chosen free at construction and kept across restarts.
        process: The running postmaster, if any.
    """

    def __init__(self, bindir: pathlib.Path) -> None:
        """Create the cluster (``initdb``); nothing is started yet."""
        self.bindir = bindir
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-pg-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            user = pwd.getpwnam(_SERVER_USER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
            ]
        try:
            subprocess.run(  # noqa: S603 - our own arguments
                [
                    *self._as_user,
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(self.data),
                    "--username=postgres",
                    "--auth=trust",
                    "--no-sync",
                    "--no-instructions",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            self.remove()
            output = (exc.stdout + exc.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"initdb failed:\n{output}") from None

    @property
    def data(self) -> pathlib.Path:
        """The data directory."""
        return self.directory / "data"

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and return once it accepts connections.

        Raises:
            RuntimeError: It exited at start (the end of its log is in the message), or
                did not accept connections within 60 s.
        """
        args = [
            *self._as_user,
            *(["--pdeathsig=QUIT"] if self._as_user else []),
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            # Loopback TCP only: no Unix socket to place or clean up.
            *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
            # A test server: small, and durable only as far as the OS cache.
            *("-c", "shared_buffers=16MB", "-c", "max_connections=200", "-c", "fsync=off"),
            *("-c", "full_page_writes=off", "-c", "logging_collector=off"),
        ]
        log = (self.directory / "server.log").open("ab")
        with log:
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_ready(self.process)

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        # pg_isready asks the postmaster; it gives no other signal that it is ready.
        deadline = time.monotonic() + _START_TIMEOUT
        isready = str(self.bindir / "pg_isready")
        while time.monotonic() < deadline:
            if process.poll() is not None:
                text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited at start:\n{text}")
            answer = subprocess.run(  # noqa: S603 - our own arguments
                [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                check=False,
                timeout=30,
            )
            if answer.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {_START_TIMEOUT:.0f} s")

    def pids(self) -> list[int]:
        """The postmaster and every backend and auxiliary process it forked."""
        if self.process is None:
            return []
        found = [self.process.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
                if ppid == self.process.pid:
                    found.append(int(entry))
        return found

    def pause(self) -> None:
        """Freeze the whole server (SIGSTOP to every process): it answers nothing."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self, mode: str = "fast") -> None:
        """Shut down: ``fast`` (SIGINT, clients disconnected) or ``immediate`` (SIGQUIT)."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        self.resume()  # a paused server cannot shut down
        process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL to every process), as a crash would."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        self.process = None
        # A crashed postmaster leaves postmaster.pid; the next start recovers from WAL.

    def restart(self, mode: str = "fast") -> None:
        """`stop` then `start` on the same port and data."""
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running(bindir: pathlib.Path | None = None) -> Iterator[PostgresServer]:
    """A started server, removed (stopped, its directory deleted) on exit.

    Raises:
        RuntimeError: No PostgreSQL binaries were found, or the server did not start.
    """
    found = bindir or find_bindir()
    if found is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, postgres) found")
    server = PostgresServer(found)
    try:
        server.start()
        yield server
    finally:
        server.remove()
