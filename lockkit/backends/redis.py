"""The ``redis`` backend: locks kept in Redis or Valkey, off the filesystem entirely.

Select it with ``LOCKKIT_BACKEND=redis://host:6379/0`` (or ``rediss://`` for TLS,
``unix:///run/redis.sock``); several comma-separated URLs make a Redlock across
independent masters. Installed with the ``redis`` extra; redis-py is imported only when
this backend is used.

Key layout, for a lock named ``N`` (a path under ``root`` becomes its relative path, so
hosts that mount a share at different places agree), with the default prefix
``lockkit:`` and a hash tag so all keys of a lock live in one cluster slot:

* ``lockkit:{N}``: the holder's JSON payload (the file payload's fields), ``PX`` = ttl.
* ``lockkit:{N}:fence``: the fencing counter, ``INCR``-ed by every acquisition.
* ``lockkit:{N}:waiters``: the hand-off queue, a list of waiters' entries.
* ``lockkit:{N}:readers``: shared (read) holders, a sorted set of their payloads scored
  by expiry (server time, ms).

Acquire is one round trip (a script doing ``SET NX PX`` and ``INCR``), release one
(compare-and-delete, then a hand-off), like the raw primitive. A Redlock acquisition
takes two rounds over its servers: the second (`_FENCE`) makes its fencing token
order holders. Scripts run on a
connection each thread keeps (`lockkit.backends._redis_conn`), not one checked out of
redis-py's pool per command.

**Hand-off.** Each waiting thread listens on a channel of its own
(``lockkit:waiter:<random>``), subscribed once for the thread's life. A waiter queues an
entry, atomically with finding the lock busy, carrying the payload of its failed
attempt. A release then *grants* the lock to the first entry whose waiter still
listens: in the same script it sets that payload, increments the fence and publishes
the grant, so the waiter's next attempt returns the lease without a round trip and
nobody can slip in between (first come, first served). ``PUBLISH`` says how many
received the grant; one nobody heard (a dead waiter) is undone and passed on. Readers,
asyncio tasks and Redlock waiters queue plain entries and are only woken. A waiter also
re-checks after a bounded interval (``poll``), so a lost message or a crashed waiter
delays but never hangs anyone.

**Shared locks** (one server; a Redlock has none). A reader joins ``:readers`` if the
exclusive key is free; a writer's ``SET NX`` runs only if no reader's entry is live
(a first attempt only if there is no readers' set at all; later ones prune it).
Entries past their expiry (a crashed reader's) are dropped by the next attempt, so a
dead reader holds writers off for at most its TTL. The last reader out hands the lock
off like a release; a reader that gets in passes a wake-up on, so readers queued
together get in together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
import time
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Self

import attrs

from lockkit._info import Lease, LockInfo, Owner
from lockkit._numbers import check, parse
from lockkit._redact import redact_url
from lockkit.backends._file import decode_payload, encode_payload
from lockkit.backends._redis_conn import Script, ThreadConnection
from lockkit.errors import (
    BackendUnavailable,
    InvalidLockName,
    LockkitWarning,
    SettingsError,
    SharedLocksUnsupported,
)
from lockkit.spec import Backend, Capabilities, Support, hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from lockkit.spec import Waiter

__all__ = [
    "DEFAULT_TTL",
    "RedisBackend",
    "eviction_warning",
    "lockkit_register_backends",
    "unavailable",
]

log = logging.getLogger("lockkit")

DEFAULT_TTL = 30.0
"""Seconds a Redis lock lives without renewal when the lock has no ``ttl`` of its own.

