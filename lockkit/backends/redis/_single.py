"""`RedisBackend`: locks on one Redis or Valkey server (several URLs make a `RedlockBackend`).

Acquire is one round trip (`._scripts.ACQUIRE`: ``SET`` if free, and ``INCR`` the
fence), release one (compare-and-delete, then a hand-off), like the raw primitive.
Scripts run on a connection each thread keeps (`._conn`), not one checked out of
redis-py's pool per command.

**Hand-off.** An attempt made for a caller that will wait (``waiter=`` a
`RedisWaiter`) queues the waiter's entry in the same script when the lock is busy,
carrying that attempt's payload. A release then *grants* the lock to the first entry
whose waiter still listens: in the same script it sets that payload, increments the
fence and publishes the grant, so the waiter's next attempt returns the lease without
a round trip and nobody can slip in between (first come, first served). ``PUBLISH``
says how many received the grant; one nobody heard (a dead waiter) is undone and passed
on. Readers and asyncio tasks queue plain entries and are only woken. A waiter also
re-checks after a bounded interval (``poll``), so a lost message or a crashed waiter
delays but never hangs anyone.

**Shared locks.** A reader joins ``:readers`` if the exclusive key is free; a writer
takes the key only if no reader's entry is live. Entries past their expiry (a crashed
reader's) are dropped by the next attempt, so a dead reader holds writers off for at
most its TTL. The last reader out hands the lock off like a release; a reader that
gets in passes a wake-up on, so readers queued together get in together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import threading
import time
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Self

from lockkit._deadline import ACQUIRING
from lockkit._deadline import current as current_deadline
from lockkit._info import Lease, LockInfo, Owner
from lockkit._log import log
from lockkit._numbers import check, parse
from lockkit._redact import redact_url
from lockkit.backends.redis._conn import (
    CLUSTER_SCHEMES,
    GRACE,
    TOO_LATE,
    connect,
    eviction_warning,
    import_redis,
    is_cluster_url,
    time_left,
    unavailable,
)
from lockkit.backends.redis._payload import Offer, Reader, from_inspect, version_text
from lockkit.backends.redis._scripts import QUEUE_TTL_MS, queued_args
from lockkit.backends.redis._sentinel import SCHEMES as SENTINEL_SCHEMES
from lockkit.backends.redis._sentinel import describe as describe_sentinel
from lockkit.backends.redis._sentinel import failover_warnings as sentinel_warnings
from lockkit.backends.redis._sentinel import online_replicas, transient
from lockkit.backends.redis._waiter import Listeners, RedisWaiter
from lockkit.errors import BackendUnavailable, InvalidLockName, LockkitWarning, SettingsError
from lockkit.spec import Backend, Capabilities, Support

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from lockkit.backends.redis._conn import Server
    from lockkit.spec import Waiter

__all__ = ["DEFAULT_TTL", "MAX_NAME", "RedisBackend"]


DEFAULT_TTL = 30.0
"""Seconds a Redis lock lives without renewal when the lock has no ``ttl`` of its own.

A Redis lock always expires, so a crashed holder never blocks forever; the core renews
it every ``ttl / 3`` while it is held."""

MAX_NAME = 1024
"""Longest lock name (in UTF-8 bytes) accepted as a key."""

_KEY_CACHE_SIZE = 1024

# Options lockkit reads from the URL query; everything else goes to redis-py.
_OUR_OPTIONS = (
    "prefix",
    "ttl",
    "root",
    "poll",
    "min_replicas",
    "replica_timeout",
    "failover_timeout",
)

# URL schemes whose commas separate hosts of one deployment, not Redlock's servers.
_ONE_DEPLOYMENT = tuple(f"{scheme}://" for scheme in SENTINEL_SCHEMES)

MAX_REPLICAS = 64
"""The largest ``min_replicas`` accepted (a bigger number is a typo)."""

DEFAULT_FAILOVER_TIMEOUT = 60.0
"""Seconds a command is re-run while a Sentinel-managed primary fails over.

