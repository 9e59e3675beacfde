"""Connections to a Redis server: redis-py loaded on first use, errors, and kept connections.

`connect` builds a `Server` (redis-py pool plus the scripts of `._scripts`); `unavailable`
turns any redis-py error into `BackendUnavailable`. Lua scripts run on a connection each
thread (or event loop) keeps to a Redis server.

Why not ``client.register_script``: a redis-py command checks a connection out of the
pool (a lock, a health-check ``poll`` and ``recv``, metrics hooks) and back in for every
call. On the 2-core VM lockkit is measured on, that cost about 75 µs of CPU per command,
more than sending the command and reading its reply on a kept connection (40-50 µs);
a lock's pair is two commands. A thread here keeps the
connection it checked out, and checks it only after it sat idle (`IDLE_CHECK`), when
the server may have closed it.

**Deadlines.** Every connection lockkit makes is of a `bounded_class`: while an
acquisition is in progress (`lockkit._deadline`), its socket timeouts are cut to the
time left until that acquisition's deadline plus `GRACE`, whatever redis-py does with
it (connecting, its handshake, a script, ``INFO``, a subscription); past that, no
command is sent at all. The URL's ``socket_timeout`` and ``socket_connect_timeout``
stay the upper bound, and the only bound of calls made for nobody's acquisition (a
release, a renewal).

It also decides retries, which lock scripts must not get blindly: a compare-and-delete
or ``SET NX`` run twice answers wrongly the second time. A command is re-sent only when
sending it failed, so the server never got it whole (a connection that went stale
between the idle checks); a failure while reading the reply raises, as a redis-py pool
built from a URL does (it has no retries; ``redis.Redis(host=...)`` would retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import math
import os
import re
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import attrs

from lockkit._deadline import ACQUIRING
from lockkit._redact import redact_url
from lockkit.backends.redis import _scripts, _sentinel
from lockkit.errors import BackendUnavailable, SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CLUSTER_SCHEMES",
    "GRACE",
    "IDLE_CHECK",
    "READ_AT_LEAST",
    "TOO_LATE",
    "AsyncScript",
    "LoopConnections",
    "Script",
    "Server",
    "ThreadConnection",
    "bounded_class",
    "check_timeouts",
    "connect",
    "eviction_warning",
    "import_redis",
    "is_cluster_url",
    "pack_command",
    "time_left",
    "unavailable",
    "wait_replicas_on",
]

IDLE_CHECK = 0.1
"""Seconds a kept connection may sit idle before it is checked for a close by the server."""


GRACE = 1.0
"""Seconds a Redis call made for an acquisition may run past the acquisition's deadline.

An attempt begun just before the deadline must be able to finish its round trip: cut
off after the server ran its script, it would leave a lock nobody knows it holds until
the key expires. One second covers a connection, its handshake and a few round trips
to a server that answers (a ``timeout=0`` acquisition gets that much in all), and
bounds what a server that stopped answering costs beyond the caller's timeout.
"""

TOO_LATE = "no answer within the acquisition's timeout"
"""What a command refused for lack of time says (`_too_late`): it tells nothing of the
server, so an earlier failure explains more."""

_SHORTEST = 0.001
"""Socket timeout when the time is up (0 would make the socket non-blocking)."""


def time_left() -> float | None:
    """Seconds the current acquisition's Redis calls may still take; ``None``: no limit."""
    deadline = ACQUIRING.get()
    if deadline == math.inf:
        return None
    return deadline + GRACE - time.monotonic()


READ_AT_LEAST: contextvars.ContextVar[float] = contextvars.ContextVar(
    "lockkit_redis_read_at_least", default=0.0
)
"""A reply that takes this long by design (``WAIT``'s timeout, plus a margin) may take it
even if the URL's ``socket_timeout`` is shorter; the acquisition's time left still cuts
it (`Server.wait_replicas`)."""


def _within(configured: float | None) -> float | None:
    """``configured`` (a URL's socket timeout), cut to the acquisition's time left."""
    at_least = READ_AT_LEAST.get()
    if configured is not None and at_least > configured:
        configured = at_least
    left = time_left()
    if left is None:
        return configured
    left = max(left, _SHORTEST)
    return left if configured is None else min(configured, left)