A Redis lock always expires, so a crashed holder never blocks forever; the core renews
it every ``ttl / 3`` while it is held."""

MAX_NAME = 1024
"""Longest lock name (in UTF-8 bytes) accepted as a key."""

_KEY_CACHE_SIZE = 1024

# Options lockkit reads from the URL query; everything else goes to redis-py.
_OUR_OPTIONS = ("prefix", "ttl", "root", "poll")

# The next fencing token. A counter that is missing (first use, a server restarted
# without persistence, FLUSHALL, an eviction) starts from the server's clock in
# microseconds, not from 0: every token handed out before it was lost is smaller, as
# long as the counter grew by less than one per microsecond (Redis cannot go faster)
# and the server's clock did not step back. Tokens stay below 2**53, exact in a double
# (JavaScript) until the year 2255. TIME before a write needs effects replication.
_NEXT_FENCE = """
if redis.replicate_commands then redis.replicate_commands() end
local function next_fence()
  if redis.call('exists', KEYS[2]) == 0 then
    local t = redis.call('time')
    redis.call('set', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return redis.call('incr', KEYS[2])
end
"""
# Every script takes KEYS = lock, fence, waiters (`RedisBackend._keys`), so they can
# share the hand-off function. Readers (shared holders) are KEYS[1]..':readers', a
# sorted set of payloads scored by expiry in server milliseconds; that key is derived
# here rather than passed, so every script respects readers, and it carries the lock's
# hash tag, hence its cluster slot. TIME before writes needs effects replication, the
# only mode from Redis 7 on; older servers are asked for it.
_READERS = """
if redis.replicate_commands then redis.replicate_commands() end
local readers = KEYS[1] .. ':readers'
local function now_ms()
  local t = redis.call('time')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_readers()
  if redis.call('exists', readers) == 0 then return 0 end
  redis.call('zremrangebyscore', readers, '-inf', now_ms())
  return redis.call('zcard', readers)
end
local function keep_until_last()
  local last = redis.call('zrange', readers, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('pexpireat', readers, last[2]) end
end
"""
# Queue entries. A *grant* entry is channel, token, ttl ms and payload joined by "\n": the waiter's
# payload, registered so that a release can hand it the lock without another round
# trip (`hand_off`). A *plain* entry is just the channel: a reader's, a Redlock
# waiter's or an asyncio waiter's, which are woken to try again. A newline cannot occur in
# a channel, a token or a number, and the payload is last, so it may contain anything.
#
# hand_off gives the lock to the first waiter still listening, or wakes it. A grant
# SETs the waiter's payload and INCRs the fence before publishing name, token and fence:
# the wake-up *is* the acquisition. PUBLISH returns how many received the message; an
# entry nobody listens to any more is dropped and its grant undone. can_grant is false
# while readers hold the lock: a writer's entry then stays first in line, unwoken.
_HAND_OFF = (
    _NEXT_FENCE
    + """
local function hand_off(name, can_grant)
  while true do
    local entry = redis.call('lindex', KEYS[3], 0)
    if not entry then return end
    local a = string.find(entry, '\\n', 1, true)
    if not a then
      redis.call('lpop', KEYS[3])
      if redis.call('publish', entry, name) > 0 then return end
    elseif not can_grant then
      return
    else
      redis.call('lpop', KEYS[3])
      local b = string.find(entry, '\\n', a + 1, true)
      local c = string.find(entry, '\\n', b + 1, true)
      redis.call('set', KEYS[1], string.sub(entry, c + 1), 'PX', string.sub(entry, b + 1, c - 1))
      -- '%.0f': a token above 2**31 would print as 1.7e+15 by itself.
      local fence = string.format('%.0f', next_fence())
      local note = name .. '\\n' .. string.sub(entry, a + 1, b - 1) .. '\\n' .. fence
      if redis.call('publish', string.sub(entry, 1, a - 1), note) > 0 then return end
      redis.call('del', KEYS[1])
    end
  end
end
"""
)
# The first attempt of an acquisition (not queued): SET NX PX and INCR, unless readers
# may hold the lock (then the full _ACQUIRE decides, after waiting). ARGV: payload, ttl.
# Returns the fence, or, when the lock is held, what `inspect` reads (payload, pttl,
# fence): the caller looks at the holder next, and this saves it the round trip.
_ACQUIRE_FAST = (
    _NEXT_FENCE
    + """
if redis.call('exists', KEYS[1] .. ':readers') == 1 then return false end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return next_fence()
end
return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1]), redis.call('get', KEYS[2])}
"""
)
# Keep a waiter that found the lock busy in the queue, its entry replaced by a fresh
# one (ARGV[3] replaces ARGV[5]); at the front if a wake-up brought it here.
_REQUEUE = """
redis.call('lrem', KEYS[3], 0, ARGV[5])
if ARGV[4] == 'front' then
  redis.call('lpush', KEYS[3], ARGV[3])
else
  redis.call('rpush', KEYS[3], ARGV[3])
end
redis.call('pexpire', KEYS[3], ARGV[6])
return false
"""
# An attempt by a queued waiter. ARGV: payload, ttl ms, the new entry, 'front' or
# 'back', the entry queued now, queue ttl ms, that entry's payload ('' if plain).
# Returns {fence, 0} when SET NX took the lock for ARGV[1], {fence, 1} when a release
# had already granted it to the queued entry (the waiter was not listening), false when
# busy (re-queued).
_ACQUIRE = (
    _READERS
    + _NEXT_FENCE
    + """
if ARGV[7] ~= '' and redis.call('get', KEYS[1]) == ARGV[7] then
  return {tonumber(redis.call('get', KEYS[2])), 1}
end
if live_readers() == 0 and redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('lrem', KEYS[3], 0, ARGV[5])
  return {next_fence(), 0}
end
"""
    + _REQUEUE
)
# ARGV: the holder's payload, the lock name. Hands the lock to the first waiter.
_RELEASE = (
    _HAND_OFF
    + """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  hand_off(ARGV[2], true)
  return 1
end
return 0
"""
)
# ARGV: the entry, queue ttl ms. 0 = the lock is free (try again); 1 = queued.
# Readers hold the lock too: a writer waiting for them must queue, not spin.
_ENQUEUE = (
    _READERS
    + """
if redis.call('exists', KEYS[1]) == 0 and live_readers() == 0 then return 0 end
redis.call('lrem', KEYS[3], 0, ARGV[1])
redis.call('rpush', KEYS[3], ARGV[1])
redis.call('pexpire', KEYS[3], ARGV[2])
return 1
"""
)
# A waiter leaving (acquired elsewhere, timed out, cancelled): drop its entry. A lock
# granted to it that it will not use goes to the next waiter; so does a wake-up it was
# given for a lock that is still free. ARGV: the entry, the lock name, '1' if it was
# woken, the entry's payload ('' if plain).
_LEAVE = (
    _READERS
    + _HAND_OFF
    + """
redis.call('lrem', KEYS[3], 0, ARGV[1])
if ARGV[4] ~= '' and redis.call('get', KEYS[1]) == ARGV[4] then
  redis.call('del', KEYS[1])
  hand_off(ARGV[2], true)
elseif ARGV[3] == '1' and redis.call('exists', KEYS[1]) == 0 then
  hand_off(ARGV[2], live_readers() == 0)
