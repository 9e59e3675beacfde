"""The Lua scripts of the redis backend: one per operation, each one round trip.

Key layout for a lock named ``N`` (prefix ``lockkit:``; the hash tag keeps every key of
a lock in one cluster slot):

* ``lockkit:{N}``: the holder's *value*, its JSON payload (the lock file's fields) with
  its version appended, ``,"fence":F,"renewals":R}``; ``PX`` = ttl.
* ``lockkit:{N}:fence``: the fencing counter, ``INCR``-ed by every acquisition.
* ``lockkit:{N}:waiters``: the hand-off queue, a list of waiters' entries.
* ``lockkit:{N}:readers``: shared (read) holders, a sorted set of their payloads scored
  by expiry (server time, ms). Derived from ``KEYS[1]`` inside the scripts rather than
  passed, so that every script respects readers; it carries the lock's hash tag.

**The version.** A holder's value is its payload with ``fence`` (its fencing token)
and ``renewals`` (how often it was refreshed) appended: `inspect` reports them as the
lock's ``identity``, which so changes on every acquisition and every refresh, and
`_BREAK` compares it with the token. A lease's handle is the payload without them, and
a value belongs to a lease when it starts with the payload minus its closing brace
(``holds``): the token in the payload is random, so only that lease's values do.

**Queue entries.** A *grant* entry is channel, token, ttl ms and payload joined by
a newline: a release sets that payload (stamped with a new fence) and publishes the grant,
so the wake-up *is* the acquisition. A *plain* entry is just the channel (a reader's, a
Redlock waiter's or an asyncio waiter's): it is only woken. A newline cannot occur in a
channel, a token or a number, and the payload is last, so it may contain anything.

TIME before a write needs effects replication, the only mode from Redis 7 on; older
servers are asked for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockkit.backends.redis._payload import Offer

__all__ = [
    "ACQUIRE",
    "ACQUIRE_QUEUED",
    "ACQUIRE_SHARED",
    "BREAK",
    "ENQUEUE",
    "FENCE",
    "INSPECT",
    "LEAVE",
    "QUEUE_TTL_MS",
    "REFRESH",
    "REFRESH_SHARED",
    "RELEASE",
    "RELEASE_SHARED",
    "queued_args",
]

QUEUE_TTL_MS = 60_000
"""A queue entry outlives its waiter by at most this long (every attempt renews it)."""

# The next fencing token: the counter plus one, but never less than the server's clock
# in microseconds. A counter that is missing (first use, a server restarted without
# persistence, FLUSHALL, an eviction) or behind (a replica promoted before it saw the
# last INCRs) so still gives tokens larger than every token handed out before, as long
# as tokens were handed out at under one per microsecond (Redis cannot go faster) and
# the clock did not step back: across hosts, as long as the new primary's clock is not
# behind the old one's by more than the time the failover took. Tokens stay below
# 2**53, exact in a double (JavaScript) until the year 2255.
_NEXT_FENCE = """
if redis.replicate_commands then redis.replicate_commands() end
local function next_fence()
  local t = redis.call('time')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local fence = tonumber(redis.call('incr', KEYS[2]))
  if fence < now then
    redis.call('set', KEYS[2], string.format('%.0f', now))
    return now
  end
  return fence
end
"""
# An attempt sent again (its reply was lost to a failover or a dropped connection) finds
# the key it set itself: its payload is unique to the attempt (a random token and an
# expiry in microseconds), so the key is this attempt's and its fence is the answer.
# Its expiry is set again: a write of this connection, which a WAIT after it confirms.
_MINE = """
local mine = redis.call('get', KEYS[1])
if mine and holds(mine, ARGV[1]) then
  redis.call('pexpire', KEYS[1], ARGV[2])
  mine = tonumber(string.match(mine, ',"fence":(%d+),"renewals":%d+}$'))
else
  mine = nil
end
"""
# stamp: the value a holder's key stores (its payload plus its version).
# holds: whether a value belongs to the lease whose handle is `payload`.
# '%.0f': a number above 2**31 would print as 1.7e+15 by itself.
_VALUE = """
local function stamp(payload, fence, renewals)
  return string.sub(payload, 1, -2) .. ',"fence":' .. string.format('%.0f', fence)
    .. ',"renewals":' .. string.format('%.0f', renewals) .. '}'
