"""An in-process server-style backend for selection tests: it accepts a URL.

Not a lock across processes (it is a dict); only for checking which backend and URL a
lock ends up with, without needing a real server.
"""

from __future__ import annotations

import threading
from typing import ClassVar, Self

from lockkit._info import Lease, LockInfo, Owner
from lockkit.spec import Backend, Capabilities, Support, hookimpl


class MemoryBackend(Backend):
    """Locks in a dict, keyed by name; constructed from ``memory://...`` URLs."""

    name: ClassVar[str] = "memory"
    description: ClassVar[str] = "in-process test backend"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._held: dict[str, Owner] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(url)

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        with self._guard:
            if name in self._held:
                return None
            self._held[name] = owner
        return Lease(name, self.name, owner)

    def release(self, lease: Lease) -> bool:
        with self._guard:
            if self._held.get(lease.name) is lease.owner:
                del self._held[lease.name]
                return True
        return False

    def inspect(self, name: str) -> LockInfo | None:
        with self._guard:
            owner = self._held.get(name)
        return None if owner is None else LockInfo(name, self.name, owner)

    @classmethod
    def probe(cls, location: str) -> Support:
        return Support(ok=False, reason="needs a memory:// URL")


class Plugin:
    """Registers MemoryBackend in-process."""

    @hookimpl
    def lockkit_register_backends(self) -> list[type[Backend]]:
        return [MemoryBackend]