end
return 1
"""
)
# Redlock's second round, on every server once a quorum said yes. KEYS: lock, fence.
# ARGV: the holder's payload, the lease's fencing token T (the largest counter the
# quorum's INCRs returned). Raises the counter to at least T, then says whether this
# server still holds our key. The lease counts only if the servers answering 1 make a
# quorum R: the next holder's quorum meets R in some server whose key we held from
# before the raise, so its SET NX there, and the INCR with it, come after the raise,
# and its token (a maximum that includes that INCR) exceeds T. Raising the servers
# outside R too keeps tokens rising when one of R later restarts without its data.
_FENCE = """
local counter = tonumber(redis.call('get', KEYS[2]) or '0')
if counter < tonumber(ARGV[2]) then redis.call('set', KEYS[2], ARGV[2]) end
if redis.call('get', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""
# KEYS: lock. ARGV: the holder's payload, ttl ms.
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# ARGV: the broken holder's token, the lock name.
_BREAK = (
    _HAND_OFF
    + """
local value = redis.call('get', KEYS[1])
if value and cjson.decode(value)['token'] == ARGV[1] then
  redis.call('del', KEYS[1])
  hand_off(ARGV[2], true)
  return 1
end
return 0
"""
)
# A queue entry outlives its waiter by at most this long (each wait renews it).
_QUEUE_TTL_MS = 60_000
# How long (seconds) what a failed attempt saw of the holder stands in for `inspect`.
_SEEN_FOR = 0.05


def queued_args(
    payload: str, ttl_ms: int, entry: str, *, woken: bool, queued: str, queued_payload: str = ""
) -> list[str | int]:
    """ARGV of `_ACQUIRE`, the attempt of a queued waiter (blocking or asyncio).

    Args:
        payload: What the attempt stores if it takes the lock.
        ttl_ms: The key's lifetime.
        entry: The entry to queue if the lock is still busy.
        woken: A wake-up brought the waiter here: it keeps its place at the front.
        queued: The entry queued now, which ``entry`` replaces.
        queued_payload: That entry's payload, if it is a grant entry ('' if plain).
    """
    position = "front" if woken else "back"
    return [payload, ttl_ms, entry, position, queued, _QUEUE_TTL_MS, queued_payload]


# ARGV[1..6] as for _ACQUIRE (ARGV[1] is the reader's payload; readers queue plain
# entries, so ARGV[3] == ARGV[5]); ARGV[7]: the lock name. A reader that gets in passes
# a wake-up on, since the next waiter may be a reader too; a writer's entry stays first.
_ACQUIRE_SHARED = (
    _READERS
    + _HAND_OFF
    + """
if redis.call('exists', KEYS[1]) == 0 then
  live_readers()
  redis.call('zadd', readers, now_ms() + tonumber(ARGV[2]), ARGV[1])
  keep_until_last()
  redis.call('lrem', KEYS[3], 0, ARGV[5])
  hand_off(ARGV[7], false)
  return next_fence()
end
if ARGV[3] == '' then return false end
"""
    + _REQUEUE
)
# ARGV: the reader's payload, the lock name. The last one out hands the lock off.
_RELEASE_SHARED = (
    _READERS
    + _HAND_OFF
    + """
if redis.call('zrem', readers, ARGV[1]) == 0 then return 0 end
if live_readers() == 0 then hand_off(ARGV[2], true) end
return 1
"""
)
# KEYS: lock. ARGV: the reader's payload, ttl ms. An entry past its expiry is lost: a
# writer may have got in since.
_REFRESH_SHARED = (
    _READERS
    + """
local expiry = redis.call('zscore', readers, ARGV[1])
if not expiry then return 0 end
local now = now_ms()
if tonumber(expiry) <= now then
  redis.call('zrem', readers, ARGV[1])
  return 0
end
redis.call('zadd', readers, 'XX', now + tonumber(ARGV[2]), ARGV[1])
keep_until_last()
return 1
"""
)

_redis_module: Any = None


def _import_redis() -> Any:  # noqa: ANN401 - the module, typed at the use sites
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


def unavailable(shown: str, exc: BaseException) -> BackendUnavailable:
    """The `BackendUnavailable` that a redis-py error on the server ``shown`` becomes.

    One place for the blocking and asyncio sides, so every redis-py exception leaves a
    public call as a `lockkit.LockError` with a message that says what to do.
    """
    errors = (_redis_module or _import_redis()).exceptions
    detail = redact_url(str(exc)) or type(exc).__name__

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
            "LOAD, GET, PTTL, ZRANGE, TIME, DEL, SUBSCRIBE, PUBLISH on its keys and channels)"
        )
    elif isinstance(exc, (errors.ConnectionError, errors.TimeoutError, OSError)):
        message = f"cannot reach Redis at {shown}"
    elif isinstance(exc, errors.ResponseError):
        message = f"Redis at {shown} answered with an error"
    else:
        message = f"Redis at {shown} failed ({type(exc).__name__})"
    return BackendUnavailable(f"{message}: {detail}")


def eviction_warning(server: _Server) -> str | None:
    """Why ``server`` may drop lock keys on its own (its eviction policy), or ``None``.

    Read from ``INFO memory``, else ``CONFIG GET`` (either may be disabled or denied:
    then nothing is known and nothing is said). Any policy but ``noeviction`` lets a
    server that reaches ``maxmemory`` delete keys: ``volatile-*`` those with a TTL, which
    every lock key has, ``allkeys-*`` any, fencing counters included.
    """
    redis = _redis_module or _import_redis()
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
class _Server:
    """One Redis server: its pool (shared by every lock of the process) and scripts."""

    url: str = attrs.field(repr=redact_url)
    client: Any = attrs.field(repr=False)
    acquire_fast: Script = attrs.field(repr=False)
    acquire: Script = attrs.field(repr=False)
    release: Script = attrs.field(repr=False)
    refresh: Script = attrs.field(repr=False)
    fence: Script = attrs.field(repr=False)
    break_: Script = attrs.field(repr=False)
    enqueue: Script = attrs.field(repr=False)
    leave: Script = attrs.field(repr=False)
    acquire_shared: Script = attrs.field(repr=False)
    release_shared: Script = attrs.field(repr=False)
    refresh_shared: Script = attrs.field(repr=False)

    @property
    def shown(self) -> str:
        return redact_url(self.url)


