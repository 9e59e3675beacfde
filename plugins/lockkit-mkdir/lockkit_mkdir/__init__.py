"""The ``mkdir`` backend: a lock is a directory made with an atomic ``mkdir()``.

The holder records itself in ``<lock>/owner.json`` with lockkit's payload format, so
``lockkit status`` and the stale rules work unchanged; all but ``mkdir()`` comes from
lockkit's helpers for file backends, `lockkit.files`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from typing import ClassVar

import attrs

from lockkit import Lease, LockInfo, Owner, files
from lockkit.spec import Backend, Capabilities, Support, Waiter, hookimpl

__all__ = ["MkdirBackend", "lockkit_register_backends"]
__version__ = "0.2.0"
NO_OWNER = files.Payload(None, problem="lock directory without owner.json")


def owner_file(name: str) -> str:
    """Where the holder of lock directory ``name`` records itself."""
    return os.path.join(name, "owner.json")


class RemovalWaiter(Waiter):
    """Sleeps until the lock directory is removed: inotify on Linux, else polling."""

    def wait(self, deadline: float) -> bool:
        """``True`` when the removal was seen; bounded for a release on another host."""
        return files.wait_for_removal(self.name, deadline, self.attempts)


class MkdirBackend(Backend):
    """Locks made with ``mkdir()``; the owner payload is ``<lock>/owner.json``."""

    name: ClassVar[str] = "mkdir"
    description: ClassVar[str] = "a directory made with an atomic mkdir(); owner.json inside"
    # notify: inotify sees a release on this host; `wait_for_removal` polls elsewhere.
    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, ttl=True, notify=sys.platform == "linux"
    )

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Same rules as lockkit's file locks: absolute, existing parent, no symlink."""
        return files.lock_path(name, directory=True)

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Create the directory, then record the owner in it."""
        del shared  # only asked of backends with the shared capability
        try:
            os.mkdir(name, 0o755)
        except FileExistsError:
            return None
        payload = files.encode_payload(owner, self.name, expires := files.expiry(ttl))
        try:
            files.create_exclusive(owner_file(name), payload)
        except BaseException:
            os.rmdir(name)  # ours, and still empty
            raise
        return Lease(name, self.name, owner, expires=expires, ttl=ttl)

    def release(self, lease: Lease) -> bool:
        """Remove owner.json if it carries our token, then the directory."""
        ours = files.remove_if_ours(attrs.evolve(lease, name=owner_file(lease.name)))
        return ours and remove_dir(lease.name)

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Rewrite owner.json with a new expiry, so a new mtime: a new identity."""
        try:  # token read and payload written through one descriptor: never another's
            fd = os.open(owner_file(lease.name), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        with contextlib.closing(os.fdopen(fd, "r+b")) as file:
            owner = files.decode_payload(file.read(1 << 16)).owner
            if owner is None or owner.token != lease.token:
                return False
            file.seek(0)
            file.write(files.encode_payload(lease.owner, self.name, files.expiry(ttl)))
            file.truncate()
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """The payload in owner.json; a directory without it is a lock being created."""
        if (info := files.inspect_file(owner_file(name), self.name)) is not None:
            return attrs.evolve(info, name=name)
        with contextlib.suppress(FileNotFoundError):  # stale rules: grace, then broken
            return files.lock_info(name, self.name, NO_OWNER, os.lstat(name))
        return None

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock if its token and identity are still ``expected``'s."""
        with files.breaker(name) as held:
            now = self.inspect(name) if held else None
            if now is None or version(now) != version(expected):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(owner_file(name))
            return remove_dir(name)

    def waiter(self, name: str) -> Waiter:
        """Wait for the lock directory's removal."""
        return RemovalWaiter(name)

    @classmethod
    def probe(cls, location: str) -> Support:
        """Whether a directory can be made and removed there (ranked below the built-ins)."""
        path = os.path.join(location, f".lockkit-mkdir-probe-{os.getpid()}")
        try:
            os.mkdir(path)
            os.rmdir(path)
        except OSError as exc:
            return Support(ok=False, reason=f"mkdir() failed: {exc.strerror}")
        return Support(ok=True, preference=20, reason="mkdir() and rmdir() work")


def version(info: LockInfo) -> tuple[object, ...]:
    """One holding of a lock: its owner (token...), identity and expiry."""
    return (info.owner, info.identity, info.expires)


def remove_dir(path: str) -> bool:
    """Remove the emptied lock directory; ``False`` if it was already gone.

    On FUSE without ``hard_remove`` (exfat-fuse...), owner.json removed while a reader
    has it open lingers as ``.fuse_hidden*``: retry for about a second, then move the
    directory aside (it empties when the reader closes), so the lock is free at once.
    """
    for attempt in range(10):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            left = os.listdir(path) if exc.errno == errno.ENOTEMPTY else [""]
            if not all(entry.startswith(".fuse_hidden") for entry in left):
                raise
            time.sleep(0.001 * 2**attempt)  # nothing signals the reader's close
        else:
            return True
    os.rename(path, f"{path}.{os.urandom(8).hex()}.released")
    return True


@hookimpl
def lockkit_register_backends() -> list[type[Backend]]:
    """Provide the ``mkdir`` backend."""
    return [MkdirBackend]