end
local function holds(value, payload)
  if not value then return false end
  local n = #payload
  return string.sub(value, n, n) == ','
    and string.sub(value, 1, n - 1) == string.sub(payload, 1, n - 1)
end
"""
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
# hand_off(name, can_grant) gives the lock to the first waiter still listening, or
# wakes it. A grant SETs the waiter's payload with a new fence before publishing name,
# token and fence. PUBLISH returns how many received the message; an entry nobody
# listens to any more is dropped and its grant undone. can_grant is false while readers
# hold the lock: a writer's entry then stays first in line, unwoken.
_HAND_OFF = (
    _NEXT_FENCE
    + _VALUE
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
      local fence = next_fence()
      local value = stamp(string.sub(entry, c + 1), fence, 0)
      redis.call('set', KEYS[1], value, 'PX', string.sub(entry, b + 1, c - 1))
      local note = name .. '\\n' .. string.sub(entry, a + 1, b - 1) .. '\\n'
        .. string.format('%.0f', fence)
      if redis.call('publish', string.sub(entry, 1, a - 1), note) > 0 then return end
      redis.call('del', KEYS[1])
    end
  end
end
"""
)
# Put a waiter that found the lock busy in the queue: ARGV[3] replaces ARGV[5] ('' when
# it was not queued), at the front if a wake-up brought it here.
_QUEUE = """
if ARGV[5] ~= '' then redis.call('lrem', KEYS[3], 0, ARGV[5]) end
if ARGV[4] == 'front' then
  redis.call('lpush', KEYS[3], ARGV[3])
else
  redis.call('rpush', KEYS[3], ARGV[3])
end
redis.call('pexpire', KEYS[3], ARGV[6])
return false
"""
# The end of a failed attempt: report the holder, as INSPECT would, so the caller can
# judge it without another round trip (readers only: nothing).
_HOLDER = """
local value = redis.call('get', KEYS[1])
if value then return {value, redis.call('pttl', KEYS[1]), redis.call('get', KEYS[2])} end
return false
"""
_QUEUED_HOLDER = _QUEUE.replace("return false\n", _HOLDER)

ACQUIRE = (
    _READERS
    + _NEXT_FENCE
    + _VALUE
    + """
if redis.call('exists', KEYS[1]) == 0 and live_readers() == 0 then
  local fence = next_fence()
  redis.call('set', KEYS[1], stamp(ARGV[1], fence, 0), 'PX', ARGV[2])
  return fence
end
"""
    + _MINE
    + """
if mine then return mine end
"""
    + _HOLDER
)
"""An attempt that does not queue: take the lock if it is free.

KEYS: lock, fence. ARGV: payload, ttl ms. Returns the fence; when busy, the exclusive
holder as `INSPECT` reports it, ``{value, pttl ms, counter}`` (nil when only readers
hold the lock).
"""

ACQUIRE_QUEUED = (
    _READERS
    + _NEXT_FENCE
    + _VALUE
    + """
if ARGV[7] ~= '' and holds(redis.call('get', KEYS[1]), ARGV[7]) then
  return {tonumber(redis.call('get', KEYS[2])), 1}
end
if redis.call('exists', KEYS[1]) == 0 and live_readers() == 0 then
  if ARGV[5] ~= '' then redis.call('lrem', KEYS[3], 0, ARGV[5]) end
  local fence = next_fence()
  redis.call('set', KEYS[1], stamp(ARGV[1], fence, 0), 'PX', ARGV[2])
  return {fence, 0}
end
"""
    + _MINE
    + """
if mine then return {mine, 0} end
"""
    + _QUEUED_HOLDER
)
"""An attempt by a caller that will wait: take the lock, or queue in the same step.

KEYS: lock, fence, waiters. ARGV: payload, ttl ms, the entry to queue, ``front`` or
``back``, the entry queued now (``''``: none), queue ttl ms, that entry's payload
(``''`` if plain or none). Returns ``{fence, 0}`` when it took the lock for ARGV[1],
``{fence, 1}`` when a release had already granted it to the queued entry (its message
not yet read), and when busy ``{value, pttl ms, counter}`` of the exclusive holder (as
`INSPECT`; nil when only readers hold it): ARGV[3] is then queued, and no release can
slip between the failed attempt and the queueing.
"""