Sentinel waits ``down-after-milliseconds`` (30 s by default) before it even starts a
failover, and the election and the promotion take a few seconds more."""


class RedisBackend(Backend):
    """Redis/Valkey locks: ``SET NX PX``, Lua compare-and-delete, one waiter woken per release.

    One URL makes this class; several make a `RedlockBackend` (also when constructed
    as ``RedisBackend([url, url, url])``).
    """

    name: ClassVar[str] = "redis"
    schemes: ClassVar[tuple[str, ...]] = (
        *("redis", "rediss", "unix", "valkey", "valkeys"),
        *SENTINEL_SCHEMES,
        *CLUSTER_SCHEMES,
    )
    # A caller that will wait hands its waiter to the first attempt: if a listener is at
    # hand, the failing attempt queues it in the same round trip.
    eager_waiter: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Redis/Valkey: SET NX PX with Lua release, queued hand-off, fencing, Redlock"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, released_on_crash=True, ttl=True, fencing=True, shared=True, notify=True
    )
    """One server can share; a `RedlockBackend` cannot."""

    # The class several URLs make: `RedlockBackend` names itself here when it is defined
    # (see `__init_subclass__`), so this module need not import it.
    _several_servers: ClassVar[type[RedisBackend] | None] = None
    # The class a Redis Cluster URL makes (`._cluster.RedisClusterBackend`), likewise.
    _cluster_class: ClassVar[type[RedisBackend] | None] = None

    def __init_subclass__(
        cls,
        *,
        several_servers: bool = False,
        cluster: bool = False,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        """``class RedlockBackend(RedisBackend, several_servers=True)`` serves several URLs.

        ``cluster=True``: the class serves a Redis Cluster URL.
        """
        super().__init_subclass__(**kwargs)
        if several_servers:
            RedisBackend._several_servers = cls
        if cluster:
            RedisBackend._cluster_class = cls

    @classmethod
    def _connect(cls, url: str) -> Server:
        """What ``url`` becomes: a `._conn.Server` (a cluster class connects its own way)."""
        return connect(url)

    def __new__(cls, urls: Iterable[str] = (), **options: Any) -> Self:  # noqa: ANN401, ARG004
        """Several URLs make a Redlock: a `RedlockBackend`, whatever class was called."""
        urls = tuple(urls) if not isinstance(urls, str) else (urls,)
        if any(is_cluster_url(url) for url in urls):
            # A Redis Cluster: one URL (its commas separate seeds), its own class.
            cluster_class = RedisBackend._cluster_class
            if cluster_class is None or len(urls) > 1 or not issubclass(cluster_class, cls):
                raise SettingsError(
                    "a Redis Cluster URL must be the only URL: a Redlock over several "
                    "clusters, or a cluster mixed with other servers, is not supported: "
                    + ", ".join(redact_url(url) for url in urls)
                )
            cluster: Any = object.__new__(cluster_class)
            return cluster  # type: ignore[no-any-return]
        several = RedisBackend._several_servers
        if cls is RedisBackend and len(urls) > 1 and several is not None:
            redlock: Any = object.__new__(several)
            return redlock  # type: ignore[no-any-return]
        return object.__new__(cls)

    def __init__(
        self,
        urls: Iterable[str] = (),
        *,
        prefix: str = "lockkit:",
        default_ttl: float = DEFAULT_TTL,
        root: str | None = None,
        poll: float = 0.5,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
    ) -> None:
        """Connect lazily to one server, or to several for a Redlock.

        Args:
            urls: One URL, or several independent masters (Redlock, quorum N/2+1).
            prefix: Prepended to every key and channel.
            default_ttl: Lifetime of a lock that has no ``ttl`` of its own.
            root: Lock paths under this directory become keys relative to it (default:
                the settings' ``root``, else OpenClaw's state directory).
            poll: A waiter re-checks the lock at least this often (seconds), in case a
                release message was lost; releases normally wake it at once.
            min_replicas: An acquisition counts only once this many replicas confirm
                they have it (``WAIT``), so a failover cannot hand the lock to a second
                holder or a fencing token go backwards; if they do not within
                ``replica_timeout``, the lock is given back and the attempt fails with
                `BackendUnavailable` (re-tried within the acquisition's timeout when a
                Sentinel manages the server). 0: no confirmation (the default).
            replica_timeout: Seconds to wait for the replicas' confirmation.
            failover_timeout: Seconds a Sentinel-managed command is re-run while the
                primary fails over (bounded by the acquisition's own timeout).
        """
        import_redis()
        self.urls = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self.urls:
            raise SettingsError(
                "the redis backend needs a server URL: set LOCKKIT_BACKEND=redis://host:6379/0, "
                "or LOCKKIT_URL, or `url` in the settings"
            )
        if "\n" in prefix:
            raise SettingsError(f"invalid Redis key prefix {prefix!r}: it contains a newline")
        self.prefix = prefix
        self.default_ttl = check("ttl", default_ttl, "default_ttl")
        self.poll = check("poll", poll)
        if isinstance(min_replicas, bool) or not isinstance(min_replicas, int):
            raise TypeError(f"min_replicas must be an int, not {type(min_replicas).__name__}")
        if not 0 <= min_replicas <= MAX_REPLICAS:
            raise SettingsError(
                f"min_replicas={min_replicas} is out of range: give 0 (no confirmation) "
                f"to {MAX_REPLICAS} replicas"
            )
        self.min_replicas = min_replicas
        self.replica_timeout = check("poll", replica_timeout, "replica_timeout")
        self.failover_timeout = check("poll", failover_timeout, "failover_timeout")
        self.root = root or _default_root()
        if min_replicas and len(self.urls) > 1:
            raise SettingsError(
                "min_replicas applies to one server, one Sentinel service or one cluster; "
                "a Redlock over several masters stays safe by its quorum of independent "
                "servers instead: drop min_replicas, or give one URL"
            )
        self.servers = [self._connect(url) for url in self.urls]
        self.quorum = len(self.servers) // 2 + 1
        self.listeners = [Listeners(server, prefix, self.poll) for server in self.servers]
        self._unchecked = list(self.servers)  # eviction policies not read yet
        # Whether this thread's last attempt took a lock a release granted it: WAIT on
        # our connection would not cover that write (`_confirmed`).
        self._granted = threading.local()
        self._key_cache: dict[str, tuple[str, str, str]] = {}

    @property
    def _servers(self) -> list[Server]:
        """The servers (the name tests and tools used before the package split)."""
        return self.servers

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from ``redis://``, ``rediss://`` or ``unix://`` URLs, comma-separated.

        Several URLs make a `RedlockBackend`. A ``redis+cluster://`` (or
        ``rediss+cluster://``) URL makes a `._cluster.RedisClusterBackend`: its commas
        separate the ``host:port`` seeds of one cluster. Query options read by lockkit (and
        removed before redis-py sees the URL): ``prefix`` (key prefix, default
        ``lockkit:``), ``ttl`` (default lifetime in seconds), ``root``, ``poll``
        (longest wait between re-checks, seconds), ``min_replicas``, ``replica_timeout``
        and ``failover_timeout`` (see `__init__`). Everything else is redis-py's:
        ``db``, ``socket_timeout``, ``socket_connect_timeout``, ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``...
        """
        options: dict[str, str] = {}
        urls = []
        # A Sentinel URL's commas separate its sentinels, a cluster URL's its seed nodes:
        # either is one URL.
        one = is_cluster_url(url) or url.strip()[:20].lower().startswith(_ONE_DEPLOYMENT)
        for part in [url] if one else url.split(","):
            raw = part.strip()
            if not raw:
                continue
            # The query starts after the userinfo: a password may hold a "?" unencoded.
            split = raw.find("?", raw.rfind("@") + 1)
            base, query_text = (raw, "") if split < 0 else (raw[:split], raw[split + 1 :])
            # Valkey speaks the Redis protocol; redis-py knows only the redis schemes.
            for ours, theirs in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
                if base.startswith(ours):
                    base = theirs + base[len(ours) :]
            query = urllib.parse.parse_qsl(query_text, keep_blank_values=True)
            options.update((k, v) for k, v in query if k in _OUR_OPTIONS)
            rest = urllib.parse.urlencode([(k, v) for k, v in query if k not in _OUR_OPTIONS])
            # Rebuilt by hand: urlunsplit would turn unix:///path into unix:/path.
            urls.append(f"{base}?{rest}" if rest else base)
        return cls(urls, **_backend_options(options, url))

    def __repr__(self) -> str:
        """Show the servers without passwords."""
        shown = ", ".join(server.shown for server in self.servers)
        return f"<{type(self).__name__} {shown} prefix={self.prefix!r}>"

    # -- names and keys ------------------------------------------------------------------

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """A path under ``root`` becomes relative to it; other names are kept as they are."""
        text = os.fspath(name)
        if not text or "\0" in text:
            raise InvalidLockName(f"lock name {text!r} is empty or contains NUL")
        if os.path.isabs(text):  # noqa: PTH117
            relative = os.path.relpath(text, self.root)
            if not relative.startswith(os.pardir):
                text = relative.replace(os.sep, "/")
        if len(text.encode()) > MAX_NAME:
            raise InvalidLockName(f"lock name is longer than {MAX_NAME} bytes")
        return text

    def keys(self, name: str) -> tuple[str, str, str]:
        """The lock's keys: the holder's value, the fence counter, the waiters' queue."""
        keys = self._key_cache.get(name)
        if keys is None:
            tagged = f"{self.prefix}{{{name}}}"
            keys = (tagged, f"{tagged}:fence", f"{tagged}:waiters")
            if len(self._key_cache) >= _KEY_CACHE_SIZE:
                self._key_cache.clear()
            self._key_cache[name] = keys
        return keys

    _keys = keys  # the name tests used before the package split

    # -- operations ------------------------------------------------------------------------

    def call(
        self,
        server: Server,
        action: Callable[..., Any],
        *args: Any,  # noqa: ANN401
        follow: bool = True,
        until: float | None = None,
    ) -> Any:  # noqa: ANN401
        """``action(*args)`` against ``server``; a redis-py error becomes `BackendUnavailable`.

        With a Sentinel-managed server (and ``follow``), a failure that a failover
        explains (`._sentinel.transient`) is re-run until it succeeds, the acquisition's
        deadline passes, or `failover_timeout` does (or ``until``, a `time.monotonic`
        value, if sooner): each connection asks the sentinels for the primary again.
        Every script may be re-run (see `._scripts`).
        """
        redis = import_redis()
        try:
            return action(*args)
        except (redis.RedisError, OSError) as exc:
            if not (follow and server.follows_failover and transient(exc)):
                raise unavailable(server.shown, exc) from None
            failed: BaseException = exc
        bound = self._follow_until(until)
        # The re-runs' own I/O (a sentinel asked, a connection made) ends at the bound
        # too: it becomes their acquisition deadline, whose socket timeouts `._conn` cuts.
        bounded = ACQUIRING.set(min(current_deadline(), bound - GRACE))
        try:
            for pause in self._pauses(bound):
                time.sleep(pause)
                try:
                    return action(*args)
                except (redis.RedisError, OSError) as exc:
                    if not transient(exc):
                        raise unavailable(server.shown, exc) from None
                    if TOO_LATE not in str(exc):  # out of time says less than before
                        failed = exc
        finally:
            ACQUIRING.reset(bounded)
        raise unavailable(server.shown, failed) from None

    def _follow_until(self, until: float | None = None) -> float:
        """When re-runs through a failover stop (a `time.monotonic` value).

        At the acquisition's deadline (`lockkit._deadline`) plus `._conn.GRACE`, or
        `failover_timeout` from now, or ``until``, whichever comes first. The grace lets
        even a ``timeout=0`` attempt that met a connection to a primary that is gone or
        demoted (kept since before the failover) be re-run on a fresh one.
        """
        return min(
            current_deadline() + GRACE,
            time.monotonic() + self.failover_timeout,
            math.inf if until is None else until,
        )

    def _following(self, until: float | None = None) -> Iterator[float]:
        """The pauses before each re-run while a failover lasts, until `_follow_until`."""
        return self._pauses(self._follow_until(until))

    @staticmethod
    def _pauses(until: float) -> Iterator[float]:
        """Pauses backing off from 20 ms to 0.5 s, ending at ``until``."""
        pause = 0.02
        while (left := until - time.monotonic()) > 0:
            yield min(pause, left)
            pause = min(pause * 2, 0.5)

    def offer(self, name: str, owner: Owner, ttl: float | None) -> Offer:
        """The terms of one attempt at ``name``."""
        return Offer.make(self.name, name, owner, ttl, self.default_ttl)

    def try_acquire(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """One ``SET`` if free (with ``INCR``); with a waiter, queue it if busy.

        With a `RedisWaiter` (the caller will wait), a failed attempt queues the
        waiter's entry in the same script, so no release can slip between the attempt
        and the wait unnoticed; and if a release granted the queued entry the lock
        meanwhile, the attempt takes that grant (without a round trip when `wait` read
        the grant message). The result never depends on earlier calls of this thread.

        With `min_replicas`, a lease is returned only once that many replicas confirm
        it (`_confirmed`).
        """
        if not self.min_replicas:
            return self._attempt(name, owner, ttl, shared=shared, waiter=waiter)
        pauses = self._following()
        shortfall: BackendUnavailable | None = None  # the last "only N replicas" answer
        while True:
            self._granted.last = False
            try:
                lease = self._attempt(name, owner, ttl, shared=shared, waiter=waiter)
                if lease is None:
                    return None
                return self._confirmed(lease)
            except _Unconfirmed as exc:
                error = exc.error
                if exc.replicas_answered:
                    shortfall = error
            except BackendUnavailable as exc:
                # Out of time while re-trying: the replicas' answer says more than the
                # timeout of the last attempt.
                if shortfall is None:
                    raise
                raise shortfall from exc
            # Too few replicas: transient while a failover lasts, if it is followed.
            pause = next(pauses, None) if self.servers[0].follows_failover else None
            if pause is None:
                raise shortfall or error
            time.sleep(pause)

    def _attempt(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """One attempt of `try_acquire`, before any confirmation by replicas."""
        if self._unchecked:
            self.check_eviction()
        mine = waiter if isinstance(waiter, RedisWaiter) and waiter.backend is self else None
        if shared:
            return self._try_acquire_shared(name, owner, ttl, mine)
        server = self.servers[0]
        if mine is None or (mine.granted is None and not mine.can_queue()):
            offer = self.offer(name, owner, ttl)
            keys = self.keys(name)
            fence = self.call(server, server.acquire, keys[:2], [offer.payload, offer.ttl_ms])
            if fence is None or isinstance(fence, list):  # busy: nil, or the holder
                if mine is not None:
                    mine.offer = offer  # what `wait` queues, so a release can grant it
                    mine.seen = None if fence is None else from_inspect(name, self.name, fence)
                return None
            return offer.lease(int(fence))
        grant = mine.take_grant()
        if grant is not None:
            # A release gave us the lock and told us so (`RedisWaiter.wait`).
            granted, fence = grant
            self._granted.last = True  # written by the releaser's connection, not ours
            return granted.lease(fence)
        return self._try_acquire_queued(server, name, self.offer(name, owner, ttl), mine)

    def _try_acquire_queued(
        self, server: Server, name: str, offer: Offer, waiter: RedisWaiter
    ) -> Lease | None:
        """An attempt that queues ``waiter`` with a grant entry for ``offer`` if busy."""
        # A fresh entry replaces the queued one on every attempt, so the payload a
        # release grants is never older than one `poll` interval.
        entry = offer.grant_entry(waiter.channel())
        queued = waiter.queued
        args = queued_args(
            offer,
            entry,
            woken=waiter.woken,
            queued=waiter.entry,
            queued_payload=queued.payload if queued is not None else "",
        )
        try:
            result = self.call(server, server.acquire_queued, self.keys(name), args)
        except BaseException:
            # The script may have queued `entry` all the same: close the channel, so a
            # grant to an entry nobody knows of is undone rather than held for its TTL.
            waiter.drop_listener()
            raise
        if result is None or len(result) == 3:  # noqa: PLR2004 - the busy reply's shape
            waiter.queue(entry, offer)
            # The holder, read by the same script: the core judges it without `inspect`.
            waiter.seen = None if result is None else from_inspect(name, self.name, result)
            return None
        fence, was_granted = int(result[0]), bool(result[1])
        waiter.forget()  # the script took our entry out of the queue
        if was_granted and queued is not None:
            self._granted.last = True
            return queued.lease(fence)
        return offer.lease(fence)

    def _confirmed(self, lease: Lease) -> Lease:
        """``lease`` once `min_replicas` replicas have it; else it is given back.

        ``WAIT`` confirms the writes of the connection it is sent on. The attempt's script
        wrote on this thread's connection (a re-run that found its own key renews it,
        see `._scripts`), but a lock granted by another's release was written on that
        one: a renewal (a write of ours, after the grant in the replication stream)
        comes first then, and confirming it confirms the grant.

        Raises:
            _Unconfirmed: Fewer replicas confirmed within `replica_timeout` (the lock was
                given back, or expires by itself if even that failed).
        """
        server = self.servers[0]
        redis = import_redis()
        # No longer than the acquisition has left (a WAIT cut off by the socket timeout
        # would say nothing), and never 0, which WAIT takes for "forever".
        left = time_left()
        within = self.replica_timeout if left is None else min(self.replica_timeout, left - 0.05)
        timeout_ms = max(1, int(within * 1000))
        try:
            granted = self._granted.last
            if granted and not self.refresh(lease, lease.ttl or self.default_ttl):
                raise _Unconfirmed(
                    BackendUnavailable(
                        f"Redis at {server.shown} lost the lock {lease.name!r} right after "
                        "granting it (a failover?); try again"
                    )
                )
            acked = server.wait_replicas(self.keys(lease.name)[0], self.min_replicas, timeout_ms)
        except (redis.RedisError, OSError, BackendUnavailable) as exc:
            self._give_back(lease)
            if isinstance(exc, BackendUnavailable):
                raise _Unconfirmed(exc) from None
            raise _Unconfirmed(unavailable(server.shown, exc)) from None
        if acked >= self.min_replicas:
            return lease
        self._give_back(lease)
        raise _Unconfirmed(
            replicas_answered=True,
            error=BackendUnavailable(
                f"Redis at {server.shown}: only {acked} replica(s) confirmed the lock "
                f"{lease.name!r} within {self.replica_timeout:g} s, and min_replicas="
                f"{self.min_replicas} asks for {self.min_replicas}; the lock was given "
                "back. Check the replicas (INFO replication), or lower min_replicas"
            ),
        )

    def topology(self) -> tuple[list[str], list[str]]:
        """What `lockkit doctor` shows of the deployment: its lines, and its warnings.

        The lines name each server's role and replicas (a Sentinel's primary, replicas
        and sentinels; a cluster's masters and slots); the warnings say how a failover
        could lose a held lock (no `min_replicas`, or fewer replicas than it asks).
        A server that cannot be asked gets a warning saying so.
        """
        redis = import_redis()
        lines: list[str] = []
        found: list[str] = []
        for server in self.servers:
            try:
                describe = getattr(server, "describe", None)
                if describe is not None:  # a cluster: its masters, slots and replicas
                    lines += describe()
                    found += server.failover_warnings()  # type: ignore[attr-defined]
                    if not self.min_replicas:
                        found.append(_UNCONFIRMED_NOTE.format(what=f"Redis Cluster {server.shown}"))
                    continue
                info = server.client.info("replication")
                online = online_replicas(info)
                role = info.get("role", "?")
                if server.sentinel is not None:
                    lines += describe_sentinel(server.sentinel)
                    if role != "master":
                        # The server the sentinels name says otherwise: a sentinel that
                        # monitors a replica, or one left behind by a failover.
                        found.append(
                            f"the sentinels of {server.shown} name as the primary a server "
                            f"that reports itself a {role}: every acquisition fails. Check "
                            "that `sentinel monitor` names the primary, and SENTINEL MASTERS"
                        )
                    found += sentinel_warnings(server.sentinel.service, online, self.min_replicas)
                    continue
                lines.append(f"server {server.shown}: {role}, {online} replica(s) online")
                if role != "master":
                    found.append(
                        f"Redis at {server.shown} is a {role}: locks must be taken on the "
                        "primary (or name the sentinels with redis+sentinel://)"
                    )
                if self.min_replicas > online:
                    found.append(
                        f"Redis at {server.shown} has {online} replica(s) online but "
                        f"min_replicas={self.min_replicas}: every acquisition fails"
                    )
            except (redis.RedisError, OSError) as exc:
                found.append(str(unavailable(server.shown, exc)))
        return lines, found

    def _give_back(self, lease: Lease) -> None:
        """Release a lease no caller will get (a failed confirmation); errors are moot.

        Not bounded by the acquisition's deadline, which may have passed while the
        replicas were awaited: a lock left held would block everyone until its TTL.
        """
        unbounded = ACQUIRING.set(math.inf)
        try:
            with contextlib.suppress(BackendUnavailable):
                self.release(lease)
        finally:
            ACQUIRING.reset(unbounded)

    def check_eviction(self) -> list[str]:
        """Warn once per server (`LockkitWarning`) whose eviction policy can drop locks.

        Called on the first acquisition; `lockkit doctor` shows the warning as a note.
        Returns the warnings of the servers checked now.
        """
        found = []
        for server in list(self._unchecked):
            try:
                warning = eviction_warning(server)
            except BackendUnavailable as exc:
                # (Raised `from None`: the redis-py error is still its context.)
                if isinstance(exc.__context__, import_redis().TimeoutError):
                    # It does not answer: the attempt would wait as long again.
                    raise
                continue  # unreachable: asked again on the next acquisition
            with contextlib.suppress(ValueError):
                self._unchecked.remove(server)
            if warning is not None:
                found.append(warning)
                log.warning("lockkit: %s", warning)
                warnings.warn(warning, LockkitWarning, stacklevel=4)
        return found

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete; hands the lock to the first queued waiter.

        A reader's lease leaves the readers' set; the last reader out wakes the waiter.
        """
        if isinstance(lease.handle, Reader):
            return self._release_shared(lease)
        server = self.servers[0]
        keys = self.keys(lease.name)
        try:
            return bool(
                self.call(
                    server,
                    server.release,
                    keys,
                    [lease.handle, lease.name],
                    until=_expiry(lease),
                )
            )
        except BackendUnavailable:
            # Whether the script ran is unknown; either way the key expires by itself,
            # and the lock counts as lost (as a Redlock does with too few servers).
            return False

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Compare-and-extend; the lock's version (`LockInfo.identity`) changes."""
        if isinstance(lease.handle, Reader):
            return self._refresh_shared(lease, ttl)
        server = self.servers[0]
        key = self.keys(lease.name)[0]
        ttl_ms = max(1, int(ttl * 1000))
        # Not re-run here: the renewer tries again while the lease lasts.
        return bool(self.call(server, server.refresh, [key], [lease.handle, ttl_ms], follow=False))

    def inspect(self, name: str) -> LockInfo | None:
        """The holder's payload, expiry, fencing token and version (always read afresh)."""
        server = self.servers[0]
        reply = self.call(server, server.inspect, self.keys(name)[:2], [])
        return from_inspect(name, self.name, reply)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete the key if it still holds ``expected``'s token *and* version (in Lua)."""
        if expected.owner is None or not expected.owner.token:
            return False
        server = self.servers[0]
        args = [expected.owner.token, name, version_text(expected.identity)]
        return bool(self.call(server, server.break_, self.keys(name), args))

    # -- shared (read) locks: one server only ------------------------------------------

    def _try_acquire_shared(
        self, name: str, owner: Owner, ttl: float | None, waiter: RedisWaiter | None
    ) -> Lease | None:
        """Join the readers if no writer holds the lock; queue the waiter if busy."""
        server = self.servers[0]
        offer = self.offer(name, owner, ttl)
        args: list[Any] = [offer.payload, offer.ttl_ms]
        if waiter is not None and not waiter.can_queue():
            waiter = None  # `wait` subscribes and queues, if it comes to that
        if waiter is not None:
            # Readers queue plain entries: they are woken, never granted the lock.
            channel = waiter.channel()
            position = "front" if waiter.woken else "back"
            args += [channel, position, waiter.entry, QUEUE_TTL_MS]
        else:
            args += ["", "", "", 0]
        try:
            result = self.call(server, server.acquire_shared, self.keys(name), [*args, name])
        except BaseException:
            if waiter is not None:
                waiter.drop_listener()
            raise
        if waiter is not None:
            if result is None:
                waiter.queue(channel, None)
            else:
                waiter.forget()
        if result is None:
            return None
        return Lease(
            name,
            self.name,
            offer.owner,
            expires=offer.expires,
            fencing_token=int(result),
            ttl=offer.ttl,
            handle=Reader(offer.payload),
        )

    def _release_shared(self, lease: Lease) -> bool:
        server = self.servers[0]
        args = [lease.handle.payload, lease.name]
        return bool(self.call(server, server.release_shared, self.keys(lease.name), args))

    def _refresh_shared(self, lease: Lease, ttl: float) -> bool:
        key = self.keys(lease.name)[0]
        server = self.servers[0]
        args = [lease.handle.payload, max(1, int(ttl * 1000))]
        return bool(self.call(server, server.refresh_shared, [key], args, follow=False))

    # -- waiting ---------------------------------------------------------------------------

    def waiter(self, name: str) -> Waiter:
        """A `RedisWaiter`: this acquisition's place in the hand-off queue."""
        return RedisWaiter(self, name)

    def enqueue(self, waiter: RedisWaiter) -> bool:
        """Queue ``waiter``, whose last attempt did not queue it.

        A grant entry for the offer of that attempt if it has one (one server,
        exclusive), else a plain entry. Returns ``False`` when the lock turned out
        free: the caller tries again.
        """
        server = self.servers[waiter.server]
        channel = waiter.channel()
        offer = waiter.offer
        entry = channel if offer is None else offer.grant_entry(channel)
        keys = self.keys(waiter.name)
        if not self.call(server, server.enqueue, keys, [entry, QUEUE_TTL_MS]):
            return False
        waiter.queue(entry, offer)
        return True

    def leave(self, waiter: RedisWaiter) -> None:
        """Take ``waiter`` out of the queue; a grant or wake-up it did not use goes on."""
        server = self.servers[waiter.server]
        queued = waiter.queued
        woken = waiter.woken or waiter.granted is not None
        args = [
            waiter.entry,
            waiter.name,
            "1" if woken else "0",
            queued.payload if queued is not None else "",
        ]
        self.call(server, server.leave, self.keys(waiter.name), args)

    # -- asyncio: redis.asyncio, one client per event loop (`._async`) -------------------

    async def try_acquire_async(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """`try_acquire` over ``redis.asyncio``; safe to cancel (see the spec)."""
        import asyncio  # noqa: PLC0415 - the running loop imported it

        from lockkit._threads import try_acquire_in_thread  # noqa: PLC0415
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        if shared or self._blocking_side():
            # Readers run the blocking attempt; their waiter queues on the loop's side.
            # So does an attempt that follows a failover or waits for replicas: it may
            # sleep and re-run, and WAIT must follow its script on one connection.
            return await try_acquire_in_thread(self, name, owner, ttl, shared=shared, waiter=None)
        if self._unchecked:
            await asyncio.to_thread(self.check_eviction)  # once per server: one INFO
        mine = waiter if isinstance(waiter, RedisWaiter) and waiter.backend is self else None
        return await for_backend(self).try_acquire(self, name, owner, ttl, mine)

    async def release_async(self, lease: Lease) -> bool:
        """`release` over ``redis.asyncio``; completes even if the caller is cancelled."""
        if isinstance(lease.handle, Reader) or self._blocking_side():
            import asyncio  # noqa: PLC0415

            return await asyncio.to_thread(self.release, lease)
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        return await for_backend(self).release(self, lease)

    def _blocking_side(self) -> bool:
        """Whether asyncio callers run attempts and releases in a worker thread.

        With `min_replicas` or a Sentinel: the blocking side confirms and follows
        failovers (`try_acquire`, `call`); waiting stays on the event loop.
        """
        return bool(self.min_replicas) or self.servers[0].follows_failover

    async def inspect_async(self, name: str) -> LockInfo | None:
        """`inspect` over ``redis.asyncio``."""
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        return await for_backend(self).inspect(self, name)

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """`break_lock` over ``redis.asyncio``."""
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        return await for_backend(self).break_lock(self, name, expected)

    async def wait_async_for(self, waiter: RedisWaiter, deadline: float) -> bool:
        """`RedisWaiter.wait_async`: await a wake-up on the loop's listener."""
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        return await for_backend(self).wait(self, waiter, deadline)

    async def leave_async(self, waiter: RedisWaiter) -> None:
        """`RedisWaiter.close_async`: leave the queue, pass on an unused wake-up."""
        from lockkit.backends.redis._async import for_backend  # noqa: PLC0415

        await for_backend(self).leave(self, waiter)

    def close(self) -> None:
        """Disconnect every connection of this backend; they reconnect on next use.

        The registry calls it when it is reset, so connections are closed rather than
        left for the garbage collector (which warns about unclosed sockets).
        """
        for listeners in self.listeners:
            listeners.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.client.connection_pool.disconnect()
            if server.sentinel is not None:
                for sentinel in server.sentinel.manager.sentinels:
                    with contextlib.suppress(Exception):
                        sentinel.connection_pool.disconnect()

    def forget_keys(self, name: str | os.PathLike[str]) -> None:
        """Delete every key of a lock nobody holds, fencing counter included.

        For throw-away locks (``lockkit doctor``'s): a fencing counter never expires by
        itself, and deleting it restarts the lock's fencing tokens, so never call this
        for a lock that is in use.
        """
        keys = self.keys(self.normalize_name(name))
        for server in self.servers:
            self.call(server, server.client.delete, *keys)

    @classmethod
    def probe(cls, location: str) -> Support:
        """A directory alone says nothing about Redis: it must be configured by URL."""
        del location
        return Support(
            ok=False,
            reason="needs a server URL: LOCKKIT_BACKEND=redis://host:6379/0 (or settings url)",
        )


_UNCONFIRMED_NOTE = (
    "{what}: without min_replicas a lock granted just before its master fails may be "
    "missing on the replica promoted in its place, and a second holder can get it; add "
    "?min_replicas=1 to the URL so an acquisition counts only once a replica has it (WAIT)"
)


class _Unconfirmed(Exception):
    """Too few replicas confirmed an acquisition; ``error`` is what the caller gets.

    With ``replicas_answered`` (WAIT answered, with too few), the error is marked
    ``server_answered``: the server is up, and `lockkit doctor` may ask it about its
    replicas.
    """

    def __init__(self, error: BackendUnavailable, *, replicas_answered: bool = False) -> None:
        super().__init__(str(error))
        if replicas_answered:
            error.server_answered = True  # type: ignore[attr-defined]
        self.error = error
        self.replicas_answered = replicas_answered


def _backend_options(options: dict[str, str], url: str) -> dict[str, Any]:
    """`RedisBackend` keyword arguments from the URL options lockkit reads itself.

    Raises:
        SettingsError: A value is invalid (said with the URL, without its password).
    """
    kwargs: dict[str, Any] = {}
    for key in ("prefix", "root"):
        if key in options:
            kwargs[key] = options[key]
    try:
        if "ttl" in options:
            kwargs["default_ttl"] = parse("ttl", options["ttl"], "ttl=")
        if "poll" in options:
            kwargs["poll"] = parse("poll", options["poll"], "poll=")
        for key in ("replica_timeout", "failover_timeout"):
            if key in options:
                kwargs[key] = parse("poll", options[key], f"{key}=")
        if "min_replicas" in options:
            text = options["min_replicas"].strip()
            if not text.isdigit():
                raise ValueError(  # noqa: TRY301
                    f"min_replicas={options['min_replicas']!r} is not a whole number "
                    f"(0 to {MAX_REPLICAS})"
                )
            kwargs["min_replicas"] = int(text)
    except ValueError as exc:
        raise SettingsError(f"{exc} in Redis URL {redact_url(url)}") from None
    return kwargs


def _expiry(lease: Lease) -> float | None:
    """When ``lease``'s key expires by itself, on the `time.monotonic` clock.

    ``None``: unknown. A release re-run past it (a failover) would find nothing to release.
    """
    if lease.expires is None:
        return None
    left = (lease.expires - dt.datetime.now(dt.UTC)).total_seconds()
    return time.monotonic() + left


def _default_root() -> str:
    from lockkit._settings import load_settings, openclaw_state_dir  # noqa: PLC0415

    settings = load_settings()
    return (settings.root if settings else None) or openclaw_state_dir()