def _too_late() -> None:
    """Refuse to send a command once the acquisition's time (and `GRACE`) is up.

    A lock script sent now could take the lock after its caller gave up.
    """
    left = time_left()
    if left is not None and left <= 0:
        raise _errors().TimeoutError(TOO_LATE)


class _Bounded:
    """Socket timeouts cut to `time_left`; mixed in before a redis-py connection class."""

    _socket_timeout: float | None
    _socket_connect_timeout: float | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - redis-py's
        # What redis-py records as "original" timeouts are the URL's, not this call's.
        unbounded = ACQUIRING.set(math.inf)
        try:
            super().__init__(*args, **kwargs)
        finally:
            ACQUIRING.reset(unbounded)

    @property
    def socket_timeout(self) -> float | None:
        """The URL's socket timeout, cut to the current acquisition's time left."""
        return _within(self._socket_timeout)

    @socket_timeout.setter
    def socket_timeout(self, value: float | None) -> None:
        self._socket_timeout = value

    @property
    def socket_connect_timeout(self) -> float | None:
        """The URL's connect timeout, cut to the current acquisition's time left."""
        return _within(self._socket_connect_timeout)

    @socket_connect_timeout.setter
    def socket_connect_timeout(self, value: float | None) -> None:
        self._socket_connect_timeout = value


class _SyncBounded(_Bounded):
    """A blocking connection: its socket's timeout is set before each send and read."""

    _sock: Any

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:  # noqa: ANN401, FBT001, FBT002 - redis-py's signature
        _too_late()
        self._bound_socket()
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - redis-py's
        self._bound_socket()
        return super().read_response(*args, **kwargs)  # type: ignore[misc]

    def _bound_socket(self) -> None:
        # Set when it connected, perhaps cut for an acquisition since: set it afresh
        # (a system call: not when it is what the socket has already).
        sock = self._sock
        if sock is not None:
            timeout = self.socket_timeout
            if sock.gettimeout() != timeout:
                sock.settimeout(timeout)


class _AsyncBounded(_Bounded):
    """An asyncio connection: redis-py reads ``socket_timeout`` for every read itself."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:  # noqa: ANN401, FBT001, FBT002 - redis-py's signature
        _too_late()
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


_BOUNDED: dict[type[Any], type[Any]] = {}


def bounded_class(base: type[Any]) -> type[Any]:
    """``base`` (a redis-py connection class) with its timeouts cut by the acquisition.

    ``socket_timeout`` and ``socket_connect_timeout`` become what the URL says cut to
    `time_left`: redis-py reads them when it connects and (asyncio) for every read; the
    blocking class also sets its socket's timeout before each send and read. Past the
    acquisition's time, nothing is sent.
    """
    found = _BOUNDED.get(base)
    if found is None:
        mixin = _AsyncBounded if base.__module__.startswith("redis.asyncio") else _SyncBounded
        found = _BOUNDED[base] = type(f"Bounded{base.__name__}", (mixin, base), {})
    return found


class _Held:
    """A connection this thread checked out of the pool, returned when the thread ends."""

    __slots__ = ("conn", "pid", "pool", "used")

    def __init__(self, pool: Any, conn: Any) -> None:  # noqa: ANN401 - redis-py objects
        self.pool = pool
        self.conn = conn
        self.pid = os.getpid()
        self.used = time.monotonic()

    def give_back(self) -> None:
        """Return the connection to the pool, once, and in its own process only.

        Once: the pool may hand it to another thread right away, and a second release
        would mark it free while that thread uses it (two threads on one socket).
        """
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            self.pool.release(conn)

    def __del__(self) -> None:
        """The thread ended (its locals are dropped): the connection goes back to the pool."""
        # At thread or interpreter exit there is nobody to tell about a failure.
        with contextlib.suppress(Exception):
            self.give_back()


class ThreadConnection(threading.local):
    """Each thread's own connection to one server, taken from the server's pool."""

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - a redis-py ConnectionPool
        """Args: pool: the server's redis-py connection pool."""
        self.pool = pool
        self.held: _Held | None = None

    def execute(self, *args: str | bytes | int) -> Any:  # noqa: ANN401 - a raw RESP reply
        """Send one command and read its reply on this thread's connection.

        Strings are sent as UTF-8 whatever the URL's ``encoding``: lockkit reads back
        what it wrote, so it packs both ways itself.

        Raises redis-py's errors: a ``ResponseError`` for an error reply (the connection
        stays usable), ``ConnectionError``/``TimeoutError`` when the server cannot be
        reached (the connection is dropped).
        """
        packed = pack_command(args)
        held = self._connection()
        conn = held.conn
        try:
            try:
                conn.send_packed_command([packed])
            except (OSError, _errors().ConnectionError):
                # Nothing reached the server whole: safe to send again on a fresh one.
                self._drop()
                held = self._connection()
                conn = held.conn
                conn.send_packed_command([packed])
            reply = conn.read_response()
        except _errors().ResponseError:
            held.used = time.monotonic()
            raise
        except BaseException:
            # A reply may be left unread (timeout, interrupt): never reuse the connection.
            self._drop()
            raise
        held.used = time.monotonic()
        return reply

    def _connection(self) -> _Held:
        held = self.held
        if held is not None:
            if held.pid != os.getpid():
                held = self.held = None  # a forked child: the parent's socket is not ours
            elif time.monotonic() - held.used > IDLE_CHECK:
                _reconnect_if_closed(held.conn)
        if held is None:
            held = self.held = _Held(self.pool, self.pool.get_connection())
            # It may have waited in the pool since a thread that ended gave it back.
            _reconnect_if_closed(held.conn)
        return held

    def _drop(self) -> None:
        held, self.held = self.held, None
        if held is not None and held.conn is not None:
            try:
                held.conn.disconnect()
            finally:
                held.give_back()