ENQUEUE = (
    _READERS
    + """
if redis.call('exists', KEYS[1]) == 0 and live_readers() == 0 then return 0 end
redis.call('lrem', KEYS[3], 0, ARGV[1])
redis.call('rpush', KEYS[3], ARGV[1])
redis.call('pexpire', KEYS[3], ARGV[2])
return 1
"""
)
"""Queue a plain entry for a waiter whose last attempt did not queue it.

KEYS: lock, fence, waiters. ARGV: the entry, queue ttl ms. Returns 0 when the lock is
free (try again; readers count as holders), 1 when queued.
"""

RELEASE = (
    _HAND_OFF
    + """
if holds(redis.call('get', KEYS[1]), ARGV[1]) then
  redis.call('del', KEYS[1])
  hand_off(ARGV[2], true)
  return 1
end
return 0
"""
)
"""Compare-and-delete, then hand the lock to the first waiter.

KEYS: lock, fence, waiters. ARGV: the lease's payload, the lock name. Returns 1 when
the lock was ours, 0 when it had been lost.
"""

LEAVE = (
    _READERS
    + _HAND_OFF
    + """
redis.call('lrem', KEYS[3], 0, ARGV[1])
if ARGV[4] ~= '' and holds(redis.call('get', KEYS[1]), ARGV[4]) then
  redis.call('del', KEYS[1])
  hand_off(ARGV[2], true)
elseif ARGV[3] == '1' and redis.call('exists', KEYS[1]) == 0 then
  hand_off(ARGV[2], live_readers() == 0)
end
return 1
"""
)
"""A waiter leaving (won, timed out, cancelled): drop its entry and pass on what it got.

A lock granted to it that it will not use goes to the next waiter; so does a wake-up it
was given for a lock that is still free. KEYS: lock, fence, waiters. ARGV: the entry,
the lock name, ``1`` if it was woken, the entry's payload (``''`` if plain).
"""

FENCE = (
    _VALUE
    + """
local counter = tonumber(redis.call('get', KEYS[2]) or '0')
if counter < tonumber(ARGV[2]) then redis.call('set', KEYS[2], ARGV[2]) end
local value = redis.call('get', KEYS[1])
if not holds(value, ARGV[1]) then return 0 end
local pttl = redis.call('pttl', KEYS[1])
if pttl <= 0 then return 0 end
redis.call('set', KEYS[1], stamp(ARGV[1], tonumber(ARGV[2]), 0), 'PX', pttl)
return 1
"""
)
"""Redlock's second round, on every server once a quorum said yes.

KEYS: lock, fence. ARGV: the holder's payload, the lease's fencing token T (the
largest counter the quorum's INCRs returned). Raises the counter to at least T, then
says whether this server still holds our key, and stamps it with T, so every server
reports the same version. The lease counts only if the servers answering 1 make a
quorum R: the next holder's quorum meets R in some server whose key we held from
before the raise, so its SET there, and the INCR with it, come after the raise, and
its token (a maximum that includes that INCR) exceeds T. Raising the servers outside R
too keeps tokens rising when one of R later restarts without its data.
"""

REFRESH = (
    _VALUE
    + """
local value = redis.call('get', KEYS[1])
if not holds(value, ARGV[1]) then return 0 end
local head, renewals = string.match(value, '^(.*,"renewals":)(%d+)}$')
if not head then return 0 end
local renewed = head .. string.format('%.0f', tonumber(renewals) + 1) .. '}'
redis.call('set', KEYS[1], renewed, 'PX', ARGV[2])
return 1
"""
)
"""Compare-and-extend; bumps the version's ``renewals``, so the identity changes.

KEYS: lock. ARGV: the lease's payload, ttl ms. Returns 1 when extended, 0 when lost.
"""

