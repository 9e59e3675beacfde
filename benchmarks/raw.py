"""The raw primitives lockkit's backends are built on, with nothing around them.

They are the floor each backend is measured against:

* `RawExcl`: ``open(O_CREAT|O_EXCL)`` + ``close`` to acquire, ``unlink`` to release
  (the floor of ``excl`` and ``hardlink``);
* `RawExclRecord`: the same with a 330-byte owner record written before the close:
  the floor of any lock file that says who holds it, which a lock needs to tell a
  crashed holder from a live one (writing the first byte of a file costs a page);
* `RawLink`: temp file + ``link()`` + ``unlink`` of both (the NFS-safe recipe's own
  floor, shown for reference);
* `RawFlock`: ``open`` + ``flock(LOCK_EX)`` to acquire, ``flock(LOCK_UN)`` + ``close``
  to release (the floor of ``filelock``; it blocks in the kernel, so it also serves as
  the hand-off reference);
* `RawRedis`: ``SET key token NX PX`` to acquire, ``EVALSHA`` compare-and-delete to
  release (the floor of ``redis``), through redis-py's client as a user would write it;
* `RawRedisConnection`: the same two commands on one connection kept out of redis-py's
  pool, as lockkit sends its scripts (a pool checkout costs more CPU than the round
  trip on a machine with expensive system calls), shown for reference;
* `RawRedisQueue`: ``BLPOP`` of a one-token list to acquire, ``RPUSH`` to release: the
  server's own blocking hand-off (one command each way, no expiry, no owner), the floor
  of any lock handed off through Redis, as blocking ``flock`` is for file locks;
* `RawPostgres`: ``pg_try_advisory_lock`` to acquire, ``pg_advisory_unlock`` to
  release, on one autocommit connection (the floor of ``postgresql``: no holder row,
  no fencing counter, no lease);
* `RawPostgresQueue`: ``pg_advisory_lock``, which blocks in the server's lock queue,
  and ``pg_advisory_unlock``: PostgreSQL's own hand-off, the floor of any lock handed
  off through it;
* `RawEtcd`: a transaction that puts the key only if it does not exist, then a delete
  (the floor of ``etcd``: no lease, no payload), through the plugin's JSON gateway
  client.

The file primitives do not wait: a second acquire of a held `RawExcl` raises.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

__all__ = [
    "RawEtcd",
    "RawExcl",
    "RawExclRecord",
    "RawFlock",
    "RawLink",
    "RawPostgres",
    "RawPostgresQueue",
    "RawRedis",
    "RawRedisConnection",
    "RawRedisQueue",
]

_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
_OPEN = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC

_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RawExcl:
    """``O_CREAT|O_EXCL`` create + close, then unlink."""

    def __init__(self, path: str) -> None:
        self.path = path

    def acquire(self) -> None:
        os.close(os.open(self.path, _CREATE, 0o644))

    def release(self) -> None:
        os.unlink(self.path)  # noqa: PTH108

    def close(self) -> None:
        pass


class RawExclRecord:
    """``O_CREAT|O_EXCL`` create, write an owner record, close; then unlink."""

    # As long as lockkit's payload (pid, host, boot id, times, token...), in one write.
    RECORD = b"x" * 330

    def __init__(self, path: str) -> None:
        self.path = path

    def acquire(self) -> None:
        fd = os.open(self.path, _CREATE, 0o644)
        try:
            os.write(fd, self.RECORD)
        finally:
            os.close(fd)

    def release(self) -> None:
        os.unlink(self.path)  # noqa: PTH108

    def close(self) -> None:
        pass


class RawLink:
    """Exclusive temp file, ``link()`` to the lock path, unlink the temp; unlink to release."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.temp = f"{path}.{os.getpid()}.tmp"

    def acquire(self) -> None:
        os.close(os.open(self.temp, _CREATE, 0o644))
        try:
            os.link(self.temp, self.path)
        finally:
            os.unlink(self.temp)  # noqa: PTH108

    def release(self) -> None:
        os.unlink(self.path)  # noqa: PTH108

    def close(self) -> None:
        pass