def _reconnect_if_closed(conn: Any) -> None:  # noqa: ANN401 - a redis-py Connection
    """Disconnect an idle connection the server closed meanwhile; the next send reconnects.

    The server may have restarted, or a proxy dropped the idle connection. Nothing can
    be pending on a connection between commands, so data or end-of-file means it is
    dead. (redis-py 8's asyncio pool misses such a close when RESP3 maintenance
    notifications are on, its default; lockkit checks for itself on both sides.)
    """
    try:
        closed = conn.can_read(timeout=0)
    except (OSError, _errors().ConnectionError):
        closed = True
    if closed:
        conn.disconnect()


async def _reconnect_if_closed_async(conn: Any) -> None:  # noqa: ANN401 - an asyncio Connection
    """`_reconnect_if_closed` on the event loop's stream."""
    # redis-py 8 has `can_read`; before it, `can_read_destructive` (deprecated in 8).
    can_read = getattr(conn, "can_read", None) or conn.can_read_destructive
    try:
        closed = await can_read()
    except (OSError, _errors().ConnectionError):
        closed = True
    if closed:
        await conn.disconnect()


def pack_command(args: tuple[str | bytes | int, ...]) -> bytes:
    """One command in the Redis protocol (RESP), strings as UTF-8.

    redis-py's packer runs its encoder per argument (about a fifth of a lock's CPU on
    the machine measured); lock commands are a few short strings and one number.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _sha_of(script: Script | AsyncScript) -> str:
    """The SHA1 that ``EVALSHA`` names the script by."""
    return hashlib.sha1(script.text.encode(), usedforsecurity=False).hexdigest()


def _errors() -> Any:  # noqa: ANN401 - redis.exceptions
    import redis.exceptions

    return redis.exceptions


@attrs.frozen
class Script:
    """A Lua script run by ``EVALSHA`` on the calling thread's `ThreadConnection`.

    Called like redis-py's ``Script``: ``script(keys, args)``; loaded on first use (and
    again after the server restarted or its script cache was flushed).
    """

    text: str = attrs.field(repr=False)
    connection: ThreadConnection = attrs.field(repr=False, eq=False)
    sha: str = attrs.field(init=False, default=attrs.Factory(_sha_of, takes_self=True))

    def __call__(self, keys: list[str] | tuple[str, ...], args: list[Any]) -> Any:  # noqa: ANN401
        """Run the script with ``KEYS`` and ``ARGV``; returns the raw reply."""
        try:
            return self.connection.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except _errors().NoScriptError:
            self.connection.execute("SCRIPT", "LOAD", self.text)
            return self.connection.execute("EVALSHA", self.sha, len(keys), *keys, *args)


class LoopConnections:
    """The connections of one event loop, kept out of the pool between commands.

    The asyncio counterpart of `ThreadConnection`: tasks of a loop run commands side by
    side, so it keeps a stack of idle connections rather than one. The most recently
    used is taken first; one idle longer than `IDLE_CHECK` is checked first. A command
    interrupted before its reply was read (the loop shutting down) closes its
    connection: a late reply must never reach the next command.
    """

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - a redis.asyncio ConnectionPool
        """Args: pool: the loop's ``redis.asyncio`` connection pool."""
        self.pool = pool
        self.idle: list[tuple[Any, float]] = []

    async def execute(self, *args: str | bytes | int) -> Any:  # noqa: ANN401 - a raw reply
        """Send one command and read its reply (see `ThreadConnection.execute`)."""
        packed = pack_command(args)
        conn: Any = await self._take()
        try:
            try:
                await conn.send_packed_command([packed])
            except (OSError, _errors().ConnectionError):
                # Nothing reached the server whole: safe to send again on a fresh one.
                # (Given back once only: the pool may hand it out again at once.)
                stale, conn = conn, None
                await self._discard(stale)
                conn = await self.pool.get_connection()
                await conn.send_packed_command([packed])
            reply = await conn.read_response()
        except _errors().ResponseError:
            if conn is not None:
                self.idle.append((conn, time.monotonic()))
            raise
        except BaseException:
            if conn is not None:
                # Shielded: a second cancellation must not leave the socket for reuse.
                await asyncio.shield(self._discard(conn))
            raise
        self.idle.append((conn, time.monotonic()))
        return reply

    async def _take(self) -> Any:  # noqa: ANN401 - a redis.asyncio Connection
        if not self.idle:
            return await self.pool.get_connection()
        conn, used = self.idle.pop()
        if time.monotonic() - used > IDLE_CHECK:
            try:
                await _reconnect_if_closed_async(conn)
            except BaseException:
                await asyncio.shield(self._discard(conn))  # not lost if cancelled here
                raise
        return conn

    async def _discard(self, conn: Any) -> None:  # noqa: ANN401
        try:
            await conn.disconnect(nowait=True)
        finally:
            await self.pool.release(conn)

    async def close(self) -> None:
        """Give every idle connection back to the pool (which the caller then closes)."""
        idle, self.idle = self.idle, []
        for conn, _ in idle:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)


