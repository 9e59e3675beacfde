"""A Sentinel deployment on loopback: one primary, two replicas, three sentinels.

The tests (``tests/redis_sentinel.py``) and the benchmarks start it here, from the same
``redis-server`` binary as `benchmarks.redisserver` (a sentinel is ``redis-server
sentinel.conf --sentinel``). Nothing is kept on disk but the sentinels' own
configuration, which they rewrite; everything lives in one temporary directory that is
removed on exit.

Sentinels judge a server down after `DOWN_AFTER_MS` (Sentinel's default, 30 s, would
make a failover test wait half a minute each time) and fail over within a few seconds.
A failover is observed, not slept for: `SentinelDeployment.wait_for_new_primary` reads
the sentinels' ``+switch-master`` event.
"""

from __future__ import annotations

import contextlib
import math
import pathlib
import shutil
import socket
import tempfile
import time
from typing import TYPE_CHECKING

from benchmarks.redisserver import RedisServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "DOWN_AFTER_MS",
    "FAILOVER_TIMEOUT_MS",
    "SERVICE",
    "SentinelDeployment",
    "command",
    "running_sentinel",
]

SERVICE = "lockkit"
"""The service (master) name the sentinels monitor."""

DOWN_AFTER_MS = 2000
"""How long a primary must not answer before a sentinel judges it down.

Sentinels ping once a second: at 1000 ms a primary promoted a moment before was at
times judged down before its first ping, and failed over again."""

FAILOVER_TIMEOUT_MS = 1500
"""Sentinel's ``failover-timeout``: a sentinel retries a failover of the same service
only after twice this long (3 s), so back-to-back failovers in a test need it short."""

_READY_WITHIN = 30.0


def command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One command in the inline protocol on a fresh connection; the raw reply.

    No redis-py here: the launcher must work for the benchmarks' Python too.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        packed = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%b\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        sock.sendall(packed)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
        return data


def _complete(data: bytes) -> bool:
    """Whether ``data`` holds one whole reply (enough of RESP2 for the replies used here)."""
    try:
        _, rest = _parse(data)
    except ValueError:
        return False
    return rest == b""


def _parse(data: bytes) -> tuple[object, bytes]:
    line, sep, rest = data.partition(b"\r\n")
    if not sep:
        raise ValueError("incomplete")
    kind, body = line[:1], line[1:]
    if kind in (b"+", b"-", b":"):
        return body.decode(), rest
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None, rest
        if len(rest) < size + 2:
            raise ValueError("incomplete")
        return rest[:size].decode(errors="replace"), rest[size + 2 :]
    if kind == b"*":
        items = []
        for _ in range(max(int(body), 0)):
            item, rest = _parse(rest)
            items.append(item)
        return items, rest
    raise ValueError(f"unexpected reply {line!r}")


def _info(port: int, section: str) -> dict[str, str]:
    reply, _ = _parse(command(port, "INFO", section))
    fields = {}
    for line in str(reply).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


