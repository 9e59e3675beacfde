"""A lockkit backend plugin: PostgreSQL session advisory locks (``postgresql://...``).

Select it with ``LOCKKIT_URL=postgresql://user@db.example/app`` (``postgres://`` works
too). Each held lock is a *session* advisory lock (``pg_try_advisory_lock``) on its own
connection, so the server frees it the moment the holder's session ends: a holder
killed with SIGKILL, a crashed host (once TCP notices), a server restart.

**Key.** A lock name maps to the 64-bit advisory key made of the first 8 bytes of
``blake2b(namespace NUL name)``. Distinct names collide with probability about
``n**2 / 2**65`` for ``n`` names in one namespace (1 in 36 million for a million
names); a collision makes two names exclude each other, never lets two holders in.
The namespace (``?namespace=``, default ``lockkit``) keeps applications that share a
database apart: give each its own.

**Holder rows.** Advisory locks carry no data, so the holder also writes a row in
``lockkit_holders`` in the same session and statement: who it is (the `lockkit.Owner`
fields), its fencing token, a version, the expiry of its lease, and its session's
backend pid and start time. `PostgresBackend.inspect` trusts a row only while that
very session holds the advisory lock (joined with ``pg_locks`` and
``pg_stat_activity``), so rows left by dead sessions are never reported.

**Fencing.** Every acquisition sets ``lockkit_fences.n`` to
``GREATEST(n + 1, clock microseconds)`` in the statement that records the holder,
while holding the lock, and commits it before the lease is returned. Tokens strictly
increase across holders and server restarts (the row is WAL-logged, and the session
forces ``synchronous_commit=on``), and the clock floor keeps them increasing even when
a failover to an asynchronous replica loses the last commits, unless the new primary's
clock is behind by more than the lost stretch.

**Waiting.** A waiter blocks in ``pg_advisory_lock`` on a connection of its own with
``lock_timeout`` set to the caller's remaining time, so PostgreSQL's lock queue wakes
it (first come, first served) the moment the lock is released or its holder's session
dies. The lock it obtains is handed to the caller's next attempt, which only records
the holder. A client-side watchdog cuts the connection shortly after the deadline if
the server does not answer at all (a frozen server).

**Loss.** A lease lasts ``ttl`` seconds (the lock's ``ttl``, else ``?ttl=``, default
30) and the core renews it every ``ttl / 3``. A renewal runs on the holding
connection and proves that this session still holds the advisory lock; a broken
connection (server restart, terminated session) or no answer before the lease ends
(a frozen server) makes the lock *lost*: ``Lock.is_held()`` turns false and
``on_lost`` fires, and the connection is closed so that the server frees the lock as
soon as it can. Others see the lease's expiry: a holder that stops renewing (a paused
process, a host behind a half-open TCP connection) is judged stale when it expires,
and `PostgresBackend.break_lock` terminates exactly that session with
``pg_terminate_backend``, so the next holder gets a higher fencing token and the old
one learns of its loss at its next renewal.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import socket
import threading
import time
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Self

from lockkit import Lease, LockInfo, Owner
from lockkit._redact import redact_text, redact_url
from lockkit.errors import BackendUnavailable, InvalidLockName, SettingsError
from lockkit.spec import Backend, Capabilities, Support, Waiter, hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DEFAULT_TTL", "PostgresBackend", "lock_key", "lockkit_register_backends"]

__version__ = "0.1.0"

log = logging.getLogger("lockkit")

DEFAULT_TTL = 30.0
"""Seconds a lease lives without renewal when the lock has no ``ttl`` of its own."""
DEFAULT_NAMESPACE = "lockkit"
"""The namespace of keys when the URL names none."""
DEFAULT_TIMEOUT = 10.0
"""Seconds one statement may take before the server counts as unresponsive."""
DEFAULT_CONNECT_TIMEOUT = 5
"""libpq's ``connect_timeout`` when the URL sets none (whole seconds, at least 2)."""
_IDENTITY_PARTS = 2  # (fence, version)
MAX_IDLE = 8
"""Idle connections kept per URL; more are closed when given back."""

# Options lockkit reads from the URL query; everything else goes to libpq.
_OUR_OPTIONS = ("namespace", "ttl", "timeout", "root")