@attrs.frozen
class AsyncScript:
    """A Lua script run by ``EVALSHA`` on a connection of the loop's `LoopConnections`.

    Called like redis-py's asyncio ``Script``: ``await script(keys=..., args=...)``.
    """

    text: str = attrs.field(repr=False)
    connections: LoopConnections = attrs.field(repr=False, eq=False)
    sha: str = attrs.field(init=False, default=attrs.Factory(_sha_of, takes_self=True))

    async def __call__(self, keys: list[str] | tuple[str, ...], args: list[Any]) -> Any:  # noqa: ANN401
        """Run the script with ``KEYS`` and ``ARGV``; returns the raw reply."""
        try:
            return await self.connections.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except _errors().NoScriptError:
            await self.connections.execute("SCRIPT", "LOAD", self.text)
            return await self.connections.execute("EVALSHA", self.sha, len(keys), *keys, *args)


# -- servers -------------------------------------------------------------------------

_redis_module: Any = None


def redis_module() -> Any:  # noqa: ANN401 - the module, typed at the use sites
    """redis-py, imported on first use (`BackendUnavailable` when it is not installed)."""
    return _redis_module or import_redis()


def import_redis() -> Any:  # noqa: ANN401 - the module, typed at the use sites
    global _redis_module  # noqa: PLW0603 - imported once, on first use
    if _redis_module is None:
        try:
            import redis  # imported only when this backend is used
        except ImportError:
            raise BackendUnavailable(
                "the redis backend needs redis-py: pip install 'lockkit[redis]'"
            ) from None
        _redis_module = redis
    return _redis_module