class RedisBackend(Backend):
    """Redis/Valkey locks: ``SET NX PX``, Lua compare-and-delete, one waiter woken per release."""

    name: ClassVar[str] = "redis"
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix", "valkey", "valkeys")
    description: ClassVar[str] = (
        "Redis/Valkey: SET NX PX with Lua release, queued hand-off, fencing, Redlock"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, released_on_crash=True, ttl=True, fencing=True, shared=True, notify=True
    )
    """One server can share; a Redlock instance (several URLs) turns ``shared`` off."""

    def __init__(
        self,
        urls: Iterable[str] = (),
        *,
        prefix: str = "lockkit:",
        default_ttl: float = DEFAULT_TTL,
        root: str | None = None,
        poll: float = 0.5,
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
        """
        redis = _import_redis()
        self.urls = tuple(urls)
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
        self.root = root or _default_root()
        self._servers = [self._connect(redis, url) for url in self.urls]
        self.quorum = len(self._servers) // 2 + 1
        self._waiting = _ThreadWait()
        self._unchecked = list(self._servers)  # eviction policies not read yet
        self._key_cache: dict[str, tuple[str, str, str]] = {}
        if len(self._servers) > 1:
            # Readers would need a quorum and a validity rule of their own; not offered.
            vars(self)["capabilities"] = attrs.evolve(self.capabilities, shared=False)

    @staticmethod
    def _connect(redis: Any, url: str) -> _Server:  # noqa: ANN401
        options: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
        userinfo = url.rfind("@") >= 0
        try:
            if userinfo and "@" not in urllib.parse.urlsplit(url).netloc:
                # An unencoded "/", "?" or "#" in the password ends the authority early:
                # redis-py would take the rest of the password for a path or options.
                raise ValueError("the user name or password holds an unencoded character")  # noqa: TRY301
            pool = redis.ConnectionPool.from_url(url, **options)
            # Options go to the connection class: build one (it does not connect yet),
            # so a wrong option is reported here, not as a TypeError at first use.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as exc:
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
        # Scripts run on a connection each thread keeps (see _redis_conn for why).
        connection = ThreadConnection(pool)
        return _Server(
            url=url,
            client=client,
            acquire_fast=Script(_ACQUIRE_FAST, connection),
            acquire=Script(_ACQUIRE, connection),
            release=Script(_RELEASE, connection),
            refresh=Script(_REFRESH, connection),
            fence=Script(_FENCE, connection),
            break_=Script(_BREAK, connection),
            enqueue=Script(_ENQUEUE, connection),
            leave=Script(_LEAVE, connection),
            acquire_shared=Script(_ACQUIRE_SHARED, connection),
            release_shared=Script(_RELEASE_SHARED, connection),
            refresh_shared=Script(_REFRESH_SHARED, connection),
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from ``redis://``, ``rediss://`` or ``unix://`` URLs, comma-separated.

        Query options read by lockkit (and removed before redis-py sees the URL):
        ``prefix`` (key prefix, default ``lockkit:``), ``ttl`` (default lifetime in
        seconds), ``root``, ``poll`` (longest wait between re-checks, seconds).
        Everything else is redis-py's: ``db``, ``socket_timeout``,
        ``socket_connect_timeout``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
        ``ssl_cert_reqs``...
        """
        options: dict[str, str] = {}
        urls = []
        for part in url.split(","):
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
        kwargs: dict[str, Any] = {}
        for key in ("prefix", "root"):
            if key in options:
                kwargs[key] = options[key]
        try:
            if "ttl" in options:
                kwargs["default_ttl"] = parse("ttl", options["ttl"], "ttl=")
            if "poll" in options:
                kwargs["poll"] = parse("poll", options["poll"], "poll=")
        except ValueError as exc:
            raise SettingsError(f"{exc} in Redis URL {redact_url(url)}") from None
        return cls(urls, **kwargs)

    def __repr__(self) -> str:
        """Show the servers without passwords."""
        shown = ", ".join(server.shown for server in self._servers)
        return f"<RedisBackend {shown} prefix={self.prefix!r}>"

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

    def _keys(self, name: str) -> tuple[str, str, str]:
        keys = self._key_cache.get(name)
        if keys is None:
            tagged = f"{self.prefix}{{{name}}}"
            keys = (tagged, f"{tagged}:fence", f"{tagged}:waiters")
            if len(self._key_cache) >= _KEY_CACHE_SIZE:
                self._key_cache.clear()
            self._key_cache[name] = keys
        return keys

    # -- operations ------------------------------------------------------------------------

    def _call(self, server: _Server, action: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401
        redis = _redis_module or _import_redis()
        try:
            return action(*args)
        except (redis.RedisError, OSError) as exc:
            raise unavailable(server.shown, exc) from None

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """``SET NX PX`` on every server (one for plain Redis); quorum wins (Redlock).

        A thread waiting for this lock (between `wait` and `stop_waiting`) re-queues
        itself in the same script when the lock is still busy, so no release can slip
        between its attempt and its next wait unnoticed. If a release has handed it the
        lock meanwhile (see `wait`), the attempt takes that grant without a round trip.
        """
        if self._unchecked:
            self.check_eviction()
        if shared:
            return self._try_acquire_shared(name, owner, ttl)
        waiting = self._waiting
        if waiting.name == name and waiting.pid == os.getpid():
            return self._try_acquire_queued(name, owner, ttl)
        offer = _Offer.make(self, name, owner, ttl)
        if len(self._servers) == 1:
            server = self._servers[0]
            keys = self._keys(name)
            fence = self._call(server, server.acquire_fast, keys[:2], [offer.payload, offer.ttl_ms])
            if not isinstance(fence, int):
                waiting.offer = offer  # what `wait` queues, so a release can grant it
                # The holder as the failed attempt saw it: the `inspect` that follows
                # (the core looks at who beat us) takes it instead of a round trip.
                waiting.seen = (name, fence, time.monotonic()) if fence else None
                return None
            # Plain Redis: the key is ours until its expiry; no clock arithmetic needed.
            return offer.lease(int(fence))
        return self._try_acquire_redlock(name, offer)

    def check_eviction(self) -> list[str]:
        """Warn once per server (`LockkitWarning`) whose eviction policy can drop locks.

        Called on the first acquisition; `lockkit doctor` shows the warning as a note.
        Returns the warnings of the servers checked now.
        """
        found = []
        for server in list(self._unchecked):
            try:
                warning = eviction_warning(server)
            except BackendUnavailable:
                continue  # unreachable: asked again on the next acquisition
            with contextlib.suppress(ValueError):
                self._unchecked.remove(server)
            if warning is not None:
                found.append(warning)
                log.warning("lockkit: %s", warning)
                warnings.warn(warning, LockkitWarning, stacklevel=4)
        return found

    def _try_acquire_queued(self, name: str, owner: Owner, ttl: float | None) -> Lease | None:
        """An attempt by a queued thread: use a grant, or try and keep our place in line."""
        waiting = self._waiting
        queued = waiting.queued
        fence = waiting.granted
        if fence is not None and queued is not None:
            # A release gave us the lock and told us so (`wait`): nothing to ask.
            waiting.leave_queue()
            return queued.lease(fence)
        offer = _Offer.make(self, name, owner, ttl)
        if len(self._servers) > 1:
            return self._try_acquire_redlock(name, offer)
        server = self._servers[0]
        # A fresh entry replaces the queued one on every attempt, so the payload a
        # release grants is never older than one `poll` interval.
        entry, grantable = self._entry(offer)
        args = queued_args(
            offer.payload,
            offer.ttl_ms,
            entry,
            woken=waiting.woken,
            queued=waiting.entry,
            queued_payload=queued.payload if queued is not None else "",
        )
        result = self._call(server, server.acquire, self._keys(name), args)
        waiting.woken = False
        if result is None:
            waiting.entry, waiting.queued = entry, grantable
            return None
        fence, was_granted = int(result[0]), bool(result[1])
        waiting.leave_queue()  # the script took our entry out of the queue
        if was_granted and queued is not None:
            return queued.lease(fence)
        return offer.lease(fence)

    def _entry(self, offer: _Offer) -> tuple[str, _Offer | None]:
        """This thread's queue entry for ``offer``: a grant entry on one server, else plain."""
        channel = self._waiting.channel
        if len(self._servers) > 1:
            return channel, None  # a grant on one server is not a Redlock
        entry = f"{channel}\n{offer.owner.token}\n{offer.ttl_ms}\n{offer.payload}"
        return entry, offer

    def _try_acquire_redlock(self, name: str, offer: _Offer) -> Lease | None:
        """``SET NX PX`` on every server; ours if a quorum agrees twice, in time.

        Round one takes the key (and ``INCR``s the fence) on each server; the token is
        the largest counter of the servers that said yes. Round two (`_FENCE`, on every
        server) raises each counter to that token and checks that the key is still
        ours; only a quorum of yes in round two makes the lease, so fencing tokens
        strictly increase from holder to holder (see `_FENCE` for why).
        """
        waiting = self._waiting
        queued = waiting.name == name and waiting.pid == os.getpid()
        keys = self._keys(name)
        start = time.monotonic()
        fences: list[int] = []
        failures: list[BackendUnavailable] = []
        for index, server in enumerate(self._servers):
            try:
                if queued and index == waiting.server:
                    # Waiters queue plain entries on the server they listen to.
                    args = queued_args(
                        offer.payload,
                        offer.ttl_ms,
                        waiting.entry,
                        woken=waiting.woken,
                        queued=waiting.entry,
                    )
                    result = self._call(server, server.acquire, keys, args)
                    result = None if result is None else result[0]
                else:
                    args = [offer.payload, offer.ttl_ms]
                    result = self._call(server, server.acquire_fast, keys[:2], args)
                    result = result if isinstance(result, int) else None
            except BackendUnavailable as exc:
                failures.append(exc)
                continue
            if result is not None:
                fences.append(int(result))
        if queued:
            waiting.woken = False
        if len(fences) >= self.quorum and self._valid(offer, start):
            token = max(fences)
            confirmed, failures = self._raise_fences(keys, offer.payload, token)
            if confirmed >= self.quorum and self._valid(offer, start):
                return offer.lease(token)
        if fences:
            # A partial Redlock must leave no keys behind on the servers that said yes.
            self._release_everywhere(name, offer.payload)
        if len(failures) > len(self._servers) - self.quorum:
            raise failures[0]
        return None

    @staticmethod
    def _valid(offer: _Offer, start: float) -> bool:
        """Redlock validity: time left of the ttl after the time spent, minus drift."""
        drift = offer.ttl * 0.01 + 0.002
        return offer.ttl - (time.monotonic() - start) - drift > 0

    def _raise_fences(
        self, keys: tuple[str, str, str], payload: str, token: int
    ) -> tuple[int, list[BackendUnavailable]]:
        """Round two of a Redlock acquisition (`_FENCE`) on every server.

        Returns how many servers raised their counter to ``token`` while still holding
        our key, and the servers that could not be asked.
        """
        confirmed = 0
        failures: list[BackendUnavailable] = []
        for server in self._servers:
            try:
                confirmed += int(self._call(server, server.fence, keys[:2], [payload, token]))
            except BackendUnavailable as exc:
                failures.append(exc)
        return confirmed, failures

    def _release_everywhere(self, name: str, payload: str) -> int:
        return self._release_counted(name, payload)[0]

    def _release_counted(self, name: str, payload: str) -> tuple[int, int]:
        """Compare-and-delete on every server: (keys deleted, servers unreachable)."""
        keys = self._keys(name)
        released = unreachable = 0
        for server in self._servers:
            try:
                released += int(self._call(server, server.release, keys, [payload, name]))
            except BackendUnavailable:
                unreachable += 1  # its copy expires by itself
        return released, unreachable

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete on every server; wakes the first queued waiter.

        A reader's lease leaves the readers' set; the last reader out wakes the waiter.
        """
        if isinstance(lease.handle, _Reader):
            return self._release_shared(lease)
        released, unreachable = self._release_counted(lease.name, lease.handle)
        # An unreachable server's copy expires by itself; only keys found gone or
        # another's on a majority mean the lock had been lost.
        return released + unreachable >= self.quorum and released > 0

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Compare-and-``PEXPIRE`` on every server; ours while a quorum agrees."""
        if isinstance(lease.handle, _Reader):
            return self._refresh_shared(lease, ttl)
        key, _, _ = self._keys(lease.name)
        ttl_ms = max(1, int(ttl * 1000))
        renewed = 0
        failures: list[BackendUnavailable] = []
        for server in self._servers:
            try:
                renewed += int(self._call(server, server.refresh, [key], [lease.handle, ttl_ms]))
            except BackendUnavailable as exc:
                failures.append(exc)
        if renewed >= self.quorum:
            return True
        if failures and renewed + len(failures) >= self.quorum:
            raise failures[0]  # cannot tell yet: the core retries until the expiry
        return False

    def inspect(self, name: str) -> LockInfo | None:
        """The holder's payload, expiry and fencing token, from the first server that answers.

        Right after this thread's attempt failed, the holder that attempt saw (read in
        the same script, so atomically with the failure) is returned instead of asking
        again; the core always looks at the holder after a failed attempt.
        """
        seen = self._waiting.seen
        if seen is not None:
            self._waiting.seen = None
            if seen[0] == name and time.monotonic() - seen[2] < _SEEN_FOR:
                value, pttl, counter = seen[1]
                return holder_info(name, self.name, value, pttl, counter)
        key, fence, _ = self._keys(name)
        if len(self._servers) > 1:
            return self._inspect_redlock(name, key, fence)
        server = self._servers[0]
        value, pttl, counter = self._call(server, _inspect, server, key, fence)
        if value is None:
            return self._inspect_shared(server, name, counter)
        return holder_info(name, self.name, value, pttl, counter)

    def _inspect_redlock(self, name: str, key: str, fence: str) -> LockInfo | None:
        """The holder a quorum of servers agrees on, else ``None`` (nobody holds it).

        A key on a minority of servers is no lock: it belongs to an attempt that is
        being undone, or to a holder that lost its quorum. Raises `BackendUnavailable`
        when the unreachable servers could make up the difference (cannot tell).
        """
        copies: dict[bytes, list[tuple[int | None, int]]] = {}
        failures: list[BackendUnavailable] = []
        for server in self._servers:
            try:
                value, pttl, counter = self._call(server, _inspect, server, key, fence)
            except BackendUnavailable as exc:
                failures.append(exc)
                continue
            if value is not None:
                copies.setdefault(value, []).append((pttl, int(counter or 0)))
        for value, seen in copies.items():
            if len(seen) >= self.quorum:
                # Held while a quorum of its keys live: until the quorum-th longest expires.
                pttls = sorted((pttl or 0 for pttl, _ in seen), reverse=True)
                fence_seen = max(counter for _, counter in seen)
                return holder_info(name, self.name, value, pttls[self.quorum - 1], fence_seen)
        most = max((len(seen) for seen in copies.values()), default=0)
        if failures and most + len(failures) >= self.quorum:
            raise failures[0]
        return None

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete the key if it still holds ``expected``'s token (atomic, in Lua)."""
        if expected.owner is None or not expected.owner.token:
            return False
        keys = self._keys(name)
        broken = 0
        for server in self._servers:
            try:
                broken += int(self._call(server, server.break_, keys, [expected.owner.token, name]))
            except BackendUnavailable:
                continue
        return broken > 0

    # -- shared (read) locks: one server only ------------------------------------------

    def _try_acquire_shared(self, name: str, owner: Owner, ttl: float | None) -> Lease | None:
        """Join the readers if no writer holds the lock; queue like `try_acquire` if busy."""
        if len(self._servers) > 1:
            raise SharedLocksUnsupported(
                f"{self.name} (a Redlock over {len(self._servers)} servers)",
                ["filelock", f"{self.name} with one server URL"],
            )
        server = self._servers[0]
        offer = _Offer.make(self, name, owner, ttl)
        waiting = self._waiting
        args: list[Any] = [offer.payload, offer.ttl_ms]
        queued = waiting.name == name and waiting.pid == os.getpid()
        if queued:
            # Readers queue plain entries: they are woken, never granted the lock.
            position = "front" if waiting.woken else "back"
            args += [waiting.channel, position, waiting.entry, _QUEUE_TTL_MS]
        else:
            waiting.offer = None  # a reader's wait queues a plain entry
            args += ["", "", "", 0]
        result = self._call(server, server.acquire_shared, self._keys(name), [*args, name])
        if queued:
            waiting.woken = False
            if result is None:
                waiting.entry, waiting.queued = waiting.channel, None
            else:
                waiting.leave_queue()
        if result is None:
            return None
        return Lease(
            name,
            self.name,
            offer.owner,
            expires=offer.expires,
            fencing_token=int(result),
            ttl=offer.ttl,
            handle=_Reader(offer.payload),
        )

    def _release_shared(self, lease: Lease) -> bool:
        server = self._servers[0]
        args = [lease.handle.payload, lease.name]
        return bool(self._call(server, server.release_shared, self._keys(lease.name), args))

    def _refresh_shared(self, lease: Lease, ttl: float) -> bool:
        key, _, _ = self._keys(lease.name)
        server = self._servers[0]
        args = [lease.handle.payload, max(1, int(ttl * 1000))]
        return bool(self._call(server, server.refresh_shared, [key], args))

    def _inspect_shared(self, server: _Server, name: str, counter: Any) -> LockInfo | None:  # noqa: ANN401
        """Readers holding ``name``: the one whose entry lasts longest stands for them."""
        key, _, _ = self._keys(name)
        last, (seconds, micros) = self._call(server, _last_reader, server, f"{key}:readers")
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        if not last or last[0][1] <= now_ms:
            return None
        member, score = last[0]
        return holder_info(name, self.name, member, score - now_ms, counter, shared=True)

    # -- waiting ---------------------------------------------------------------------------

    def waiter(self, name: str) -> Waiter:
        """A waiter driving `wait`/`stop_waiting`: the hand-off queue, per thread for now."""
        from lockkit._calls import LegacyWaiter  # noqa: PLC0415 - the core imports us first

        return LegacyWaiter(self, name)

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        """Queue for the lock and sleep until a release hands it to us, bounded by ``poll``.

        The first wait of an acquisition queues this thread (atomically with checking
        that the lock is still held); later attempts re-queue inside `try_acquire`. On
        one server, the queue entry carries the payload of the attempt that failed, and
        a release *grants* the lock to the first entry: it sets that payload and sends
        the fencing token, so the next `try_acquire` returns the lease at once. Readers
        and Redlock waiters are only woken, and try again.
        """
        del attempt
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # The bound covers a lost message, a crashed waiter ahead of us, a holder that
        # died (its key expires, nobody releases) or an unreachable server: never hang.
        bound = min(remaining, self.poll)
        redis = _redis_module or _import_redis()
        waiting = self._waiting
        try:
            pubsub = self._listener()
            if waiting.name != name:
                offer = waiting.offer
                if offer is not None and offer.name == name:
                    entry, grantable = self._entry(offer)
                else:
                    entry, grantable = waiting.channel, None
                server = self._servers[waiting.server]
                if not self._call(server, server.enqueue, self._keys(name), [entry, _QUEUE_TTL_MS]):
                    return True  # released before we queued: try again now
                waiting.name, waiting.entry, waiting.queued = name, entry, grantable
                waiting.woken = False
                waiting.granted = None
            end = time.monotonic() + bound
            plain = name.encode()
            while (left := end - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=left)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"]
                # Wake-ups carry the lock's name: one meant for a lock this thread gave
                # up earlier is not ours. A grant names the entry's token, so one meant
                # for an earlier acquisition of the same lock is not ours either.
                if data == plain:
                    waiting.woken = True
                    return True
                fence = _granted_fence(data, name, waiting.queued)
                if fence is not None:
                    waiting.granted = fence
                    return True
        except (redis.RedisError, BackendUnavailable):
            # That server is down: listen on the next one from now on (a Redlock
            # releases on all of them), and wait out the bound here rather than spin.
            self._drop_listener()
            waiting.server = (waiting.server + 1) % len(self._servers)
            time.sleep(max(0.0, min(bound, deadline - time.monotonic())))
        return False

    def _listener(self) -> Any:  # noqa: ANN401 - a redis-py PubSub
        """This thread's subscriber connection, subscribed to its own waiter channel."""
        waiting = self._waiting
        pid = os.getpid()
        if waiting.pid != pid:
            # A forked child: its parent's connection and queue entries are not its own.
            waiting.reset(pid)
        if waiting.pubsub is None:
            server = self._servers[waiting.server]
            channel = f"{self.prefix}waiter:{os.urandom(12).hex()}"
            pubsub = server.client.pubsub()
            pubsub.subscribe(channel)
            # Wait for the confirmation: until the server has it, a release's PUBLISH
            # would find nobody listening and skip us.
            confirm_by = time.monotonic() + self.poll
            while (left := confirm_by - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=left)
                if message is not None and message.get("type") == "subscribe":
                    break
            waiting.pubsub = pubsub
            waiting.channel = channel
        return waiting.pubsub

    def stop_waiting(self, name: str) -> None:
        """Leave the lock's queue; a grant or wake-up this thread did not use is passed on."""
        waiting = self._waiting
        if waiting.name != name or waiting.pid != os.getpid():
            return
        entry, queued = waiting.entry, waiting.queued
        woken = waiting.woken or waiting.granted is not None
        waiting.leave_queue()
        server = self._servers[waiting.server]
        args = [entry, name, "1" if woken else "0", queued.payload if queued is not None else ""]
        try:
            server.leave(keys=self._keys(name), args=args)
        except (_redis_module or _import_redis()).RedisError:
            self._drop_listener()

    def _drop_listener(self) -> None:
        waiting = self._waiting
        pubsub = waiting.pubsub
        waiting.pubsub = None
        waiting.leave_queue()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    # -- asyncio: redis.asyncio, one client per event loop (lockkit.backends._redis_async);
    # a Redlock (several servers) runs the blocking methods in worker threads instead.

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """`try_acquire` over ``redis.asyncio``; safe to cancel (see the spec)."""
        if len(self.urls) > 1 or shared:
            return await super().try_acquire_async(name, owner, ttl, shared=shared)
        if self._unchecked:
            await asyncio.to_thread(self.check_eviction)  # once per server: one INFO
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        return await for_backend(self).try_acquire(self, name, owner, ttl)

    async def release_async(self, lease: Lease) -> bool:
        """`release` over ``redis.asyncio``; completes even if the caller is cancelled."""
        if len(self.urls) > 1 or isinstance(lease.handle, _Reader):
            return await super().release_async(lease)
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        return await for_backend(self).release(self, lease)

    async def inspect_async(self, name: str) -> LockInfo | None:
        """`inspect` over ``redis.asyncio``."""
        if len(self.urls) > 1:
            return await super().inspect_async(name)
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        return await for_backend(self).inspect(self, name)

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """`break_lock` over ``redis.asyncio``."""
        if len(self.urls) > 1:
            return await super().break_lock_async(name, expected)
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        return await for_backend(self).break_lock(self, name, expected)

    async def wait_async(self, name: str, deadline: float, attempt: int) -> bool:
        """`wait` over ``redis.asyncio``: the same hand-off queue, one listener per loop."""
        if len(self.urls) > 1:
            return await super().wait_async(name, deadline, attempt)
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        return await for_backend(self).wait(self, name, deadline)

    async def stop_waiting_async(self, name: str) -> None:
        """`stop_waiting` over ``redis.asyncio``: leave the queue, pass on a wake-up."""
        if len(self.urls) > 1:
            return
        from lockkit.backends._redis_async import for_backend  # noqa: PLC0415

        await for_backend(self).stop_waiting(self, name)

    def close(self) -> None:
        """Disconnect every connection of this backend; they reconnect on next use.

        The registry calls it when it is reset, so connections are closed rather than
        left for the garbage collector (which warns about unclosed sockets).
        """
        self._drop_listener()
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.client.connection_pool.disconnect()

    def forget_keys(self, name: str | os.PathLike[str]) -> None:
        """Delete every key of a lock nobody holds, fencing counter included.

        For throw-away locks (``lockkit doctor``'s): a fencing counter never expires by
        itself, and deleting it restarts the lock's fencing tokens, so never call this
        for a lock that is in use.
        """
        keys = self._keys(self.normalize_name(name))
        for server in self._servers:
            self._call(server, server.client.delete, *keys)

    @classmethod
    def probe(cls, location: str) -> Support:
        """A directory alone says nothing about Redis: it must be configured by URL."""
        del location
        return Support(
            ok=False,
            reason="needs a server URL: LOCKKIT_BACKEND=redis://host:6379/0 (or settings url)",
        )


@attrs.frozen
class _Reader:
    """The handle of a shared lease: its payload, which is its entry in the readers' set."""

    payload: str = attrs.field(repr=False)


@attrs.frozen
class _Offer:
    """One attempt's terms: what a lease gets, and what a queue entry registers."""

    name: str
    backend: str
    owner: Owner
    ttl: float
    ttl_ms: int
    expires: dt.datetime
    payload: str = attrs.field(repr=False)

    @classmethod
    def make(cls, backend: RedisBackend, name: str, owner: Owner, ttl: float | None) -> _Offer:
        ttl = ttl or backend.default_ttl
        # Computed before the attempt: the key cannot outlive it.
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        payload = encode_payload(owner, backend.name, expires).decode()
        return cls(name, backend.name, owner, ttl, max(1, int(ttl * 1000)), expires, payload)

    def lease(self, fence: int) -> Lease:
        """The lease this offer becomes once the key holds its payload.

        For a grant, the key's expiry was set when the release granted it, after this
        offer was made: ``expires`` errs early (by at most one ``poll``), never late.
        """
        return Lease(
            self.name,
            self.backend,
            self.owner,
            expires=self.expires,
            fencing_token=fence,
            ttl=self.ttl,
            handle=self.payload,
        )


class _ThreadWait(threading.local):
    """One thread's hand-off state: its listener, and its place in one lock's queue.

    Attributes:
        pid: The process these belong to (a forked child starts afresh).
        pubsub: The subscriber connection, subscribed to ``channel`` for the thread's life.
        channel: Where releases wake or grant this thread.
        server: Index of the server listened to (moves on when one is down).
        offer: The last failed unqueued attempt, which the first wait queues.
        name: The lock whose queue holds ``entry`` (``None``: not queued).
        entry: The queue entry, exactly as pushed.
        queued: The offer a grant entry registered (``None`` for a plain entry).
        woken: A plain wake-up arrived and no attempt has used it yet.
        granted: The fencing token of a grant that no attempt has used yet.
        seen: What the last failed attempt saw of the holder: (name, [payload, pttl,
            fence], when), for the `inspect` that follows it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pubsub: Any = None
        self.channel = ""
        self.server = 0
        self.offer: _Offer | None = None
        self.name: str | None = None
        self.entry = ""
        self.queued: _Offer | None = None
        self.woken = False
        self.granted: int | None = None
        self.seen: tuple[str, list[Any], float] | None = None

    def reset(self, pid: int) -> None:
        """Start afresh in process ``pid`` (a forked child inherits its parent's state)."""
        self.pid = pid
        self.pubsub = None
        self.offer = None
        self.leave_queue()

    def leave_queue(self) -> None:
        """Forget the queue entry (the caller has taken it out, or a release popped it)."""
        self.name = None
        self.entry = ""
        self.queued = None
        self.woken = False
        self.granted = None


def _granted_fence(data: bytes, name: str, queued: _Offer | None) -> int | None:
    """The fencing token if ``data`` grants ``queued``'s entry the lock, else ``None``."""
    if queued is None:
        return None
    lock, _, rest = data.decode(errors="replace").rpartition("\n")
    lock, _, token = lock.rpartition("\n")
    if lock != name or token != queued.owner.token or not rest.isdigit():
        return None
    return int(rest)


def _last_reader(server: _Server, readers: str) -> tuple[Any, Any]:
    pipe = server.client.pipeline(transaction=False)
    pipe.zrange(readers, -1, -1, withscores=True)
    pipe.time()
    last, now = pipe.execute()
    return last, now


def holder_info(
    name: str,
    backend: str,
    value: bytes,
    pttl: int | None,
    counter: bytes | int | None,
    *,
    shared: bool = False,
) -> LockInfo:
    """A `LockInfo` from what Redis holds for a lock: payload, time to live, fence counter.

    One place for the blocking backend, its shared-lock reading and the asyncio side.
    """
    payload = decode_payload(value)
    expires = None
    if pttl is not None and pttl > 0:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=pttl)
    age = None
    if payload.owner is not None and payload.owner.created is not None:
        age = max(0.0, time.time() - payload.owner.created.timestamp())
    return LockInfo(
        name=name,
        backend=backend,
        owner=payload.owner,
        expires=expires,
        fencing_token=int(counter) if counter is not None else None,
        age=age,
        problem=payload.problem,
        shared=shared,
    )


def _inspect(server: _Server, key: str, fence: str) -> tuple[Any, Any, Any]:
    pipe = server.client.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    pipe.get(fence)
    value, pttl, counter = pipe.execute()
    return value, pttl, counter


def _default_root() -> str:
    from lockkit._settings import load_settings, openclaw_state_dir  # noqa: PLC0415

    settings = load_settings()
    return (settings.root if settings else None) or openclaw_state_dir()


@hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``redis`` backend (its module imports redis-py only when used)."""
    return [RedisBackend]
