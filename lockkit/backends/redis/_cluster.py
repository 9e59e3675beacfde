"""Redis Cluster: ``redis+cluster://`` (and ``rediss+cluster://``, TLS) URLs.

**URL.** ``redis+cluster://[user[:password]@]host:port[,host:port...][/0][?options]``:
the comma-separated ``host:port`` pairs are *seed nodes* of one cluster (any reachable
one tells the rest), not Redlock servers. A cluster has database 0 only. The options
are the standalone URL's (lockkit's ``prefix``, ``ttl``, ``root``, ``poll``; redis-py's
``socket_timeout``, ``ssl_ca_certs``...), applied to every node's connections. A
Redlock over several clusters, or a cluster mixed with standalone servers, is refused
(`lockkit.errors.SettingsError`).

**Keys and routing.** Every key of a lock carries the lock's hash tag
(``lockkit:{NAME}``, ``lockkit:{NAME}:fence``...; see `._scripts`), so a lock lives
in one slot and each operation stays one Lua script on one master. A script is routed
by ``CRC16(tag) mod 16384`` through a slot map read with ``CLUSTER SLOTS`` from any
reachable node, and runs with ``EVALSHA`` on a connection the calling thread keeps to
that master (`._conn.ThreadConnection`, as for one server; every connection is of a
`._conn.bounded_class`, so an acquisition's deadline cuts its socket timeouts).
Replies that redirect:

* ``-MOVED slot host:port``: the slot has a new master. Nothing ran: the map entry is
  updated, the whole map re-read before the next script, and the script re-sent there.
* ``-ASK slot host:port``: the slot is being migrated and the keys are not (all) on
  the old master any more. Nothing ran: ``ASKING`` then the script on the new master,
  on the same connection (``ASKING`` applies to the next command only).
* ``-TRYAGAIN`` (the lock's keys are split between the two masters of a migration
  for a moment) and ``-CLUSTERDOWN``: nothing ran; tried again after a short pause,
  within the acquisition's deadline (at most `RETRY_WITHIN` seconds outside one).

A script whose reply could not be read is not re-sent here (it may have run): the map
is re-read before the next script, since a failover may have moved the slot, and
`RedisBackend.call` runs the operation again within the acquisition's deadline
(`ClusterServer.follows_failover`), as for a Sentinel-managed server: every lock script
may be re-run (a re-sent acquisition recognises its own key, see `._scripts`). A master
killed is so waited out while its replica is promoted.

**Wake-ups.** Plain ``PUBLISH`` in a cluster reports only the receivers on the node
that ran it, so a release could not tell whether a waiter heard its grant. In a
cluster the scripts use sharded pub/sub instead (the same texts with ``SPUBLISH``, made
here by substitution): a waiter's channel carries the lock's hash tag
(``lockkit:{NAME}:waiter:RANDOM``), so it belongs to the lock's slot, and the waiter
``SSUBSCRIBE``s on the master serving that slot, where every release script of the
lock runs. ``SPUBLISH``'s count is then exact, and a grant nobody heard is undone and
passed on as on one server. Idle listeners are kept per lock name (`ClusterListeners`),
so a process contending repeatedly for one lock subscribes once. When the slot moves,
the server ends the subscription (``sunsubscribe``): the waiter drops that listener
and tries again at once, subscribing afresh on the new master; a wake-up lost in the
move only delays a waiter until its ``poll`` re-check.

**asyncio.** `RedisClusterBackend` runs the blocking operations in worker threads
(like a Redlock); an asyncio waiter re-checks with backoff up to ``poll`` instead of
being woken.

**While a slot migrates** (``redis-cli --cluster reshard``), Redis runs a script on
the old master only if every key it names is still there, and on the new one (after
``ASKING``) only if every key is already there; otherwise it answers ``ASK`` or
``TRYAGAIN`` before anything runs. A script naming a key that exists on neither (a
lock's queue when nobody waits, its value when it is free) so gets ``TRYAGAIN`` until
the slot's move ends: retried as above, then `lockkit.errors.BackendUnavailable`
(a release then reports the lock lost; its key expires by itself). ``redis-cli``
moves a slot's few keys and ends the move within milliseconds. A script that runs on
the old master and touches a key the move took away meanwhile (the lock's key its
release just deleted, to set it for the next waiter) is stopped mid-way by Redis: the
cluster variants of the scripts stop the hand-off there instead (`cluster_text`),
leaving the lock free, never held twice; that waiter re-checks at its ``poll``.

**Limitations.** Needs Redis 7.0 or later, or Valkey (sharded pub/sub: ``SPUBLISH``
in scripts). A lock name starting with ``}`` has no usable hash tag and is refused
(`lockkit.errors.InvalidLockName`). A master that dies takes the locks it held with
it if its replica had not received them yet (asynchronous replication: the URL's
``min_replicas`` closes that window with ``WAIT``). ``WAIT`` (`ClusterServer.wait_replicas`)
is sent on the connection that ran this thread's last script for the slot; if that
connection was replaced since (after an error), it counts the new connection's writes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar, cast

from lockkit._redact import redact_url
from lockkit.backends.redis import _scripts
from lockkit.backends.redis._conn import (
    CLUSTER_SCHEMES,
    GRACE,
    ThreadConnection,
    bounded_class,
    check_timeouts,
    redis_module,
    time_left,
    wait_replicas_on,
)
from lockkit.backends.redis._single import RedisBackend
from lockkit.backends.redis._threaded import AsyncInThreads
from lockkit.backends.redis._waiter import Listener, Listeners
from lockkit.errors import InvalidLockName, SettingsError

if TYPE_CHECKING:
    from lockkit.backends.redis._conn import Server

__all__ = [
    "CLUSTER_SCHEMES",
    "RETRY_WITHIN",
    "SLOTS",
    "ClusterClient",
    "ClusterListener",
    "ClusterListeners",
    "ClusterScript",
    "ClusterServer",
    "RedisClusterBackend",
    "cluster_error",
    "cluster_text",
    "connect",
    "failover_warnings_of",
    "parse_url",
]

SLOTS = 16384
"""Hash slots of a Redis Cluster."""

RETRY_WITHIN = 2.0
"""Seconds ``TRYAGAIN``/``CLUSTERDOWN`` are retried by a call made for no acquisition."""

_MAX_REDIRECTS = 16
"""``MOVED``/``ASK`` replies followed for one script before giving up (redis-py's TTL)."""

_FIRST_PAUSE = 0.005
_LONGEST_PAUSE = 0.1

_IDLE_LISTENERS = 64
"""Idle listeners kept per process and cluster, over all lock names."""


# The cluster variants' substitutions: (standalone text, cluster text).
_CLUSTER_EDITS = (
    # Sharded pub/sub: the count of receivers is exact on the slot's master.
    ("redis.call('publish', ", "redis.call('spublish', "),
    # While its slot migrates, the old master refuses (with an error, mid-script) a
    # command on a key it does not have: the queue that a pop just emptied, the lock's
    # key that the release just deleted. The hand-off then stops there, the lock left
    # free (a waiter re-checks at its poll), instead of failing a release that did
    # release: pcall returns such an error as a table.
    # (A reply that is not an error may be a table too: SET's status is {ok='OK'}.)
    (
        "local entry = redis.call('lindex', KEYS[3], 0)\n    if not entry then return end",
        (
            "local entry = redis.pcall('lindex', KEYS[3], 0)\n"
            "    if not entry or type(entry) == 'table' then return end"
        ),
    ),
    (
        "redis.call('set', KEYS[1], value, 'PX', string.sub(entry, b + 1, c - 1))",
        (
            "local set = redis.pcall('set', KEYS[1], value, 'PX', string.sub(entry, b + 1, c - 1))"
            "\n      if type(set) == 'table' and set['err'] then return end"
        ),
    ),
)


def cluster_text(text: str) -> str:
    """A script's cluster variant (the standalone scripts stay exactly as they are).

    ``PUBLISH`` becomes ``SPUBLISH`` (sharded pub/sub): Redis 7 allows it in scripts
    when the channel hashes to the script's slot, which a waiter's channel does (it
    carries the lock's hash tag). The hand-off stops, rather than fails, where a
    migrating slot's old master refuses a key it no longer has (see `_CLUSTER_EDITS`).
    """
    for standalone, cluster in _CLUSTER_EDITS:
        text = text.replace(standalone, cluster)
    return text


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _text(value: Any) -> str:  # noqa: ANN401 - a raw RESP value
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=4096)
def _slot_of(key: str) -> int:
    """The cluster slot of ``key`` (redis-py's CRC16 of its hash tag), cached per key."""
    from redis.crc import key_slot  # redis-py is imported on first use

    return int(key_slot(key.encode()))


