"""Throw-away etcd servers on free loopback ports, for tests and benchmarks.

`EtcdServer` runs Debian's (or any) ``etcd`` binary in a temporary directory: one
member, its client and peer URLs on free 127.0.0.1 ports, nothing kept after
`EtcdServer.remove`. It is started through ``setpriv --pdeathsig=KILL`` where that
exists, so that if the process that started it is killed outright, the kernel kills the
server too instead of leaking it.

The server is a direct child of this process, so `EtcdServer.kill`,
`EtcdServer.pause` and `EtcdServer.resume` reach it directly: the fault-injection tests
crash, restart and freeze it. With ``tls=True`` it serves HTTPS with a certificate
from a throw-away CA (the ``trustme`` package); `EtcdServer.enable_auth` turns on
etcd's authentication with a ``root`` user.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["EtcdServer", "find_etcd", "running"]

_START_TIMEOUT = 60.0


def find_etcd() -> pathlib.Path | None:
    """The ``etcd`` binary on PATH (Debian: ``apt-get install etcd-server``), if any."""
    found = shutil.which("etcd")
    return pathlib.Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One etcd member in a temporary directory, restartable on its ports.

    Attributes:
        binary: The ``etcd`` executable.
        directory: The temporary directory (``data/``, ``server.log``, certificates).
        port: The client port (kept across restarts).
        peer_port: The peer port (kept across restarts).
        tls: Whether clients connect with HTTPS.
        ca_file: The CA certificate clients trust, with ``tls``.
        password: The ``root`` user's password once `enable_auth` ran.
        process: The running server, if any.
    """

    def __init__(self, binary: pathlib.Path, *, tls: bool = False) -> None:
        """Prepare a member (and its certificate with ``tls``); nothing is started yet."""
        self.binary = binary
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-etcd-"))
        self.port = _free_port()
        self.peer_port = _free_port()
        self.tls = tls
        self.ca_file: pathlib.Path | None = None
        self.password: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._cert: tuple[pathlib.Path, pathlib.Path] | None = None
        if tls:
            import trustme  # noqa: PLC0415 - only TLS servers need it

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            self.ca_file = self.directory / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
            cert_file, key_file = self.directory / "server.pem", self.directory / "server.key"
            cert.cert_chain_pems[0].write_to_path(str(cert_file))
            cert.private_key_pem.write_to_path(str(key_file))
            self._cert = (cert_file, key_file)

    @property
    def data(self) -> pathlib.Path:
        """The data directory."""
        return self.directory / "data"

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The lockkit URL: ``etcd://127.0.0.1:PORT`` (TLS: ``etcds://...?ca=...``)."""
        auth = f"root:{self.password}@" if self.password else ""
        if self.tls:
            return f"etcds://{auth}127.0.0.1:{self.port}?ca={self.ca_file}"
        return f"etcd://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the member and return once it answers.

        Raises:
            RuntimeError: It exited at start (the end of its log is in the message), or
                did not answer within 60 s.
        """
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            *(["setpriv", "--pdeathsig=KILL"] if shutil.which("setpriv") else []),
            str(self.binary),
            "--name=lockkit-test",
            f"--data-dir={self.data}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lockkit-test={peer}",
            "--initial-cluster-state=new",
            # A test server: no fsync per write, quiet logs.
            "--unsafe-no-fsync",
            "--logger=zap",
            "--log-level=warn",
        ]
        if self._cert is not None:
            args += [f"--cert-file={self._cert[0]}", f"--key-file={self._cert[1]}"]
        log = (self.directory / "server.log").open("ab")
        with log:
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_ready(self.process)

    def _context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def call(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        """POST ``body`` to the server's JSON gateway (``/v3/...``) and decode the answer."""
        request = urllib.request.Request(  # noqa: S310 - our own http(s) URL
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": token} if token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=5, context=self._context()) as answer:  # noqa: S310
            result: dict[str, Any] = json.loads(answer.read())
        return result

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        probe = {"key": base64.b64encode(b"lockkit-ready").decode()}
        while time.monotonic() < deadline:
            if process.poll() is not None:
                text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"etcd exited at start:\n{text}")
            try:
                # A read through raft (linearizable): the member has a leader.
                self.call("/v3/kv/range", probe, token=self._token())
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.05)
                continue
            return
        raise RuntimeError(f"etcd did not answer within {_START_TIMEOUT:.0f} s")

    def _token(self) -> str | None:
        if self.password is None:
            return None
        answer = self.call("/v3/auth/authenticate", {"name": "root", "password": self.password})
        return str(answer["token"])

    def enable_auth(self, password: str) -> None:
        """Create the ``root`` user with ``password`` and turn authentication on."""
        self.call("/v3/auth/user/add", {"name": "root", "password": password})
        self.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        self.call("/v3/auth/enable", {})
        self.password = password

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but answers nothing."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM), or kill after 30 s."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        self.resume()  # a paused server cannot shut down
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        """`stop` then `start` on the same ports and data."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running(binary: pathlib.Path | None = None, *, tls: bool = False) -> Iterator[EtcdServer]:
    """A started server, removed (killed, its directory deleted) on exit.

    Raises:
        RuntimeError: No ``etcd`` binary was found, or the server did not start.
    """
    found = binary or find_etcd()
    if found is None:
        raise RuntimeError("no etcd binary found (Debian: apt-get install etcd-server)")
    server = EtcdServer(found, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.remove()
