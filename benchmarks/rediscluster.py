"""A private Redis Cluster on loopback: 3 masters, 1 replica each, from ``redis-server``.

The tests (``tests/redis_cluster.py``) and the benchmarks start their clusters here.
Six ``redis-server --cluster-enabled yes`` processes are started on free loopback ports
by `benchmarks.redisserver.RedisServer` (nothing on disk: ``--save '' --appendonly
no``, a temporary directory each, stopped on exit; ``die_with_parent`` for
single-threaded callers), then ``redis-cli --cluster create ... --cluster-replicas 1
--cluster-yes`` joins them. The cluster is ready once every node reports
``cluster_state:ok`` and agrees on the masters of all 16384 slots.

``cluster-node-timeout`` is small (`NODE_TIMEOUT_MS`), so a killed master is failed over
within about a second.

`RedisCluster.move_slot` moves one slot to another master with the steps ``redis-cli
--cluster reshard`` takes (``CLUSTER SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE`` of
the slot's keys, ``CLUSTER SETSLOT NODE``), for tests of a slot moved under load.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING

import attrs

from benchmarks.redisserver import RedisServer

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "NODE_TIMEOUT_MS",
    "ClusterNode",
    "RedisCluster",
    "command",
    "find_cli",
    "private_cluster",
    "running_cluster",
]

NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: how long a node may not answer before it counts as failing."""

_READY_TIMEOUT = 30.0
_SLOTS = 16384


def find_cli(binary: str) -> str | None:
    """``redis-cli`` beside ``binary`` (``valkey-cli`` beside ``valkey-server``), else on PATH."""
    path = pathlib.Path(binary)
    sibling = path.with_name(path.name.replace("-server", "-cli"))
    if sibling.exists():
        return str(sibling)
    return shutil.which("redis-cli") or shutil.which("valkey-cli")


@attrs.define
class ClusterNode:
    """One node's identity as ``CLUSTER NODES`` reports it.

    Attributes:
        node_id: The node's 40-character id.
        port: Its loopback port.
        master: Whether it is a master now.
        master_id: The id of its master (replicas), else ``""``.
        slots: The slot ranges it serves, ``(first, last)`` (masters).
    """

    node_id: str
    port: int
    master: bool
    master_id: str
    slots: list[tuple[int, int]]


def command(port: int, *args: str | int, timeout: float = 5.0, tls_ca: str | None = None) -> object:
    """Run one command on the node at ``port`` (a short-lived redis-py connection).

    With ``tls_ca`` (the CA file that verifies the node), over TLS.
    """
    import redis  # optional dependency, imported where used

    client = redis.Redis(
        port=port,
        socket_timeout=timeout,
        decode_responses=True,
        ssl=tls_ca is not None,
        ssl_ca_certs=tls_ca,
    )
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]  # redis-py: untyped
    finally:
        client.close()