# -- the URL -------------------------------------------------------------------------


def parse_url(url: str) -> tuple[str, str, list[tuple[str, int]], str]:
    """Split a cluster URL: (node scheme, userinfo with its ``@``, seeds, query with ``?``).

    Raises:
        SettingsError: Not a cluster URL, no seed, a seed that is not ``host:port``
            (another URL: a mix), or a database other than 0.
    """
    shown = redact_url(url)
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise SettingsError(f"not a Redis Cluster URL: {shown}")
    node_scheme = "rediss" if scheme.lower().startswith("rediss") else "redis"
    # The userinfo runs to the last "@" (a password may hold any character).
    at = rest.rfind("@")
    userinfo, rest = (rest[: at + 1], rest[at + 1 :]) if at >= 0 else ("", rest)
    hosts = re.match(r"[^/?#]*", rest)
    assert hosts is not None
    tail = rest[hosts.end() :]
    path, _, query = tail.partition("?")
    if "://" in rest.partition("?")[0]:
        raise SettingsError(
            f"invalid Redis Cluster URL {shown}: its commas separate host:port seeds of one "
            "cluster; a Redlock over several clusters, or a cluster mixed with other "
            "servers, is not supported"
        )
    if path.strip("/") not in {"", "0"}:
        raise SettingsError(
            f"invalid Redis Cluster URL {shown}: a cluster has database 0 only, not "
            f"{path.strip('/')!r}"
        )
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "db" and value != "0":
            raise SettingsError(f"invalid Redis Cluster URL {shown}: a cluster has database 0 only")
    seeds = []
    for raw in hosts.group(0).split(","):
        item = raw.strip()
        if not item:
            continue
        found = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(\d+))?", item)
        port = int(found.group(2)) if found and found.group(2) else 6379
        if found is None or not 0 < port < 65536:  # noqa: PLR2004
            raise SettingsError(
                f"invalid Redis Cluster URL {shown}: seed {item!r} is not host:port"
            )
        seeds.append((found.group(1).strip("[]"), port))
    if not seeds:
        raise SettingsError(f"invalid Redis Cluster URL {shown}: it names no host:port seed")
    return node_scheme, userinfo, seeds, f"?{query}" if query else ""