# Session settings of every lockkit connection, sent in the startup packet. Holding a
# lock means sitting idle in a session: no idle or statement timeout may end it, and
# lock waits are bounded per wait. Server-side TCP keepalives end the session of a
# holder whose host vanished (half-open TCP) after about 10 + 3 * 5 s, where the
# server's own defaults (the OS's, often 2 hours) would keep its lock; commits are
# synchronous so that a fencing token handed out is on disk.
_SESSION = {
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_session_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "synchronous_commit": "on",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
# The same on the client side, so a client notices a vanished server (host down,
# network cut) instead of waiting on a dead TCP connection.
_CLIENT = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "application_name": "lockkit",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lockkit_holders (
    namespace text NOT NULL,
    key bigint NOT NULL,
    token text NOT NULL,
    name text NOT NULL,
    shared boolean NOT NULL,
    session_pid integer NOT NULL,
    session_start timestamptz NOT NULL,
    pid integer NOT NULL,
    host text NOT NULL,
    boot_id text NOT NULL,
    pid_ns bigint,
    start_time bigint,
    created timestamptz NOT NULL,
    expires timestamptz NOT NULL,
    fence bigint NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (namespace, key, token)
);
CREATE TABLE IF NOT EXISTS lockkit_fences (
    namespace text NOT NULL,
    key bigint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""

# The advisory lock on a bigint key as pg_locks shows it: the high and low 32 bits in
# classid and objid, objsubid 1 (the two-int4 form uses 2), in this database.
_HELD_BY = """
    l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid = %(hi)s::bigint::oid AND l.objid = %(lo)s::bigint::oid
"""

# One statement, so one implicit transaction: take the lock ({lock} is the try-lock
# call, or TRUE when a waiter already holds it), and only if it was taken drop rows of
# sessions that no longer hold the key, advance the fence and record the holder. A
# failure anywhere leaves the session possibly holding the lock: the caller then
# closes the connection, which frees it.
_CLAIM = (
    """
WITH got AS MATERIALIZED (SELECT {lock} AS ok),
gone AS (
    DELETE FROM lockkit_holders h USING got
    WHERE got.ok AND h.namespace = %(ns)s AND h.key = %(key)s
      AND (NOT %(shared)s OR NOT EXISTS (
          SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.pid = h.session_pid AND a.backend_start = h.session_start AND """
    + _HELD_BY
    + """))
),
fence AS (
    INSERT INTO lockkit_fences AS f (namespace, key, n)
    SELECT %(ns)s, %(key)s, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
    FROM got WHERE got.ok
    ON CONFLICT (namespace, key) DO UPDATE SET n = GREATEST(f.n + 1, EXCLUDED.n)
    RETURNING n
)
INSERT INTO lockkit_holders AS h (
    namespace, key, token, name, shared, session_pid, session_start, pid, host, boot_id,
    pid_ns, start_time, created, expires, fence, version)
SELECT %(ns)s, %(key)s, %(token)s, %(name)s, %(shared)s, pg_backend_pid(),
    (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
    %(pid)s, %(host)s, %(boot_id)s, %(pid_ns)s, %(start_time)s, clock_timestamp(),
    clock_timestamp() + make_interval(secs => %(ttl)s), fence.n, 0
FROM fence
RETURNING h.fence, h.session_pid
"""
)

_RELEASE = """
WITH gone AS (
    DELETE FROM lockkit_holders
    WHERE namespace = %(ns)s AND key = %(key)s AND token = %(token)s
      AND session_pid = pg_backend_pid()
    RETURNING 1
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM gone) THEN {unlock}(%(key)s) ELSE FALSE END,
    pg_backend_pid()
"""

_REFRESH = (
    """
UPDATE lockkit_holders
SET expires = clock_timestamp() + make_interval(secs => %(ttl)s), version = version + 1
WHERE namespace = %(ns)s AND key = %(key)s AND token = %(token)s
  AND session_pid = pg_backend_pid()
  AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND """
    + _HELD_BY
    + """)
RETURNING version
"""
)

# Every session holding the key, with its holder row when the row is that session's.
_INSPECT = (
    """
SELECT l.pid, l.mode, h.token, h.pid, h.host, h.boot_id, h.pid_ns, h.start_time,
    h.created, extract(epoch FROM h.expires - clock_timestamp())::float8,
    extract(epoch FROM clock_timestamp() - h.created)::float8, h.fence, h.version,
    extract(epoch FROM clock_timestamp() - a.backend_start)::float8
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN lockkit_holders h ON h.namespace = %(ns)s AND h.key = %(key)s
    AND h.session_pid = l.pid AND h.session_start = a.backend_start
WHERE """
    + _HELD_BY
    + """
ORDER BY h.fence NULLS LAST, l.pid
"""
)

# Terminate the holding session only while it is exactly the holding judged stale:
# same token, fence and version, same session, still holding the key. The row is
# locked first, so a renewal either committed before (the version differs: nothing is
# broken) or waits and dies with the session.
_BREAK_FIND = (
    """
SELECT h.session_pid FROM lockkit_holders h
JOIN pg_stat_activity a ON a.pid = h.session_pid AND a.backend_start = h.session_start
WHERE h.namespace = %(ns)s AND h.key = %(key)s AND h.token = %(token)s
  AND h.fence = %(fence)s AND h.version = %(version)s
  AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = h.session_pid AND """
    + _HELD_BY
    + """)
FOR UPDATE OF h
"""
)
_BREAK = (
    "SELECT pg_terminate_backend(found.session_pid, %(wait_ms)s) FROM (" + _BREAK_FIND + ") found"
)


# What `PostgresWaiter.wait` sends: the lock timeout is the caller's remaining time or
# the live holder's remaining lease, whichever ends first (at least 50 ms, so an expired
# holder that is being broken does not make waiters spin).
_WAIT = (
    """SELECT set_config('lock_timeout', LEAST({ms}, GREATEST(50, COALESCE((
    SELECT min(ceil(extract(epoch FROM h.expires - clock_timestamp()) * 1000))::bigint + 50
    FROM lockkit_holders h JOIN pg_locks l ON l.pid = h.session_pid
    WHERE h.key = ({key}) AND """
    + _HELD_BY.replace("%(hi)s", "(({key}) >> 32) & 4294967295").replace(
        "%(lo)s", "({key}) & 4294967295"
    )
    + """), {ms})))::text, false);
SELECT {lock}(({key})); SET lock_timeout = 0"""
)


def lock_key(namespace: str, name: str) -> int:
    """The signed 64-bit advisory key of lock ``name`` in ``namespace``."""
    digest = hashlib.blake2b(f"{namespace}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_SCHEMA_KEY = lock_key("lockkit-internal", "schema")


def _psycopg() -> Any:  # noqa: ANN401 - the module, imported only when a lock is used
    import psycopg  # noqa: PLC0415 - keeps `lockkit backends` from importing libpq

    return psycopg


def _utc_in(seconds: float | None) -> dt.datetime | None:
    if seconds is None:
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


# Connections a forked child inherited from its parent: never used, never closed (a
# close would end the parent's session, and with it the parent's locks), and kept
# referenced so that no finalizer touches them either.
_INHERITED: list[object] = []


class _Watchdog:
    """Cuts a connection whose statement outlives its deadline: the server is frozen.

    libpq waits for a reply for ever, and no server-side timeout helps when the server
    does not run at all (SIGSTOP, a VM paused). One thread per process watches the armed
    deadlines and shuts the socket down, which makes the waiting call fail at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Any]] = {}
        self._next = 0
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        self.cut: set[int] = set()

    def arm(self, conn: Any, deadline: float) -> int:  # noqa: ANN401 - a psycopg Connection
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the thread did not survive
                self._pid, self._thread, self._armed, self.cut = os.getpid(), None, {}, set()
                self._wake_at = math.inf
            ticket = self._next
            self._next += 1
            self._armed[ticket] = (deadline, conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lockkit-postgres-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()
            return ticket

    def disarm(self, ticket: int) -> bool:
        """Forget a deadline; ``True`` if the connection was cut for passing it."""
        with self._cond:
            self._armed.pop(ticket, None)
            if ticket in self.cut:
                self.cut.discard(ticket)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for ticket, (deadline, conn) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[ticket]
                        self.cut.add(ticket)
                        _sever(conn)
                nearest = min((d for d, _ in self._armed.values()), default=math.inf)
                # Wake at least once a second, so an arm with a later deadline needs no
                # notify (a thread switch on every statement).
                self._wake_at = min(nearest, now + 1.0)
                self._cond.wait(self._wake_at - now)


def _sever(conn: Any) -> None:  # noqa: ANN401 - a psycopg Connection
    """Shut a connection's socket down under libpq, so its pending call fails now."""
    with contextlib.suppress(Exception):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        with dup:
            dup.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()

# Every pool, so that idle connections are closed (not garbage-collected) at exit.
_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS):
        pool.close()


class _Pool:
    """Connections to one server: each is used by one caller at a time.

    A connection that holds a lock belongs to that lease until it is released (session
    locks are the session's, and re-entrant within it); only a connection known to hold
    no lock comes back here. A forked child starts an empty pool and leaves the
    parent's connections alone (`_INHERITED`).
    """

    def __init__(self, conninfo: str, shown: str) -> None:
        self.conninfo = conninfo
        self.shown = shown
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        _POOLS.add(self)

    def get(self) -> tuple[Any, bool]:
        """A connection, and whether it was reused (it may have died while idle)."""
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.extend(self._idle)
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        return self.connect(), False

    def connect(self) -> Any:  # noqa: ANN401 - a psycopg Connection
        """A new connection in autocommit mode, with lockkit's session settings."""
        psycopg = _psycopg()
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise _unavailable(self.shown, exc, connecting=True) from None

    def put(self, conn: Any) -> None:  # noqa: ANN401
        """Give back a connection that holds no lock."""
        if conn.closed or conn.broken or conn.info.transaction_status != 0:
            self.discard(conn)
            return
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        self.discard(conn)

    def discard(self, conn: Any) -> None:  # noqa: ANN401
        """Close a connection (its session ends, freeing any lock it held).

        Only this process's connections get here: leases and waiters of a parent are
        refused in a forked child before they reach the pool.
        """
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
            mine = self._pid == os.getpid()
        for conn in idle:
            if mine:
                with contextlib.suppress(Exception):
                    conn.close()
            else:
                _INHERITED.append(conn)


class _Held:
    """A lease's handle: the connection whose session holds the lock."""

    __slots__ = ("conn", "key", "pid", "session_pid", "shared", "token")

    def __init__(
        self,
        conn: Any,  # noqa: ANN401 - a psycopg Connection
        key: int,
        session_pid: int,
        token: str,
        *,
        shared: bool,
    ) -> None:
        self.conn = conn
        self.token = token
        self.key = key
        self.session_pid = session_pid
        self.shared = shared
        self.pid = os.getpid()


def _unavailable(shown: str, exc: BaseException, *, connecting: bool = False) -> BackendUnavailable:
    """A `BackendUnavailable` for a psycopg error on server ``shown``, without secrets.

    libpq's messages name host and port but never the password; they are redacted all
    the same, in case a URL is quoted.
    """
    detail = redact_text(str(exc).strip()) or type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if connecting:
        message = f"cannot connect to PostgreSQL at {shown}"
    elif sqlstate == "42501":
        message = (
            f"the PostgreSQL user at {shown} lacks a privilege lockkit needs (CREATE on "
            "the schema once, then SELECT/INSERT/UPDATE/DELETE on lockkit_holders and "
            "lockkit_fences)"
        )
    elif not sqlstate or sqlstate.startswith(("08", "57P")):
        # No SQLSTATE: the connection broke; 08xxx, 57P0x: the server ended the session.
        message = f"lost the connection to PostgreSQL at {shown}"
    else:
        message = f"PostgreSQL at {shown} answered with an error ({sqlstate})"
    return BackendUnavailable(f"{message}: {detail}")


class PostgresWaiter(Waiter):
    """Waits in PostgreSQL's own lock queue: ``pg_advisory_lock`` with ``lock_timeout``.

    The lock it obtains is kept (`granted`) for the caller's next attempt, which then
    only records the holder; `close` gives back a grant nobody took.
    """

    __slots__ = ("backend", "granted", "shared")

    def __init__(self, backend: PostgresBackend, name: str) -> None:
        """A waiter for ``name``; it connects on the first `wait`, not here."""
        super().__init__(name)
        self.backend = backend
        self.shared = False
        self.granted: Any = None

    def wait(self, deadline: float) -> bool:
        """Block until the lock is ours (``True``) or ``deadline`` passes (``False``)."""
        if self.granted is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        backend = self.backend
        key = backend.key(self.name)
        # libpq's lock_timeout is an int of milliseconds (0 waits for ever).
        timeout_ms = 0 if math.isinf(remaining) else max(1, min(int(remaining * 1000), 2**31 - 1))
        lock = "pg_advisory_lock_shared" if self.shared else "pg_advisory_lock"
        # One simple-protocol string runs as one implicit transaction: on a timeout the
        # SET is rolled back with it, and on success the last SET restores 0. The wait
        # also ends when the live holder's lease expires (plus 50 ms), so the core can
        # judge it stale and break it: a paused holder must not keep us queued.
        query = _WAIT.format(key=key, ms=timeout_ms or 2**31 - 1, lock=lock)
        conn = backend.connection()
        # Past the deadline (plus a margin for the server's own timeout) the server is
        # not answering at all: the watchdog cuts the connection.
        ticket = _watchdog.arm(conn, deadline + 1.0) if not math.isinf(remaining) else None
        psycopg = _psycopg()
        try:
            conn.execute(query)
        except psycopg.errors.LockNotAvailable:
            backend.pool.put(conn)  # timed out in the server: the session holds nothing
            return False
        except psycopg.Error:
            # The server went away or the watchdog cut it: the next attempt reports it.
            backend.pool.discard(conn)
            return False
        except BaseException:
            # Interrupted (Ctrl-C, a cancelled thread): psycopg cancelled the query, but
            # the lock may have been granted meanwhile. Ending the session frees it.
            backend.pool.discard(conn)
            raise
        finally:
            if ticket is not None:
                _watchdog.disarm(ticket)
        self.granted = conn
        return True

    def close(self) -> None:
        """Give back a lock obtained by `wait` that no attempt took."""
        conn, self.granted = self.granted, None
        if conn is None:
            return
        unlock = "pg_advisory_unlock_shared" if self.shared else "pg_advisory_unlock"
        try:
            conn.execute(f"SELECT {unlock}({self.backend.key(self.name)})")
        except Exception:  # noqa: BLE001 - closing the session frees it as well
            self.backend.pool.discard(conn)
            return
        self.backend.pool.put(conn)


class PostgresBackend(Backend):
    """PostgreSQL session advisory locks, one connection per held lock."""

    name: ClassVar[str] = "postgresql"
    description: ClassVar[str] = (
        "PostgreSQL session advisory locks: freed when the session ends, fencing, "
        "waits in the server's lock queue"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, released_on_crash=True, ttl=True, fencing=True, shared=True, notify=True
    )
    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        default_ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        root: str | None = None,
    ) -> None:
        """Connect lazily to the server at ``url`` (a libpq URL without lockkit's options).

        Args:
            url: ``postgresql://user:password@host:port/dbname?sslmode=...``.
            namespace: Keeps the keys of this application apart from others sharing the
                database (see the module docstring).
            default_ttl: Lifetime of a lease that has no ``ttl`` of its own; the core
                renews it every third of that.
            timeout: Seconds one statement may take before the server counts as
                unresponsive (its connection is then cut).
            root: Lock paths under this directory become names relative to it (default:
                the settings' ``root``, else OpenClaw's state directory).
        """
        if not namespace:
            raise SettingsError("the PostgreSQL namespace must not be empty")
        self.url = url
        self.shown = redact_url(url)
        self.namespace = namespace
        self.default_ttl = default_ttl
        self.timeout = timeout
        self.root = root or _default_root()
        self.pool = _Pool(_conninfo(url, self.shown), self.shown)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from a ``postgresql://`` or ``postgres://`` URL.

        Query options read by lockkit (removed before libpq sees the URL):
        ``namespace``, ``ttl`` (default lease seconds), ``timeout`` (seconds a
        statement may take) and ``root``. Everything else is libpq's: ``sslmode``,
        ``connect_timeout`` (default 5), ``application_name``, ``options``...
        """
        split = url.find("?", url.rfind("@") + 1)  # a password may hold a "?" unencoded
        base, query_text = (url, "") if split < 0 else (url[:split], url[split + 1 :])
        query = urllib.parse.parse_qsl(query_text, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _OUR_OPTIONS}
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k not in _OUR_OPTIONS])
        kwargs: dict[str, Any] = {}
        for key, setting in (("ttl", "default_ttl"), ("timeout", "timeout")):
            if key in ours:
                try:
                    value = float(ours[key])
                except ValueError:
                    value = math.nan
                if not (value > 0 and math.isfinite(value)):
                    raise SettingsError(
                        f"{key}={ours[key]!r} in PostgreSQL URL {redact_url(url)} must be a "
                        "positive number of seconds"
                    )
                kwargs[setting] = value
        if "namespace" in ours:
            kwargs["namespace"] = ours["namespace"]
        if "root" in ours:
            kwargs["root"] = ours["root"]
        return cls(f"{base}?{rest}" if rest else base, **kwargs)

    def __repr__(self) -> str:
        """Show the server without its password."""
        return f"<PostgresBackend {self.shown} namespace={self.namespace!r}>"

    def close(self) -> None:
        """Close the idle connections (held locks keep theirs until released)."""
        self.pool.close()

    # -- names and keys --------------------------------------------------------------------

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """A path under ``root`` becomes relative to it; other names are kept as they are."""
        text = os.fspath(name)
        if not text or "\0" in text:
            raise InvalidLockName(f"lock name {text!r} is empty or contains NUL")
        if os.path.isabs(text):
            relative = os.path.relpath(text, self.root)
            if not relative.startswith(os.pardir):
                text = relative.replace(os.sep, "/")
        return text

    def key(self, name: str) -> int:
        """The advisory key of ``name`` in this backend's namespace."""
        return lock_key(self.namespace, name)

    def _params(self, name: str) -> dict[str, Any]:
        key = self.key(name)
        return {
            "ns": self.namespace,
            "key": key,
            "hi": (key >> 32) & 0xFFFFFFFF,
            "lo": key & 0xFFFFFFFF,
        }

    # -- connections -----------------------------------------------------------------------

    def connection(self) -> Any:  # noqa: ANN401 - a psycopg Connection
        """A pooled connection holding no lock, the schema created."""
        conn, _ = self.pool.get()
        if not self._schema_ready:
            self._create_schema(conn)
        return conn

    def _create_schema(self, conn: Any) -> None:  # noqa: ANN401
        with self._schema_lock:
            if self._schema_ready:
                return
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog:
            # one transaction-level advisory lock lets creators in one at a time.
            self._run(conn, f"SELECT pg_advisory_xact_lock({_SCHEMA_KEY}); {_SCHEMA}", None)
            self._schema_ready = True

    def _pooled(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run a statement that takes no lock on a pooled connection, then give it back.

        A reused connection that fails (the server restarted while it sat idle) is
        replaced once by a fresh one; a fresh one failing is the server's answer.
        """
        conn, reused = self.pool.get()
        try:
            if not self._schema_ready:
                self._create_schema(conn)
            rows = self._run(conn, query, params)
        except BackendUnavailable:
            if not reused:
                raise
            conn = self.connection()
            rows = self._run(conn, query, params)
        self.pool.put(conn)
        return rows

    def _run(
        self,
        conn: Any,  # noqa: ANN401
        query: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement under the watchdog; psycopg errors become BackendUnavailable.

        The connection is closed on any failure: its session may hold a lock nobody
        knows of, and ending it frees it.
        """
        psycopg = _psycopg()
        ticket = _watchdog.arm(conn, time.monotonic() + (timeout or self.timeout))
        try:
            cur = conn.execute(query, params)
            rows: list[tuple[Any, ...]] = cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            cut = _watchdog.disarm(ticket)
            self.pool.discard(conn)
            if cut:
                raise BackendUnavailable(
                    f"PostgreSQL at {self.shown} did not answer within "
                    f"{timeout or self.timeout:g} s; the connection was closed"
                ) from None
            raise _unavailable(self.shown, exc) from None
        except BaseException:
            _watchdog.disarm(ticket)
            self.pool.discard(conn)
            raise
        _watchdog.disarm(ticket)
        return rows

    # -- operations --------------------------------------------------------------------------

    def try_acquire(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """One ``pg_try_advisory_lock`` and, if granted, the holder's row: one statement.

        With a waiter that obtained the lock in `PostgresWaiter.wait`, only the row is
        written, on the waiter's connection.
        """
        ttl = ttl or self.default_ttl
        conn = None
        if isinstance(waiter, PostgresWaiter):
            if waiter.granted is not None and waiter.shared == shared:
                conn, waiter.granted = waiter.granted, None
            waiter.shared = shared  # what its next wait queues for
        if conn is not None:
            lock = "TRUE"
            reused = False
        else:
            conn, reused = self.pool.get()
            if not self._schema_ready:
                self._create_schema(conn)
            lock = f"pg_try_advisory_lock{'_shared' if shared else ''}(%(key)s)"
        params = {
            **self._params(name),
            "shared": shared,
            "token": owner.token,
            "name": name,
            "pid": owner.pid,
            "host": owner.host,
            "boot_id": owner.boot_id,
            "pid_ns": owner.pid_ns,
            "start_time": owner.start_time,
            "ttl": ttl,
        }
        query = _CLAIM.replace("{lock}", lock)
        try:
            rows = self._run(conn, query, params)
        except BackendUnavailable:
            if not reused:
                raise
            # An idle connection the server closed meanwhile (a restart). Whatever its
            # session did died with it, so a fresh connection may simply try again.
            conn = self.connection()
            rows = self._run(conn, query, params)
        if not rows:
            self.pool.put(conn)  # refused: this session holds nothing
            return None
        fence, session_pid = rows[0]
        held = _Held(conn, params["key"], session_pid, owner.token, shared=shared)
        return Lease(
            name,
            self.name,
            owner,
            expires=_utc_in(ttl),
            fencing_token=fence,
            identity=(fence, 0),
            ttl=ttl,
            handle=held,
        )

    def _holding(self, lease: Lease) -> _Held | None:
        held = lease.handle
        if not isinstance(held, _Held) or held.conn is None:
            return None
        if held.pid != os.getpid() or held.token != lease.token:
            return None  # a parent's lease in a forked child, or a forged one
        return held

    def release(self, lease: Lease) -> bool:
        """Delete the row and unlock, on the holding connection; then give it back."""
        held = self._holding(lease)
        if held is None:
            return False  # a forged, foreign or already released lease
        conn, held.conn = held.conn, None
        if conn.closed or conn.broken:
            self.pool.discard(conn)
            return False  # the session ended, and the lock with it
        unlock = "pg_advisory_unlock_shared" if held.shared else "pg_advisory_unlock"
        params = {**self._params(lease.name), "token": lease.token}
        try:
            rows = self._run(conn, _RELEASE.replace("{unlock}", unlock), params)
        except BackendUnavailable as exc:
            # The connection is closed now, so the session ends and the server frees
            # the lock as soon as it notices; it is no longer ours either way.
            log.debug("lockkit: releasing %s closed its connection: %s", lease.name, exc)
            return False
        unlocked, session_pid = rows[0]
        if not unlocked or session_pid != held.session_pid:
            _warn_pooler(self.shown, held.session_pid, session_pid)
            self.pool.discard(conn)
            return False
        self.pool.put(conn)
        return True

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Prove the holding session still holds the lock and extend the lease.

        ``False`` (lost) when the connection is broken, the server does not answer
        before the lease would end, or the session no longer holds the key.
        """
        held = self._holding(lease)
        if held is None:
            return False
        conn = held.conn
        if conn.closed or conn.broken:
            return False
        remaining = (
            (lease.expires - dt.datetime.now(dt.UTC)).total_seconds() if lease.expires else ttl
        )
        # Never past the lease's end: others may break the lock from then on.
        timeout = max(0.1, min(self.timeout, remaining - 0.5))
        params = {**self._params(lease.name), "token": lease.token, "ttl": ttl}
        try:
            rows = self._run(conn, _REFRESH, params, timeout=timeout)
        except BackendUnavailable as exc:
            log.warning("lockkit: lock %s is lost: %s", lease.name, exc)
            return False  # the connection is closed: the session and its lock are gone
        if not rows:
            # Our session lives but does not hold the key: a pooler moved us to another
            # server session, or the row was removed. Close it, so nothing stays held.
            log.warning(
                "lockkit: lock %s is lost: the session at %s no longer holds it (is a "
                "connection pooler in transaction mode in between?)",
                lease.name,
                self.shown,
            )
            self.pool.discard(conn)
            return False
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """The holder recorded by the session holding the key, or ``None`` when free."""
        rows = self._pooled(_INSPECT, self._params(name))
        if not rows:
            return None
        shared = any(row[1] == "ShareLock" for row in rows)
        row = next((row for row in rows if row[2] is not None), None)
        if row is None:
            session = rows[0][0]
            return LockInfo(
                name,
                self.name,
                None,
                shared=shared,
                problem=f"held by PostgreSQL session {session} without a lockkit holder row "
                "(just being taken, or not a lockkit lock)",
            )
        (
            _,
            _,
            token,
            pid,
            host,
            boot_id,
            pid_ns,
            start_time,
            created,
            left,
            age,
            fence,
            version,
            _,
        ) = row
        owner = Owner(
            pid=pid,
            host=host,
            boot_id=boot_id,
            pid_ns=pid_ns,
            start_time=start_time,
            token=token,
            created=created,
        )
        return LockInfo(
            name,
            self.name,
            owner,
            expires=_utc_in(left),
            fencing_token=fence,
            identity=(fence, version),
            age=age,
            shared=shared,
        )

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Terminate the holder's session, only while it is exactly ``expected``."""
        identity = expected.identity
        if expected.owner is None or identity is None or len(identity) != _IDENTITY_PARTS:
            return False
        fence, version = identity
        params = {
            **self._params(name),
            "token": expected.owner.token,
            "fence": fence,
            "version": version,
        }
        params["wait_ms"] = int(min(self.timeout, 5.0) * 1000)
        rows = self._pooled(_BREAK, params)
        return bool(rows and rows[0][0])

    def waiter(self, name: str) -> Waiter:
        """A waiter queued in the server's lock queue (see `PostgresWaiter`)."""
        return PostgresWaiter(self, name)

    def forget_keys(self, name: str | os.PathLike[str]) -> None:
        """Delete the rows of a lock nobody holds (``lockkit doctor``'s throw-away locks).

        Fencing tokens stay increasing afterwards: they never fall below the clock.
        """
        params = self._params(self.normalize_name(name))
        self._pooled(
            "DELETE FROM lockkit_fences WHERE namespace = %(ns)s AND key = %(key)s", params
        )

    @classmethod
    def probe(cls, location: str) -> Support:
        """A directory says nothing about PostgreSQL: it must be configured by URL."""
        del location
        return Support(
            ok=False,
            reason="needs a server URL: LOCKKIT_URL=postgresql://user@host/dbname",
        )


def _warn_pooler(shown: str, expected: int, actual: int) -> None:
    log.warning(
        "lockkit: the session holding a lock at %s changed (backend pid %s, now %s): a "
        "connection pooler in transaction or statement mode (pgbouncer's pool_mode = "
        "transaction) breaks session advisory locks; connect to PostgreSQL directly or "
        "through a pool in session mode",
        shown,
        expected,
        actual,
    )


def _conninfo(url: str, shown: str) -> str:
    """Libpq's connection string: the URL plus lockkit's client and session settings."""
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise SettingsError(
            f"invalid PostgreSQL URL {shown}: percent-encode special characters in the "
            "user name and password (@ as %40, / as %2F, # as %23, ? as %3F, : as %3A)"
        ) from None
    for key, value in _CLIENT.items():
        params.setdefault(key, value)
    params.setdefault("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT))
    # Ours first, the URL's own `options` after them, so they win.
    ours = " ".join(f"-c {key}={value}" for key, value in _SESSION.items())
    params["options"] = f"{ours} {params['options']}" if params.get("options") else ours
    conninfo: str = psycopg.conninfo.make_conninfo(**params)
    return conninfo


def _default_root() -> str:
    from lockkit._settings import load_settings, openclaw_state_dir  # noqa: PLC0415

    settings = load_settings()
    return (settings.root if settings else None) or openclaw_state_dir()


@hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``postgresql`` backend (psycopg is imported only when it is used)."""
    return [PostgresBackend]