BREAK = (
    _HAND_OFF
    + """
local value = redis.call('get', KEYS[1])
if not value then return 0 end
local ok, holder = pcall(cjson.decode, value)
if not ok or type(holder) ~= 'table' or holder['token'] ~= ARGV[1] then return 0 end
local version = ''
if type(holder['fence']) == 'number' and type(holder['renewals']) == 'number' then
  version = string.format('%.0f', holder['fence']) .. '.'
    .. string.format('%.0f', holder['renewals'])
end
if version ~= ARGV[3] then return 0 end
redis.call('del', KEYS[1])
hand_off(ARGV[2], true)
return 1
"""
)
"""Delete the holding a caller judged stale, and only that one; hand the lock off.

KEYS: lock, fence, waiters. ARGV: the holder's token, the lock name, its version
``fence.renewals`` as `inspect` saw it (``''``: the value has none). A lock released
and taken again, or refreshed since, has another version and is left alone.
"""

ACQUIRE_SHARED = (
    _READERS
    + _HAND_OFF
    + """
if redis.call('exists', KEYS[1]) == 0 then
  live_readers()
  redis.call('zadd', readers, now_ms() + tonumber(ARGV[2]), ARGV[1])
  keep_until_last()
  if ARGV[5] ~= '' then redis.call('lrem', KEYS[3], 0, ARGV[5]) end
  hand_off(ARGV[7], false)
  return next_fence()
end
if ARGV[3] == '' then return false end
"""
    + _QUEUE
)
"""A reader's attempt: join the readers unless a writer holds the lock.

KEYS: lock, fence, waiters. ARGV[1..6] as for `ACQUIRE_QUEUED` (ARGV[1] is the
reader's payload; readers queue plain entries; ARGV[3] ``''``: do not queue), ARGV[7]:
the lock name. A reader that gets in passes a wake-up on, since the next waiter may be
a reader too; a writer's entry stays first. Returns the fence, or nil when busy.
"""

RELEASE_SHARED = (
    _READERS
    + _HAND_OFF
    + """
if redis.call('zrem', readers, ARGV[1]) == 0 then return 0 end
if live_readers() == 0 then hand_off(ARGV[2], true) end
return 1
"""
)
"""A reader leaving; the last one out hands the lock off.

KEYS: lock, fence, waiters. ARGV: the reader's payload, the lock name.
"""

REFRESH_SHARED = (
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
"""Extend a reader's entry. KEYS: lock. ARGV: the reader's payload, ttl ms.

An entry past its expiry is lost: a writer may have got in since.
"""

INSPECT = """
local value = redis.call('get', KEYS[1])
if value then return {value, redis.call('pttl', KEYS[1]), redis.call('get', KEYS[2])} end
local last = redis.call('zrange', KEYS[1] .. ':readers', -1, -1, 'WITHSCORES')
local t = redis.call('time')
return {false, redis.call('get', KEYS[2]), last[1] or false, last[2] or false, t[1], t[2]}
"""
"""Read the holder (read-only), in one round trip on the kept connection.

KEYS: lock, fence. Returns ``{value, pttl ms, counter}`` when an exclusive holder has
the key, else ``{nil, counter, reader, its expiry ms, server seconds, microseconds}``
for the reader whose entry lasts longest (nil, nil when there is none).
"""


def queued_args(
    offer: Offer, entry: str, *, woken: bool, queued: str, queued_payload: str = ""
) -> list[str | int]:
    """ARGV of `._scripts.ACQUIRE_QUEUED`, an attempt that queues if it fails.

    Args:
        offer: What the attempt stores if it takes the lock.
        entry: The entry to queue if the lock is busy.
        woken: A wake-up brought the waiter here: it keeps its place at the front.
        queued: The entry queued now, which ``entry`` replaces (``""``: none).
        queued_payload: That entry's payload, if it is a grant entry (``""`` if plain).
    """
    position = "front" if woken else "back"
    return [offer.payload, offer.ttl_ms, entry, position, queued, QUEUE_TTL_MS, queued_payload]