# redis-py quotes a whole client (a kilobyte of connection options) for each sentinel
# in a ``MasterNotFoundError``: ``<redis.client.Redis(<...ConnectionPool(<...(...,
# host=H,port=P,...)>)>)>``. Shown as ``sentinel H:P``.
_CLIENT_REPR = re.compile(
    r"<redis\.(?:asyncio\.)?client\.Redis\(.*?\bhost=([^,]*),port=(\d+),.*?\)>\)>\)>"
)
_LONGEST_DETAIL = 1000
"""Characters of a redis-py message an error quotes (a URL may name 10,000 sentinels)."""


def _detail(exc: BaseException) -> str:
    """redis-py's message, its client reprs shortened, cut to `_LONGEST_DETAIL`."""
    text = str(exc)[: 100 * _LONGEST_DETAIL]
    text = _CLIENT_REPR.sub(r"sentinel \1:\2", text)
    if len(text) > _LONGEST_DETAIL:
        text = text[:_LONGEST_DETAIL] + "... (cut)"
    return redact_url(text) or type(exc).__name__


def unavailable(shown: str, exc: BaseException) -> BackendUnavailable:
    """The `BackendUnavailable` that a redis-py error on the server ``shown`` becomes.

    One place for the blocking and asyncio sides, so every redis-py exception leaves a
    public call as a `lockkit.LockError` with a message that says what to do.
    """
    errors = redis_module().exceptions
    detail = _detail(exc)

    def kind(name: str) -> type[BaseException]:
        found: type[BaseException] = getattr(errors, name, type(None))  # type: ignore[arg-type]
        return found

    if isinstance(exc, kind("OutOfMemoryError")):
        message = (
            f"Redis at {shown} is out of memory: it is over its maxmemory and, with the "
            "noeviction policy, refuses writes, so locks cannot be taken or renewed. Free "
            "memory, raise maxmemory, or keep locks on a server of their own"
        )
    elif isinstance(exc, kind("ReadOnlyError")):
        message = f"Redis at {shown} is a read-only replica: give lockkit the master's URL"
    elif isinstance(exc, kind("BusyLoadingError")):
        message = f"Redis at {shown} is loading its dataset; try again when it is done"
    elif isinstance(exc, kind("NoPermissionError")):
        message = (
            f"the Redis user at {shown} may not run what lockkit needs (EVALSHA, SCRIPT "
            "LOAD, GET, PTTL, ZRANGE, TIME, DEL, SUBSCRIBE, PUBLISH on its keys and channels; "
            "in a cluster also CLUSTER SLOTS, ASKING, SSUBSCRIBE, SPUBLISH)"
        )
    elif type(exc).__name__ == "MasterNotFoundError":  # redis.sentinel's, or asyncio's
        message = (
            f"no sentinel of {shown} names a primary for its service: check that the "
            "sentinels run and monitor that name (SENTINEL MASTERS lists what they do)"
        )
    elif str(exc) == "The previous master is now a slave":  # redis.sentinel's READONLY
        message = (
            f"the sentinels of {shown} name as the primary a server that is a replica: a "
            "failover under way, or a sentinel that monitors a replica (check `sentinel "
            "monitor` and SENTINEL MASTERS)"
        )
    elif isinstance(exc, (errors.ConnectionError, errors.TimeoutError, OSError)):
        message = f"cannot reach Redis at {shown}"
    elif isinstance(exc, errors.ResponseError):
        message = f"Redis at {shown} answered with an error"
    else:
        message = f"Redis at {shown} failed ({type(exc).__name__})"
    return BackendUnavailable(f"{message}: {detail}")


