"""Adapters that give each peer library the same ``acquire``/``release``/``close`` shape.

Each peer is used the way its documentation shows, with its default waiting behaviour
(that is what users get): ``filelock`` polls every 50 ms, ``portalocker`` every 250 ms,
``fasteners`` backs off from 10 ms to 100 ms, redis-py's ``Lock`` sleeps 100 ms,
``python-redis-lock`` blocks on ``BLPOP`` of a signal list. Only timeouts are raised,
so that a slow peer is measured rather than failed. Redis locks get a 30 s expiry, like
lockkit's default.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PEER_MODULES", "installed", "make_peer"]

PEER_MODULES = {
    "filelock.FileLock": "filelock",
    "filelock.SoftFileLock": "filelock",
    "portalocker.Lock": "portalocker",
    "fasteners.InterProcessLock": "fasteners",
    "redis.lock.Lock": "redis",
    "python-redis-lock": "redis_lock",
}
"""Peer name -> the module that must be importable."""

_WAIT = 600.0  # seconds; a peer that has not acquired by then is broken, not slow
_TTL = 30


def installed(peer: str) -> bool:
    """Whether ``peer``'s library is importable here."""
    module = PEER_MODULES[peer]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class _Peer:
    """A peer lock object, driven like every other subject.

    ``acquire`` and ``release`` are the peer's own bound methods, so the timed loops
    call the library directly, without a wrapper of ours in between.
    """

    def __init__(self, lock: Any, client: Any = None) -> None:
        self.acquire: Callable[[], object] = lock.acquire
        self.release: Callable[[], object] = lock.release
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def make_peer(peer: str, path: str, redis_url: str | None) -> _Peer:
    """Build peer ``peer`` for lock ``path`` (a file path, or a key name for Redis)."""
    # Imported here, each only when used; import_module also spares the type checker
    # the peers that ship no type information.
    if peer in {"filelock.FileLock", "filelock.SoftFileLock"}:
        cls = getattr(importlib.import_module("filelock"), peer.split(".")[1])
        return _Peer(cls(path, timeout=_WAIT))
    if peer == "portalocker.Lock":
        portalocker = importlib.import_module("portalocker")
        return _Peer(portalocker.Lock(path, mode="a", timeout=_WAIT))
    if peer == "fasteners.InterProcessLock":
        fasteners = importlib.import_module("fasteners")
        return _Peer(fasteners.InterProcessLock(path))
    if redis_url is None:
        raise ValueError(f"{peer} needs a Redis URL")
    client = importlib.import_module("redis").Redis.from_url(redis_url)
    name = f"lockkit-bench:{peer}:{path}"
    if peer == "redis.lock.Lock":
        return _Peer(client.lock(name, timeout=_TTL, blocking_timeout=_WAIT), client)
    if peer == "python-redis-lock":
        redis_lock = importlib.import_module("redis_lock")
        return _Peer(redis_lock.Lock(client, name, expire=_TTL), client)
    client.close()
    raise ValueError(f"unknown peer {peer!r}")