class RedisCluster:
    """Six cluster-enabled servers joined as 3 masters with a replica each.

    Attributes:
        servers: The six `RedisServer` processes (any may be killed and restarted).
        cli: The ``redis-cli`` used to create the cluster.
        tls_ca: The CA file that verifies the nodes, if they serve TLS only.
    """

    def __init__(self, servers: list[RedisServer], cli: str, tls_ca: str | None = None) -> None:
        """Wrap ``servers``, already started; `create` joins them (over TLS with ``tls_ca``)."""
        self.servers = servers
        self.cli = cli
        self.tls_ca = tls_ca

    def command(self, port: int, *args: str | int) -> object:
        """Run one command on the node at ``port`` (over TLS if the cluster is)."""
        return command(port, *args, tls_ca=self.tls_ca)

    @property
    def ports(self) -> list[int]:
        """The nodes' ports."""
        return [server.port for server in self.servers]

    def url(self, scheme: str = "redis+cluster", *, seeds: int = 3) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`` naming ``seeds`` nodes."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports[:seeds])
        if self.tls_ca is None:
            return f"{scheme}://{hosts}"
        ca = urllib.parse.quote(self.tls_ca, safe="")
        return f"{scheme.replace('redis+', 'rediss+')}://{hosts}?ssl_ca_certs={ca}"

    def create(self) -> None:
        """``redis-cli --cluster create`` with one replica per master; wait until ready."""
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        tls = ["--tls", "--cacert", self.tls_ca] if self.tls_ca else []
        result = subprocess.run(
            [
                self.cli,
                *tls,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{result.stdout[-2000:]}")
        self.wait_ready()
        self.wait_replicated()

    def wait_replicated(self, timeout: float = _READY_TIMEOUT) -> None:
        """Return once every master has a replica online (its first sync done).

        Until then ``WAIT`` blocks for its whole timeout and a failover loses writes.

        Raises:
            RuntimeError: Not so within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            online = []
            for master in self.masters():
                info = self.command(master.port, "INFO", "replication")
                assert isinstance(info, dict)  # redis-py parses INFO
                replica = info.get("slave0")
                online.append(isinstance(replica, dict) and replica.get("state") == "online")
            if all(online):
                return
            time.sleep(0.05)  # no event to wait for: the sync runs on the servers' clock
        raise RuntimeError(f"the replicas did not sync within {timeout:.0f} s")

    def live_ports(self) -> list[int]:
        """Ports of the nodes whose process runs."""
        return [s.port for s in self.servers if s.process is not None and s.process.poll() is None]

    def wait_ready(self, timeout: float = _READY_TIMEOUT) -> None:
        """Return once every live node says ``cluster_state:ok`` and they agree on the masters.

        Each slot's master must be a live node: after a master is killed, this returns
        once its replica has taken over.

        Raises:
            RuntimeError: Not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                states = [str(self.command(port, "CLUSTER", "INFO")) for port in self.live_ports()]
                views = {self._slot_view(port) for port in self.live_ports()}
            except Exception as exc:  # noqa: BLE001 - a node still starting: ask again
                last = str(exc)
            else:
                live = set(self.live_ports())
                if (
                    all("cluster_state:ok" in state for state in states)
                    and len(views) == 1
                    and all(port in live for _, _, port in next(iter(views)))
                ):
                    return
                last = f"{len(views)} views of the slots; states ok: " + str(
                    ["cluster_state:ok" in state for state in states]
                )
            time.sleep(0.05)  # no event to wait for: the nodes gossip on their own clock
        raise RuntimeError(f"the cluster was not ready within {timeout:.0f} s: {last}")

    def _slot_view(self, port: int) -> tuple[tuple[int, int, int], ...]:
        slots = self.command(port, "CLUSTER", "SLOTS")
        assert isinstance(slots, list)
        return tuple(sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in slots))

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """The nodes as ``CLUSTER NODES`` on ``port`` (default: the first live node) says."""
        text = self.command(port or self.live_ports()[0], "CLUSTER", "NODES")
        found = []
        for line in str(text).splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            address = fields[1].split("@", 1)[0]
            flags = fields[2].split(",")
            slots = []
            for item in fields[8:]:
                if item.startswith("["):
                    continue  # a slot being imported or migrated
                first, _, last = item.partition("-")
                slots.append((int(first), int(last or first)))
            found.append(
                ClusterNode(
                    node_id=fields[0],
                    port=int(address.rsplit(":", 1)[1]),
                    master="master" in flags and "fail" not in flags,
                    master_id="" if fields[3] == "-" else fields[3],
                    slots=slots,
                )
            )
        return found

    def masters(self) -> list[ClusterNode]:
        """The masters that serve slots, by port."""
        return sorted(
            (node for node in self.nodes() if node.master and node.slots), key=lambda n: n.port
        )

    def owner(self, slot: int) -> ClusterNode:
        """The master serving ``slot``."""
        for node in self.masters():
            if any(first <= slot <= last for first, last in node.slots):
                return node
        raise LookupError(f"no master serves slot {slot}")

    def server(self, port: int) -> RedisServer:
        """The `RedisServer` on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def keyslot(self, key: str) -> int:
        """``CLUSTER KEYSLOT key``, as the server computes it."""
        return int(str(self.command(self.live_ports()[0], "CLUSTER", "KEYSLOT", key)))

    def begin_move(self, slot: int, target: ClusterNode) -> ClusterNode:
        """Mark ``slot`` importing on ``target`` and migrating on its owner; returns the owner.

        From now on the owner answers ``-ASK`` for the slot's keys it no longer has.
        """
        source = self.owner(slot)
        if source.node_id == target.node_id:
            raise ValueError(f"slot {slot} is already served by {target.port}")
        self.command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        self.command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        return source

    def migrate_keys(self, slot: int, source: ClusterNode, target: ClusterNode) -> int:
        """``MIGRATE`` every key of ``slot`` from ``source`` to ``target``; returns how many."""
        moved = 0
        while True:
            keys = self.command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            assert isinstance(keys, list)
            if not keys:
                return moved
            self.command(
                source.port,
                *("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys),
            )
            moved += len(keys)

    def finish_move(self, slot: int, target: ClusterNode) -> None:
        """``CLUSTER SETSLOT slot NODE target`` on the target, then every other master."""
        self.command(target.port, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for node in self.masters():
            if node.node_id != target.node_id:
                self.command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

    def move_slot(self, slot: int, target: ClusterNode) -> int:
        """Move ``slot`` and its keys to the master ``target``; returns the keys moved."""
        source = self.begin_move(slot, target)
        moved = self.migrate_keys(slot, source, target)
        self.finish_move(slot, target)
        self.wait_ready()
        return moved

    def stop(self) -> None:
        """Stop every node."""
        for server in self.servers:
            server.stop()


def _ports_free(ports: list[int]) -> bool:
    """Whether each port's cluster bus port (port + 10000) is free too."""
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                return False
    return True


def _tls_args(tls: tuple[str, str, str] | None) -> tuple[str, ...]:
    if tls is None:
        return ()
    ca, cert, key = tls
    return (
        *("--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca),
        *("--tls-auth-clients", "no", "--tls-cluster", "yes", "--tls-replication", "yes"),
    )


@contextlib.contextmanager
def running_cluster(
    binary: str,
    cli: str,
    *,
    die_with_parent: bool = False,
    tls: tuple[str, str, str] | None = None,
) -> Iterator[RedisCluster]:
    """A created, ready `RedisCluster` in a temporary directory; always stopped and removed.

    With ``tls`` (CA file, certificate file, key file), every node serves TLS only,
    on its client port, its cluster bus and to its replicas (``rediss+cluster://``).

    Raises:
        RuntimeError: A node did not start, or the cluster did not form.
    """
    directory = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-cluster-"))
    servers: list[RedisServer] = []
    try:
        for index in range(6):
            node_dir = directory / f"node{index}"
            node_dir.mkdir()
            for _attempt in range(5):
                server = RedisServer(
                    binary,
                    node_dir,
                    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                    # Replicas sync at once, not after the default 5 s of waiting for more.
                    *("--repl-diskless-sync-delay", "0"),
                    # A replica that cannot reach its master for a moment may still be
                    # promoted: the test cluster favours availability.
                    *("--cluster-replica-validity-factor", "0"),
                    *_tls_args(tls),
                    tls=tls is not None,
                    die_with_parent=die_with_parent,
                )
                if server.port + 10000 < 65536 and _ports_free([server.port]):
                    break
            servers.append(server)
            server.start()
        cluster = RedisCluster(servers, cli, tls[0] if tls else None)
        cluster.create()
        yield cluster
    finally:
        # All told at once, then waited for: they shut down side by side.
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(binary: str, cli: str) -> Iterator[str]:
    """The benchmark's cluster: start it; yield its ``redis+cluster://`` URL; always stop it.

    Started before any thread of the benchmark, so it dies with the benchmark too.
    """
    with running_cluster(binary, cli, die_with_parent=True) as cluster:
        yield cluster.url()
