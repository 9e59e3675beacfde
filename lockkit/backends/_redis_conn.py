"""Lua scripts run on a connection each thread (or event loop) keeps to a Redis server.

Why not ``client.register_script``: a redis-py command checks a connection out of the
pool (a lock, a health-check ``poll`` and ``recv``, metrics hooks) and back in for every
call. On the 2-core VM lockkit is measured on, that cost about 75 µs of CPU per command,
more than sending the command and reading its reply on a kept connection (40-50 µs);
a lock's pair is two commands. A thread here keeps the
connection it checked out, and checks it only after it sat idle (`IDLE_CHECK`), when
the server may have closed it.

It also decides retries, which lock scripts must not get blindly: a compare-and-delete
or ``SET NX`` run twice answers wrongly the second time. A command is re-sent only when
sending it failed, so the server never got it whole (a connection that went stale
between the idle checks); a failure while reading the reply raises, as a redis-py pool
built from a URL does (it has no retries; ``redis.Redis(host=...)`` would retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from typing import Any

import attrs

__all__ = [
    "IDLE_CHECK",
    "AsyncScript",
    "LoopConnections",
    "Script",
    "ThreadConnection",
    "pack_command",
]

IDLE_CHECK = 0.1
"""Seconds a kept connection may sit idle before it is checked for a close by the server."""


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