class RawFlock:
    """``open`` + blocking ``flock(LOCK_EX)``; ``flock(LOCK_UN)`` + ``close``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, _OPEN, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


class RawRedis:
    """``SET key token NX PX 30000``; ``EVALSHA`` compare-and-delete (via redis-py)."""

    def __init__(self, name: str, url: str) -> None:
        import redis  # optional dependency, imported where used

        self.client: Any = redis.Redis.from_url(url)
        self.key = f"lockkit-bench:raw:{name}"
        self.sha = self.client.script_load(_COMPARE_AND_DELETE)
        self.token = b""

    def acquire(self) -> None:
        token = os.urandom(16).hex().encode()
        if not self.client.set(self.key, token, nx=True, px=30_000):
            raise BlockingIOError(f"{self.key} is held")
        self.token = token

    def release(self) -> None:
        if not self.client.evalsha(self.sha, 1, self.key, self.token):
            raise RuntimeError(f"{self.key} was not ours to delete")

    def close(self) -> None:
        self.client.close()


class RawRedisConnection(RawRedis):
    """`RawRedis` sent on one connection kept checked out of the pool.

    redis-py's commands check a connection out of the pool and back in each time; this
    floor shows what the same two commands cost without that, as lockkit sends them.
    """

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, url)
        self.key = f"lockkit-bench:raw-conn:{name}"
        self.conn: Any = self.client.connection_pool.get_connection()

    def acquire(self) -> None:
        token = os.urandom(16).hex().encode()
        self.conn.send_command("SET", self.key, token, "NX", "PX", 30_000)
        if self.conn.read_response() is None:
            raise BlockingIOError(f"{self.key} is held")
        self.token = token

    def release(self) -> None:
        self.conn.send_command("EVALSHA", self.sha, 1, self.key, self.token)
        if not self.conn.read_response():
            raise RuntimeError(f"{self.key} was not ours to delete")

    def close(self) -> None:
        self.client.connection_pool.release(self.conn)
        super().close()


class RawRedisQueue:
    """``BLPOP`` the lock's one token (blocking in the server); ``RPUSH`` it back."""

    def __init__(self, name: str, url: str) -> None:
        import redis  # optional dependency, imported where used

        self.client: Any = redis.Redis.from_url(url)
        self.key = f"lockkit-bench:raw-queue:{name}"
        # Both processes of a measurement build one; only the first puts the token in.
        if self.client.set(f"{self.key}:made", 1, nx=True):
            self.client.rpush(self.key, b"token")

    def acquire(self) -> None:
        self.client.blpop([self.key], timeout=0)

    def release(self) -> None:
        self.client.rpush(self.key, b"token")

    def close(self) -> None:
        self.client.close()


class RawPostgres:
    """``pg_try_advisory_lock(key)``; ``pg_advisory_unlock(key)`` (autocommit, psycopg 3)."""

    blocking = False

    def __init__(self, name: str, url: str) -> None:
        import hashlib  # noqa: PLC0415

        import psycopg  # optional dependency, imported where used  # noqa: PLC0415

        self.conn: Any = psycopg.connect(url, autocommit=True)
        digest = hashlib.blake2b(f"lockkit-bench-raw\0{name}".encode(), digest_size=8)
        self.key = int.from_bytes(digest.digest(), "big", signed=True)
        self.take = (
            f"SELECT pg_advisory_lock({self.key})"
            if self.blocking
            else f"SELECT pg_try_advisory_lock({self.key})"
        )
        self.give = f"SELECT pg_advisory_unlock({self.key})"

    def acquire(self) -> None:
        row = self.conn.execute(self.take).fetchone()
        if not self.blocking and not row[0]:
            raise BlockingIOError(f"advisory lock {self.key} is held")

    def release(self) -> None:
        if not self.conn.execute(self.give).fetchone()[0]:
            raise RuntimeError(f"advisory lock {self.key} was not ours to unlock")

    def close(self) -> None:
        self.conn.close()  # ends the session, which frees anything it held


class RawPostgresQueue(RawPostgres):
    """``pg_advisory_lock(key)`` (waits in the server's lock queue); ``pg_advisory_unlock``."""

    blocking = True


class RawEtcd:
    """Put the key if its create revision is 0 (one txn); delete it (one call)."""

    def __init__(self, name: str, url: str) -> None:
        import base64  # noqa: PLC0415

        from lockkit_etcd import EtcdBackend  # an optional plugin  # noqa: PLC0415

        self.backend = EtcdBackend.from_url(url)
        key = base64.b64encode(f"lockkit-bench/raw/{name}".encode()).decode()
        self.put = {
            "compare": [{"target": "CREATE", "key": key, "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": "MQ=="}}],
        }
        self.delete = {"key": key}

    def acquire(self) -> None:
        if not self.backend.gateway.call("kv/txn", self.put).get("succeeded"):
            raise BlockingIOError("the etcd key is held")

    def release(self) -> None:
        answer = self.backend.gateway.call("kv/deleterange", self.delete)
        if int(answer.get("deleted", 0)) != 1:
            raise RuntimeError("the etcd key was not there to delete")

    def close(self) -> None:
        self.backend.close()
