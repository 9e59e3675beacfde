"""The ``redis`` backend: locks kept in Redis or Valkey, off the filesystem entirely.

Select it with ``LOCKKIT_BACKEND=redis://host:6379/0`` (or ``rediss://`` for TLS,
``unix:///run/redis.sock``, ``valkey://``); several comma-separated URLs make a Redlock
across independent masters. Installed with the ``redis`` extra; redis-py is imported
only when this backend is used.

The package:

* `._scripts`: the Lua scripts, one per operation, with the key layout and the value's
  version;
* `._conn`: servers, connections kept per thread (or event loop), error mapping;
* `._payload`: what a key holds, as offers, leases and `lockkit.LockInfo`;
* `._single`: `RedisBackend`, one server;
* `._redlock`: `RedlockBackend`, several servers with a quorum;
* `._cluster`: `RedisClusterBackend`, a Redis Cluster (``redis+cluster://host:port,...``);
* `._waiter`: `RedisWaiter`, one acquisition's place in the hand-off queue;
* `._async`: the same over ``redis.asyncio``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Imported for its class registering itself with `RedisBackend` (cluster URLs).
from lockkit.backends.redis._cluster import RedisClusterBackend
from lockkit.backends.redis._conn import eviction_warning, unavailable
from lockkit.backends.redis._redlock import RedlockBackend
from lockkit.backends.redis._single import DEFAULT_TTL, RedisBackend
from lockkit.backends.redis._waiter import RedisWaiter
from lockkit.spec import _builtin_hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lockkit.spec import Backend

__all__ = [
    "DEFAULT_TTL",
    "RedisBackend",
    "RedisClusterBackend",
    "RedisWaiter",
    "RedlockBackend",
    "eviction_warning",
    "lockkit_register_backends",
    "unavailable",
]


@_builtin_hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``redis`` backend (its modules import redis-py only when used)."""
    return [RedisBackend]