class SentinelDeployment:
    """Three data servers and three sentinels, started by `running_sentinel`.

    Attributes:
        servers: The data servers; which one is the primary changes with failovers.
        sentinels: The sentinels (`RedisServer` in sentinel mode).
    """

    def __init__(
        self, binary: str, directory: pathlib.Path, *, die_with_parent: bool = False
    ) -> None:
        """Prepare the processes (nothing runs until `start`).

        ``die_with_parent``: see `RedisServer` (for single-threaded callers only).
        """
        self.binary = binary
        self.directory = directory
        self.servers: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []
        for index in range(3):
            home = directory / f"server{index}"
            home.mkdir()
            self.servers.append(RedisServer(binary, home, die_with_parent=die_with_parent))
        # A replica's full sync streams the data at once (no 5 s wait for more
        # replicas, no file on disk).
        self._sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        self._last_failover = -math.inf
        for index in range(3):
            home = directory / f"sentinel{index}"
            home.mkdir()
            config = home / "sentinel.conf"
            server = RedisServer(
                binary, home, "--sentinel", die_with_parent=die_with_parent, config=config
            )
            self.sentinels.append(server)

    def url(self, **options: object) -> str:
        """``redis+sentinel://`` naming the three sentinels and `SERVICE`, with ``options``."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"redis+sentinel://{hosts}/{SERVICE}" + (f"?{query}" if query else "")

    def start(self) -> None:
        """Start the primary, its replicas, then the sentinels; return once all agree."""
        primary = self.servers[0]
        primary.extra = self._sync
        primary.start()
        for replica in self.servers[1:]:
            replica.extra = (*self._sync, "--replicaof", "127.0.0.1", str(primary.port))
            replica.start()
        for sentinel in self.sentinels:
            assert sentinel.config is not None
            sentinel.config.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            sentinel.start()
        self.wait_until_ready(primary.port, replicas=2)

    def stop(self) -> None:
        """Stop every process (the sentinels first, so they start no failover)."""
        for process in [*self.sentinels, *self.servers]:
            process.stop()

    def primary_port(self, sentinel: int = 0) -> int | None:
        """The primary's port as one sentinel sees it (``None``: it does not know)."""
        try:
            reply, _ = _parse(
                command(
                    self.sentinels[sentinel].port,
                    "SENTINEL",
                    "get-master-addr-by-name",
                    SERVICE,
                )
            )
        except (OSError, ValueError):
            return None
        if not isinstance(reply, list) or len(reply) != 2:
            return None
        return int(str(reply[1]))

    def server_on(self, port: int) -> RedisServer:
        """The data server listening on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def wait_until_ready(self, primary: int, replicas: int) -> None:
        """Until every sentinel names ``primary`` and it has ``replicas`` online replicas.

        Polls the servers' state (they offer no event for it), every 50 ms.

        Raises:
            RuntimeError: Not so within 30 s.
        """
        deadline = time.monotonic() + _READY_WITHIN
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                agreed = all(self.primary_port(i) == primary for i in range(len(self.sentinels)))
                info = _info(primary, "replication")
                online = sum(
                    1
                    for key, value in info.items()
                    if key.startswith("slave") and "state=online" in value
                )
                known = all(
                    int(_sentinel_field(s.port, "num-slaves")) >= replicas
                    and int(_sentinel_field(s.port, "num-other-sentinels")) >= 2
                    for s in self.sentinels
                )
                if agreed and info.get("role") == "master" and online >= replicas and known:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the Sentinel deployment was not ready within {_READY_WITHIN:.0f} s")

    def wait_for_new_primary(self, old: int, within: float = 30.0) -> int:
        """Block until every sentinel names a primary other than ``old``; its port.

        Woken by ``+switch-master`` on a sentinel (an event), re-asked every second.

        Raises:
            RuntimeError: No failover within ``within`` seconds.
        """
        with socket.create_connection(("127.0.0.1", self.sentinels[0].port), timeout=within) as s:
            s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n")
            # The failover may have happened before we subscribed: ask after subscribing.
            deadline = time.monotonic() + within
            buffer = b""
            while True:
                # Every sentinel must know: one that did not see the failover before
                # the old primary is back could keep naming it.
                seen = {self.primary_port(i) for i in range(len(self.sentinels))}
                now = seen.pop() if len(seen) == 1 else None
                if now is not None and now != old:
                    return now
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no failover from port {old} within {within:.0f} s")
                s.settimeout(min(left, 1.0))
                with contextlib.suppress(TimeoutError):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("the sentinel closed the connection")
                    buffer += chunk

    def fail_over(
        self,
        before_kill: Callable[[int], object] | None = None,
        after_kill: Callable[[], object] | None = None,
    ) -> tuple[int, int]:
        """Kill the primary (SIGKILL), wait for a replica's promotion, restart the old one.

        The old primary comes back as a replica of the new one; returns once the new
        primary has both replicas online again. Returns ``(old port, new port)``.
        ``before_kill`` is called with the primary's port just before it is killed,
        ``after_kill`` right after.
        """
        self._wait_out_failover_timer()
        old = self.primary_port()
        assert old is not None, "no sentinel names a primary"
        victim = self.server_on(old)
        if before_kill is not None:
            before_kill(old)
        victim.kill()
        if after_kill is not None:
            after_kill()
        new = self.wait_for_new_primary(old)
        victim.extra = (*self._sync, "--replicaof", "127.0.0.1", str(new))
        victim.start()
        self.wait_until_ready(new, replicas=2)
        self._last_failover = time.monotonic()
        return old, new

    def switch_over(self) -> tuple[int, int]:
        """A coordinated failover (``SENTINEL FAILOVER``): the primary lives on, demoted.

        Connections to it stay open and meet ``READONLY`` on their next write. Returns
        ``(old port, new port)`` once every sentinel names the new primary and it has
        both replicas online.
        """
        self._wait_out_failover_timer()
        old = self.primary_port()
        assert old is not None, "no sentinel names a primary"
        command(self.sentinels[0].port, "SENTINEL", "FAILOVER", SERVICE)
        new = self.wait_for_new_primary(old)
        self.wait_until_ready(new, replicas=2)
        self._last_failover = time.monotonic()
        return old, new

    def _wait_out_failover_timer(self) -> None:
        # A sentinel votes in one failover of a service per 2 x failover-timeout: fail
        # over sooner and the election of the next leader stalls, or a sentinel that
        # missed the last failover starts one of its own. Waiting out Sentinel's timer
        # is part of the protocol, not a guess at how long something takes.
        quiet = self._last_failover + 2 * FAILOVER_TIMEOUT_MS / 1000 + 0.5 - time.monotonic()
        if quiet > 0:
            time.sleep(quiet)


def _sentinel_field(port: int, field: str) -> str:
    reply, _ = _parse(command(port, "SENTINEL", "master", SERVICE))
    assert isinstance(reply, list)
    fields = dict(zip(reply[0::2], reply[1::2], strict=False))
    return str(fields[field])


@contextlib.contextmanager
def running_sentinel(binary: str, *, die_with_parent: bool = False) -> Iterator[SentinelDeployment]:
    """A started `SentinelDeployment` in a fresh temporary directory; always stopped."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-sentinel-"))
    deployment = SentinelDeployment(binary, directory, die_with_parent=die_with_parent)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        shutil.rmtree(directory, ignore_errors=True)