def eviction_warning(server: Server) -> str | None:
    """Why ``server`` may drop lock keys on its own (its eviction policy), or ``None``.

    Read from ``INFO memory``, else ``CONFIG GET`` (either may be disabled or denied:
    then nothing is known and nothing is said). Any policy but ``noeviction`` lets a
    server that reaches ``maxmemory`` delete keys: ``volatile-*`` those with a TTL, which
    every lock key has, ``allkeys-*`` any, fencing counters included.
    """
    redis = redis_module()
    policy = limit = None
    down = (redis.ConnectionError, redis.TimeoutError, OSError)
    try:
        info = server.client.info("memory")
        policy, limit = info.get("maxmemory_policy"), info.get("maxmemory")
    except down as exc:
        raise unavailable(server.shown, exc) from None
    except redis.RedisError:
        pass  # INFO renamed away or denied to this user: try CONFIG GET
    if policy is None:
        try:
            config = server.client.config_get("maxmemory*")
            policy, limit = config.get("maxmemory-policy"), config.get("maxmemory")
        except down as exc:
            raise unavailable(server.shown, exc) from None
        except redis.RedisError:
            return None  # neither is allowed: nothing known, nothing said
    if isinstance(policy, bytes):
        policy = policy.decode(errors="replace")
    if policy in (None, "noeviction") or str(limit) == "0":
        return None  # no maxmemory (0): nothing is ever evicted
    dropped = (
        "any key, fencing counters included"
        if "allkeys" in str(policy)
        else ("keys with a TTL, which every lock key has")
    )
    return (
        f"Redis at {server.shown} evicts keys when it reaches maxmemory "
        f"(maxmemory-policy {policy}): it may delete {dropped}, so a held lock can vanish "
        "(two holders) and fencing tokens can restart. Use maxmemory-policy noeviction "
        "(lockkit then reports the server out of memory instead), or a server of its own "
        "for locks"
    )


@attrs.frozen
class Server:
    """One Redis server: its pool (shared by every lock of the process) and scripts."""

    url: str = attrs.field(repr=redact_url)
    client: Any = attrs.field(repr=False)
    acquire: Script = attrs.field(repr=False)
    acquire_queued: Script = attrs.field(repr=False)
    release: Script = attrs.field(repr=False)
    refresh: Script = attrs.field(repr=False)
    fence: Script = attrs.field(repr=False)
    inspect: Script = attrs.field(repr=False)
    break_: Script = attrs.field(repr=False)
    enqueue: Script = attrs.field(repr=False)
    leave: Script = attrs.field(repr=False)
    acquire_shared: Script = attrs.field(repr=False)
    release_shared: Script = attrs.field(repr=False)
    refresh_shared: Script = attrs.field(repr=False)
    sentinel: _sentinel.Topology | None = attrs.field(default=None, repr=False)
    """The sentinels that find the primary (``redis+sentinel://``), else None."""

    @property
    def shown(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)

    @property
    def follows_failover(self) -> bool:
        """Whether a command that met a failover is re-run (`._sentinel.transient`)."""
        return self.sentinel is not None

    def wait_replicas(self, key: str, replicas: int, timeout_ms: int) -> int:  # noqa: ARG002 - one server holds every key
        """``WAIT replicas timeout_ms`` on this thread's connection.

        Returns how many replicas acknowledged every write this connection made so far
        (the lock scripts' among them).
        """
        return wait_replicas_on(self.acquire.connection.execute, replicas, timeout_ms)


def wait_replicas_on(execute: Callable[..., Any], replicas: int, timeout_ms: int) -> int:
    """``WAIT replicas timeout_ms`` through ``execute``, one connection's command.

    Returns how many replicas acknowledged that connection's writes. Its reply may
    take ``timeout_ms`` even if the URL's ``socket_timeout`` is shorter
    (`READ_AT_LEAST`); the acquisition's time left still cuts it.
    """
    longer = READ_AT_LEAST.set(timeout_ms / 1000 + GRACE)
    try:
        return int(execute("WAIT", replicas, timeout_ms))
    finally:
        READ_AT_LEAST.reset(longer)


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes of a Redis Cluster (``rediss+cluster``: TLS); see `._cluster`."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (its scheme is one of `CLUSTER_SCHEMES`)."""
    return url.lstrip().lower().startswith(("redis+cluster://", "rediss+cluster://"))