# -- nodes and routing -----------------------------------------------------------------


def cluster_error(exc: BaseException) -> BaseException:
    """``exc``, as the redis-py class of its cluster reply (``MovedError``...) if it has one.

    redis-py 8 parses ``-MOVED``, ``-ASK``, ``-TRYAGAIN`` and ``-CLUSTERDOWN`` into their
    classes on any connection; before 6, only the connections of its own cluster client
    did (``ClusterParser``), others raising a plain ``ResponseError``.
    """
    errors = redis_module().exceptions
    if type(exc) is not errors.ResponseError:
        return exc
    code, _, rest = str(exc).partition(" ")
    kind = {
        "MOVED": errors.MovedError,
        "ASK": errors.AskError,
        "TRYAGAIN": errors.TryAgainError,
        "CLUSTERDOWN": errors.ClusterDownError,
    }.get(code)
    if kind is None:
        return exc
    try:
        mapped: BaseException = (
            kind(rest) if kind in {errors.MovedError, errors.AskError} else kind(str(exc))
        )
    except ValueError:
        return exc  # not "slot host:port": leave it as it came
    return mapped


class _Node:
    """One node: its pool, each thread's kept connection, a client for odd commands."""

    __slots__ = ("address", "client", "connection", "pool")

    def __init__(self, address: tuple[str, int], pool: Any) -> None:  # noqa: ANN401
        self.address = address
        self.pool = pool
        self.connection = ThreadConnection(pool)
        self.client = redis_module().Redis(connection_pool=pool)

    @property
    def shown(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def run(
        self,
        script: ClusterScript,
        keys: list[str] | tuple[str, ...],
        args: list[Any],
        *,
        asking: bool,
    ) -> Any:  # noqa: ANN401
        """``EVALSHA`` (after ``ASKING`` when asked to), loading the script if needed."""
        execute = self.execute

        def once() -> Any:  # noqa: ANN401
            if asking:
                execute("ASKING")
            return execute("EVALSHA", script.sha, len(keys), *keys, *args)

        try:
            return once()
        except redis_module().exceptions.NoScriptError:
            execute("SCRIPT", "LOAD", script.text)
            return once()

    def execute(self, *args: str | bytes | int) -> Any:  # noqa: ANN401 - a raw reply
        """One command on this thread's connection; cluster replies raise their classes."""
        try:
            return self.connection.execute(*args)
        except redis_module().exceptions.ResponseError as exc:
            mapped = cluster_error(exc)
            if mapped is exc:
                raise
            raise mapped from None


class _Retry:
    """Pauses between tries of a script answered ``TRYAGAIN`` or ``CLUSTERDOWN``."""

    __slots__ = ("pause", "until")

    def __init__(self) -> None:
        self.pause = _FIRST_PAUSE
        self.until: float | None = None

    def pause_or_raise(self) -> None:
        """Sleep before the next try; re-raise the reply being handled when time is up."""
        now = time.monotonic()
        if self.until is None:
            left = time_left()
            # Within the acquisition's deadline (time_left includes its GRACE).
            self.until = now + (RETRY_WITHIN if left is None else left - GRACE)
        if now + self.pause > self.until:
            raise  # noqa: PLE0704 - called from the except clause of that reply
        time.sleep(self.pause)  # a migration or failover ends on the servers' clock
        self.pause = min(self.pause * 2, _LONGEST_PAUSE)


class ClusterScript:
    """A lock script routed by the slot of its first key; called as ``script(keys, args)``."""

    __slots__ = ("cluster", "sha", "text")

    def __init__(self, text: str, cluster: ClusterServer) -> None:
        """``text`` (already the cluster variant), run on ``cluster``'s masters."""
        self.text = text
        self.sha = _sha(text)
        self.cluster = cluster

    def __repr__(self) -> str:
        """Name the script by its SHA only."""
        return f"<ClusterScript {self.sha[:12]}>"

    def __call__(self, keys: list[str] | tuple[str, ...], args: list[Any]) -> Any:  # noqa: ANN401
        """Run the script on the master of ``keys[0]``'s slot; returns the raw reply.

        Follows ``MOVED`` and ``ASK``, retries ``TRYAGAIN``/``CLUSTERDOWN`` briefly
        (see the module docstring). Raises redis-py's errors otherwise.
        """
        cluster = self.cluster
        errors = redis_module().exceptions
        slot = _slot_of(keys[0])
        node = cluster.node_for(slot)
        asking = False
        redirects = 0
        retry: _Retry | None = None  # made on the first TRYAGAIN: rare
        while True:
            try:
                reply = node.run(self, keys, args, asking=asking)
            except errors.MovedError as exc:
                redirects += 1
                node = cluster.moved(exc.slot_id, (exc.host, exc.port), node)
                asking = False
            except errors.AskError as exc:
                redirects += 1
                node = cluster.node_at((exc.host, exc.port))
                asking = True
            except (errors.TryAgainError, errors.ClusterDownError) as exc:
                retry = retry or _Retry()
                retry.pause_or_raise()
                if isinstance(exc, errors.ClusterDownError):
                    cluster.stale = True
                    node, asking = cluster.node_for(slot), False
            except (errors.ConnectionError, errors.TimeoutError, OSError):
                # It may have run: never re-sent. A failover may have moved the slot.
                cluster.stale = True
                raise
            else:
                cluster.ran(slot, node)
                return reply
            if redirects > _MAX_REDIRECTS:
                raise errors.ClusterError(
                    f"slot {slot}: still redirected after {_MAX_REDIRECTS} MOVED/ASK replies"
                )


class ClusterServer:
    """A Redis Cluster, offering what `._conn.Server` offers the backend.

    ``url``, ``client`` (a `ClusterClient`), ``shown`` and the scripts (``acquire``,
    ``acquire_queued``, ``release``... each a `ClusterScript`, called as
    ``script(keys, args)``), plus what only a cluster has: `node_for`, `wait_replicas`,
    `describe`, `failover_warnings`.

    Attributes:
        stale: The slot map must be read again before the next script.
        follows_failover: Always: a command that met a master gone (or a cluster
            still electing its replica) is re-run by `RedisBackend.call` within the
            acquisition's deadline, on the slot map read anew.
        sentinel: Always ``None`` (what `._conn.Server` holds for a Sentinel URL).
    """

    follows_failover: ClassVar[bool] = True
    sentinel: ClassVar[None] = None

    SCRIPTS: ClassVar[dict[str, str]] = {  # attribute: standalone text (made cluster_text)
        "acquire": _scripts.ACQUIRE,
        "acquire_queued": _scripts.ACQUIRE_QUEUED,
        "release": _scripts.RELEASE,
        "refresh": _scripts.REFRESH,
        "fence": _scripts.FENCE,
        "inspect": _scripts.INSPECT,
        "break_": _scripts.BREAK,
        "enqueue": _scripts.ENQUEUE,
        "leave": _scripts.LEAVE,
        "acquire_shared": _scripts.ACQUIRE_SHARED,
        "release_shared": _scripts.RELEASE_SHARED,
        "refresh_shared": _scripts.REFRESH_SHARED,
    }

    acquire: ClusterScript
    acquire_queued: ClusterScript
    release: ClusterScript
    refresh: ClusterScript
    fence: ClusterScript
    inspect: ClusterScript
    break_: ClusterScript
    enqueue: ClusterScript
    leave: ClusterScript
    acquire_shared: ClusterScript
    release_shared: ClusterScript
    refresh_shared: ClusterScript

    def __init__(self, url: str) -> None:
        """Parse ``url`` and check its options; no connection is made yet.

        Raises:
            SettingsError: The URL or one of its options is invalid.
        """
        self.url = url
        self._scheme, self._userinfo, self.seeds, self._query = parse_url(url)
        self._nodes: dict[tuple[str, int], _Node] = {}
        self._nodes_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._slots: list[_Node | None] = [None] * SLOTS
        self._generation = 0
        self._ask_first: _Node | None = None
        self.stale = True
        self._last = threading.local()
        self._pid = os.getpid()
        # Options are checked here, on the first seed: a wrong one is a SettingsError now.
        self.node_at(self.seeds[0])
        self.client = ClusterClient(self)
        for attribute, text in self.SCRIPTS.items():
            setattr(self, attribute, ClusterScript(cluster_text(text), self))

    def __repr__(self) -> str:
        """The URL without its password."""
        return f"<ClusterServer {self.shown}>"

    @property
    def shown(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)

    # -- nodes -----------------------------------------------------------------------

    def node_at(self, address: tuple[str, int]) -> _Node:
        """The node at ``address`` (made on first use; nothing is connected yet)."""
        node = self._nodes.get(address)
        if node is not None:
            return node
        with self._nodes_lock:
            node = self._nodes.get(address)
            if node is None:
                node = self._nodes[address] = _Node(address, self._pool(address))
        return node

    def _pool(self, address: tuple[str, int]) -> Any:  # noqa: ANN401 - a redis-py pool
        host, port = address
        shown_host = f"[{host}]" if ":" in host else host
        node_url = f"{self._scheme}://{self._userinfo}{shown_host}:{port}/0{self._query}"
        redis = redis_module()
        try:
            pool = redis.ConnectionPool.from_url(
                node_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            pool.connection_class = bounded_class(pool.connection_class)
            # Build one connection (it does not connect): a wrong option is reported now.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as exc:
            reason = str(exc)
            if self._userinfo or "%40" in self.url:
                reason = (
                    "it cannot be parsed; percent-encode special characters in the user "
                    "name and password (@ as %40, / as %2F, # as %23, ? as %3F, : as %3A)"
                )
            raise SettingsError(f"invalid Redis Cluster URL {self.shown}: {reason}") from None
        check_timeouts(self.url, pool.connection_kwargs)
        return pool

    def nodes(self) -> list[_Node]:
        """Every node met so far (seeds and the masters of the slot map)."""
        return list(self._nodes.values())

    # -- the slot map ----------------------------------------------------------------

    def node_for(self, slot: int) -> _Node:
        """The master serving ``slot`` as far as known (the map is read if stale)."""
        if self._pid != os.getpid():
            self._forked()
        if self.stale:
            self.read_map()
        node = self._slots[slot]
        if node is None:
            self.read_map()
            node = self._slots[slot]
            if node is None:
                raise redis_module().exceptions.ClusterDownError(
                    f"CLUSTERDOWN no master serves slot {slot}"
                )
        return node

    def _forked(self) -> None:
        # A forked child: its parent's sockets are not its own (ThreadConnection knows
        # that per connection); the nodes' pools reset themselves by pid too.
        self._pid = os.getpid()
        self._last = threading.local()

    def read_map(self) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from the first node that answers.

        The node that last redirected us first, then the masters known, then the seeds.
        Raises the last node's redis-py error when none answers.
        """
        generation = self._generation
        with self._refresh_lock:
            if self._generation != generation and not self.stale:
                return  # another thread read it while this one waited
            candidates: list[_Node] = []
            if self._ask_first is not None:
                candidates.append(self._ask_first)
            candidates += [n for n in dict.fromkeys(self._slots) if n is not None]
            candidates += [self.node_at(seed) for seed in self.seeds]
            errors = redis_module().exceptions
            failure: BaseException | None = None
            for node in dict.fromkeys(candidates):
                try:
                    reply = node.execute("CLUSTER", "SLOTS")
                except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
                    failure = exc
                    continue
                self._slots = self._map_of(reply, node)
                self._ask_first = None
                self.stale = False
                self._generation += 1
                return
            assert failure is not None
            raise failure

    def _map_of(self, reply: Any, asked: _Node) -> list[_Node | None]:  # noqa: ANN401
        slots: list[_Node | None] = [None] * SLOTS
        for entry in reply:
            first, last, master = int(entry[0]), int(entry[1]), entry[2]
            host = _text(master[0])
            # An empty host (or "?") means "the address you reached me at".
            if host in {"", "?"}:
                host = asked.address[0]
            node = self.node_at((host, int(master[1])))
            slots[first : last + 1] = [node] * (last - first + 1)
        return slots

    def moved(self, slot: int, address: tuple[str, int], asked: _Node) -> _Node:
        """Record a ``MOVED`` reply of ``asked``: the slot's master is at ``address``."""
        node = self.node_at(address)
        self._slots[slot] = node
        # Others slots probably moved too (a failover, a reshard): read the whole map
        # before the next script, from the node that knew first.
        self._ask_first = asked
        self.stale = True
        return node

    def ran(self, slot: int, node: _Node) -> None:
        """Remember that this thread's connection to ``node`` ran a script for ``slot``."""
        last = self._last.__dict__.setdefault("nodes", {})
        last[slot] = node

    # -- what only a cluster offers --------------------------------------------------

    def wait_replicas(self, key: str, replicas: int, timeout_ms: int) -> int:
        """``WAIT replicas timeout_ms`` after this thread's last script for ``key``'s slot.

        Sent on the very connection that ran it (``WAIT`` counts the replicas that
        acknowledged this connection's writes); the slot's master if this thread ran
        none. Returns the number of replicas that acknowledged. Raises redis-py's
        errors.
        """
        slot = _slot_of(key)
        node = self._last.__dict__.get("nodes", {}).get(slot) or self.node_for(slot)
        return wait_replicas_on(node.execute, replicas, timeout_ms)

    def cluster_nodes(self) -> str:
        """``CLUSTER NODES`` as the first node that answers tells it."""
        errors = redis_module().exceptions
        failure: BaseException | None = None
        known = [n for n in dict.fromkeys(self._slots) if n is not None]
        for node in dict.fromkeys([*known, *(self.node_at(seed) for seed in self.seeds)]):
            try:
                return _text(node.execute("CLUSTER", "NODES"))
            except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def describe(self) -> list[str]:
        """Human lines for ``lockkit doctor``: each master, its slots and its replicas."""
        nodes = _parse_nodes(self.cluster_nodes())
        masters = [n for n in nodes if n.master]
        replicas = [n for n in nodes if not n.master]
        served = sum(last - first + 1 for n in masters for first, last in n.slots)
        lines = [
            (
                f"Redis Cluster {self.shown}: {len(masters)} masters, {len(replicas)} "
                f"replicas, {served} of {SLOTS} slots served"
            )
        ]
        for master in sorted(masters, key=lambda n: n.slots[0] if n.slots else (SLOTS, 0)):
            of = [r for r in replicas if r.master_id == master.node_id]
            shown = ", ".join(r.address + _state(r) for r in of) or "none"
            lines.append(
                f"master {master.address} ({master.node_id[:8]}){_state(master)}: "
                f"slots {_ranges(master.slots)}; replicas: {shown}"
            )
        return lines

    def failover_warnings(self) -> list[str]:
        """What would make a failover lose locks or stop them (see `failover_warnings_of`)."""
        return failover_warnings_of(self.cluster_nodes())

    def close(self) -> None:
        """Disconnect every node's connections; they reconnect on next use."""
        for node in self.nodes():
            with contextlib.suppress(Exception):
                node.pool.disconnect()


class ClusterClient:
    """What the backend asks of ``Server.client``, answered by a cluster's masters.

    ``info``/``config_get`` (the eviction check), ``delete`` (of one lock's keys, which
    share a slot) and ``connection_pool.disconnect()``.
    """

    def __init__(self, cluster: ClusterServer) -> None:
        """The client of ``cluster``."""
        self.cluster = cluster

    @property
    def connection_pool(self) -> ClusterClient:
        """Itself: ``disconnect()`` closes every node's connections."""
        return self

    def disconnect(self) -> None:
        """Disconnect every node's connections."""
        self.cluster.close()

    def _masters(self) -> list[_Node]:
        self.cluster.node_for(0)  # reads the map if needed
        return [n for n in dict.fromkeys(self.cluster._slots) if n is not None]  # noqa: SLF001

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` of the master most at risk: one whose policy evicts, else the first."""
        answers = [node.client.info(section) for node in self._masters()]
        for answer in answers:
            if answer.get("maxmemory_policy") not in {None, "noeviction"} and str(
                answer.get("maxmemory")
            ) not in {"0", "None"}:
                return cast("dict[str, Any]", answer)
        return cast("dict[str, Any]", answers[0] if answers else {})

    def config_get(self, pattern: str) -> dict[str, Any]:
        """``CONFIG GET pattern`` of the master most at risk (as `info`)."""
        answers = [node.client.config_get(pattern) for node in self._masters()]
        for answer in answers:
            if answer.get("maxmemory-policy") not in {None, "noeviction"}:
                return cast("dict[str, Any]", answer)
        return cast("dict[str, Any]", answers[0] if answers else {})

    def delete(self, *keys: str) -> int:
        """``DEL`` keys of one slot on its master (following one ``MOVED``)."""
        errors = redis_module().exceptions
        slot = _slot_of(keys[0])
        node = self.cluster.node_for(slot)
        try:
            return int(node.execute("DEL", *keys))
        except errors.MovedError as exc:
            node = self.cluster.moved(exc.slot_id, (exc.host, exc.port), node)
            return int(node.execute("DEL", *keys))


# -- CLUSTER NODES, for doctor ---------------------------------------------------------


class _NodeLine:
    __slots__ = ("address", "failing", "host", "master", "master_id", "node_id", "slots")

    def __init__(self, fields: list[str]) -> None:
        self.node_id = fields[0]
        self.address = fields[1].split("@", 1)[0]
        self.host = self.address.rsplit(":", 1)[0]
        flags = set(fields[2].split(","))
        self.master = "master" in flags
        self.failing = bool(flags & {"fail", "fail?"}) or fields[7] == "disconnected"
        self.master_id = "" if fields[3] == "-" else fields[3]
        self.slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a slot being migrated: still its old master's
            first, _, last = item.partition("-")
            self.slots.append((int(first), int(last or first)))


def _parse_nodes(text: str) -> list[_NodeLine]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and "noaddr" not in fields[2] and "handshake" not in fields[2]:  # noqa: PLR2004
            found.append(_NodeLine(fields))
    return found


def _ranges(slots: list[tuple[int, int]]) -> str:
    if not slots:
        return "none"
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in sorted(slots))


def _state(node: _NodeLine) -> str:
    return " (failing)" if node.failing else ""


def failover_warnings_of(nodes_text: str) -> list[str]:
    """Warnings about a cluster from its ``CLUSTER NODES`` text.

    A master with no working replica (if it fails, its slots and their locks are gone
    until it returns), a failing node, slots no master serves, and a master whose
    replicas all run on its own host (one host failure takes both).
    """
    nodes = _parse_nodes(nodes_text)
    masters = [n for n in nodes if n.master and n.slots]
    warnings = []
    for master in masters:
        replicas = [n for n in nodes if not n.master and n.master_id == master.node_id]
        working = [r for r in replicas if not r.failing]
        where = f"master {master.address} (slots {_ranges(master.slots)})"
        if master.failing:
            warnings.append(f"{where} is failing: its locks cannot be taken or released")
        if not working:
            warnings.append(
                f"{where} has no working replica: if it fails, its slots stay down and "
                "the locks kept there are lost"
            )
        elif all(r.host == master.host for r in working):
            warnings.append(
                f"{where} and its replicas all run on host {master.host}: a failure of "
                "that host takes them all"
            )
    served = sum(last - first + 1 for n in masters for first, last in n.slots)
    if served < SLOTS:
        warnings.append(
            f"{SLOTS - served} of {SLOTS} slots are served by no master: locks whose "
            "names hash there cannot be taken"
        )
    return warnings


# -- listeners: sharded subscriptions on the slot's master -----------------------------


class ClusterListener(Listener):
    """A `._waiter.Listener` subscribed (``SSUBSCRIBE``) to one lock's shard channel.

    Attributes:
        name: The lock whose hash tag its channel carries.
        node: The master it subscribed on.
    """

    __slots__ = ("name", "node")

    def __init__(self, pubsub: Any, channel: str, name: str, node: _Node) -> None:  # noqa: ANN401
        """Wrap ``pubsub``, subscribed to ``channel`` on ``node``."""
        super().__init__(pubsub, channel)
        self.name = name
        self.node = node


class ClusterListeners(Listeners):
    """Idle listeners of a cluster, kept per lock name (a channel belongs to one slot)."""

    def __init__(self, cluster: ClusterServer, prefix: str, confirm_within: float) -> None:
        """Subscribe on ``cluster``'s masters under ``prefix``, confirmed within a bound."""
        super().__init__(cast("Any", cluster), prefix, confirm_within)
        self.cluster = cluster
        self._by_name: dict[str, list[ClusterListener]] = {}
        self._count = 0

    def _reset_if_forked(self) -> None:
        if self._pid != os.getpid():
            self._by_name, self._count, self._pid = {}, 0, os.getpid()

    def take(self, name: str = "") -> Listener:
        """An idle listener for lock ``name``, or a new one (``SSUBSCRIBE``, a round trip).

        Raises redis-py's errors when the master cannot be reached.
        """
        key = f"{self.prefix}{{{name}}}"
        slot = _slot_of(key)
        with self._lock:
            self._reset_if_forked()
            idle = self._by_name.get(name)
            listener = idle.pop() if idle else None
            if listener is not None:
                self._count -= 1
                if not idle:
                    del self._by_name[name]
        if listener is not None:
            if not self.cluster.stale and self.cluster._slots[slot] is listener.node:  # noqa: SLF001
                return listener
            listener.close()  # the slot moved: its subscription ended or will
        errors = redis_module().exceptions
        channel = f"{key}:waiter:{os.urandom(12).hex()}"
        for _ in range(_MAX_REDIRECTS):
            node = self.cluster.node_for(slot)
            pubsub = node.client.pubsub()
            try:
                try:
                    pubsub.ssubscribe(channel)
                    self._confirm(pubsub)
                except errors.ResponseError as exc:
                    raise cluster_error(exc) from None
            except errors.MovedError as exc:
                pubsub.close()
                self.cluster.moved(exc.slot_id, (exc.host, exc.port), node)
                continue
            except BaseException:
                with contextlib.suppress(Exception):
                    pubsub.close()
                raise
            return ClusterListener(pubsub, channel, name, node)
        raise errors.ClusterError(f"slot {slot}: SSUBSCRIBE redirected too often")

    def _confirm(self, pubsub: Any) -> None:  # noqa: ANN401 - a redis-py PubSub
        # Until the master has the subscription, a release's SPUBLISH would skip us.
        # No longer than the acquisition it is taken for may wait (`time_left`).
        left = time_left()
        within = self.confirm_within if left is None else min(self.confirm_within, left)
        confirm_by = time.monotonic() + within
        while (left := confirm_by - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "ssubscribe":
                return

    def has_idle(self, name: str = "") -> bool:
        """Whether `take` would lend an idle listener for ``name`` without a round trip."""
        return bool(self._by_name.get(name)) and self._pid == os.getpid()

    def give_back(self, listener: Listener) -> None:
        """Keep ``listener`` for the next waiter on its lock (or close it, past the bound)."""
        if listener.pid != os.getpid():
            return
        if isinstance(listener, ClusterListener):
            with self._lock:
                if self._pid == listener.pid and self._count < _IDLE_LISTENERS:
                    self._by_name.setdefault(listener.name, []).append(listener)
                    self._count += 1
                    return
        listener.close()

    def close(self) -> None:
        """Close every idle listener."""
        with self._lock:
            idle, self._by_name, self._count = self._by_name, {}, 0
        for listeners in idle.values():
            for listener in listeners:
                listener.close()


# -- the backend -----------------------------------------------------------------------


class RedisClusterBackend(AsyncInThreads, RedisBackend, cluster=True):  # type: ignore[misc]
    """`RedisBackend` over a Redis Cluster (made from a ``redis+cluster://`` URL).

    The same scripts and hand-off, routed per lock to the master of its slot (see the
    module docstring); asyncio callers run the blocking operations in worker threads.
    """

    @classmethod
    def _connect(cls, url: str) -> Server:
        """A `ClusterServer` for the cluster URL."""
        # Duck-typed: a ClusterServer has every attribute of `Server` the backend uses.
        return cast("Server", ClusterServer(url))

    def __init__(self, urls: Any = (), **options: Any) -> None:  # noqa: ANN401
        """As `RedisBackend`, with exactly one cluster URL."""
        super().__init__(urls, **options)
        self.cluster = cast("ClusterServer", self.servers[0])
        self.listeners = [ClusterListeners(self.cluster, self.prefix, self.poll)]

    def keys(self, name: str) -> tuple[str, str, str]:
        """The lock's keys, refused if they would not share one slot (no hash tag)."""
        keys = self._key_cache.get(name)
        if keys is None:
            keys = super().keys(name)
            channel = f"{keys[0]}:waiter:"
            if len({_slot_of(key) for key in (*keys, channel)}) != 1:
                self._key_cache.pop(name, None)
                raise InvalidLockName(
                    f"lock name {name!r} cannot be used in a Redis Cluster: its keys would "
                    "not share a hash slot (a name starting with '}' empties the hash tag)"
                )
        return keys

    _keys = keys

    def close(self) -> None:
        """Close the listeners and every node's connections."""
        super().close()
        self.cluster.close()


def connect(url: str) -> ClusterServer:
    """A `ClusterServer` for ``url`` (no connection is made yet).

    Raises:
        SettingsError: The URL or one of its options is invalid (said without its
            password).
    """
    return ClusterServer(url)