def check_timeouts(url: str, options: dict[str, Any]) -> None:
    """Refuse socket timeouts a socket cannot take (NaN, 0, negative, infinite).

    redis-py takes any number from a URL; the socket refused it only at the first
    command (0 made it non-blocking).
    """
    for key in ("socket_timeout", "socket_connect_timeout"):
        value = options.get(key)
        if value is not None and not (0 < value <= threading.TIMEOUT_MAX):
            raise SettingsError(
                f"invalid Redis URL {redact_url(url)}: {key}={value!r} is not a timeout, "
                "give a positive number of seconds"
            )


def connect(url: str) -> Server:
    """A `Server` for ``url`` (no connection is made yet).

    A Redis Cluster URL (``redis+cluster://``, ``rediss+cluster://``) is refused:
    `._cluster.connect` makes its `._cluster.ClusterServer` (this module does not
    import that one, which imports it).

    Raises:
        SettingsError: The URL or one of its options is invalid (said without its
            password).
    """
    if is_cluster_url(url):
        raise SettingsError(
            f"{redact_url(url)} is a Redis Cluster URL: connect to it through "
            "lockkit.backends.redis._cluster.connect (RedisBackend.from_url does)"
        )
    redis = redis_module()
    options: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
    userinfo = url.rfind("@") >= 0
    sentinel = None
    try:
        if _sentinel.is_sentinel_url(url):
            pool, sentinel = _sentinel.sync_pool(url, bounded_class, options)
            pool.connection_class(**pool.connection_kwargs)  # a wrong option: said now
        elif userinfo and "@" not in urllib.parse.urlsplit(url).netloc:
            # An unencoded "/", "?" or "#" in the password ends the authority early:
            # redis-py would take the rest of the password for a path or options.
            raise ValueError("the user name or password holds an unencoded character")  # noqa: TRY301
        else:
            pool = redis.ConnectionPool.from_url(url, **options)
            pool.connection_class = bounded_class(pool.connection_class)
            # Options go to the connection class: build one (it does not connect yet),
            # so a wrong option is reported here, not as a TypeError at first use.
            pool.connection_class(**pool.connection_kwargs)
        check_timeouts(url, pool.connection_kwargs)
    except SettingsError:
        raise  # said already, without the password
    except (ValueError, TypeError, redis.RedisError) as exc:
        # (redis-py raises a ConnectionError for a bad ``protocol=``.)
        # redis-py's message may quote a piece of the password (a port "cast to
        # integer" that is half of it): with userinfo in the URL, it is not shown.
        reason = str(exc)
        if userinfo or "%40" in url:
            reason = (
                "it cannot be parsed; percent-encode special characters in the user "
                "name and password (@ as %40, / as %2F, # as %23, ? as %3F, : as %3A)"
            )
        raise SettingsError(f"invalid Redis URL {redact_url(url)}: {reason}") from None
    client = redis.Redis(connection_pool=pool)
    # Scripts run on a connection each thread keeps (see the module docstring for why).
    connection = ThreadConnection(pool)
    return Server(
        url=url,
        client=client,
        acquire=Script(_scripts.ACQUIRE, connection),
        acquire_queued=Script(_scripts.ACQUIRE_QUEUED, connection),
        release=Script(_scripts.RELEASE, connection),
        refresh=Script(_scripts.REFRESH, connection),
        fence=Script(_scripts.FENCE, connection),
        inspect=Script(_scripts.INSPECT, connection),
        break_=Script(_scripts.BREAK, connection),
        enqueue=Script(_scripts.ENQUEUE, connection),
        leave=Script(_scripts.LEAVE, connection),
        acquire_shared=Script(_scripts.ACQUIRE_SHARED, connection),
        release_shared=Script(_scripts.RELEASE_SHARED, connection),
        refresh_shared=Script(_scripts.REFRESH_SHARED, connection),
        sentinel=sentinel,
    )
