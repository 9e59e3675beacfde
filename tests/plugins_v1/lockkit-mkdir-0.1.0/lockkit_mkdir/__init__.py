"""The ``mkdir`` backend: a lock is a directory created with an atomic ``mkdir()``.

Holding the lock means having created the directory; the holder writes its payload to
``<lock>/owner.json`` right after. Everything else comes from lockkit's public helpers
(`lockkit.files`): path rules, the payload format, race-free breaking and waiting.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from typing import TYPE_CHECKING, ClassVar

from lockkit import files
from lockkit.spec import Backend, Capabilities, Support, hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lockkit import Lease, LockInfo, Owner

__all__ = ["MkdirBackend", "lockkit_register_backends"]

__version__ = "0.1.0"

OWNER_FILE = "owner.json"


class MkdirBackend(Backend):
    """Locks made with ``mkdir()``; the owner payload is ``<lock>/owner.json``."""

    name: ClassVar[str] = "mkdir"
    description: ClassVar[str] = "a directory made with an atomic mkdir(); owner.json inside"
    capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True, ttl=True, notify=True)

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Same rules as lockkit's file locks: absolute, existing parent, no symlink."""
        return files.lock_path(name, directory=True)

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Create the directory, then record the owner in it."""
        from lockkit import Lease  # noqa: PLC0415

        del shared
        try:
            os.mkdir(name, 0o755)  # noqa: PTH102
        except FileExistsError:
            return None
        expires = files.expiry(ttl)
        try:
            files.create_exclusive(
                os.path.join(name, OWNER_FILE),  # noqa: PTH118
                files.encode_payload(owner, self.name, expires),
            )
        except BaseException:
            os.rmdir(name)  # noqa: PTH106 - ours and still empty
            raise
        return Lease(name, self.name, owner, expires=expires, ttl=ttl)

    def release(self, lease: Lease) -> bool:
        """Remove owner.json (only if it is ours), then the directory."""
        from lockkit import Lease as LeaseType  # noqa: PLC0415

        owner_file = os.path.join(lease.name, OWNER_FILE)  # noqa: PTH118
        if not files.remove_if_ours(
            LeaseType(owner_file, lease.backend, lease.owner, expires=lease.expires)
        ):
            return False
        return _remove_lock_dir(lease.name, lease.token)

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Rewrite owner.json with a new expiry if it is still ours."""
        owner_file = os.path.join(lease.name, OWNER_FILE)  # noqa: PTH118
        found = files.read_lock_file(owner_file)
        if found is None:
            return False
        payload = files.decode_payload(found[0])
        if payload.owner is None or payload.owner.token != lease.token:
            return False
        data = files.encode_payload(lease.owner, self.name, files.expiry(ttl))
        fd = os.open(owner_file, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """The payload in owner.json; a directory without it is a lock being created."""
        from lockkit import LockInfo  # noqa: PLC0415

        info = files.inspect_file(os.path.join(name, OWNER_FILE), self.name)  # noqa: PTH118
        if info is not None:
            return LockInfo(
                name=name,
                backend=info.backend,
                owner=info.owner,
                expires=info.expires,
                identity=info.identity,
                age=info.age,
                problem=info.problem,
            )
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            return None
        # Between mkdir() and writing owner.json, or left by a crash right there: the
        # stale rules give it the write grace, then treat it as stale.
        return LockInfo(
            name=name,
            backend=self.name,
            owner=None,
            identity=(st.st_mtime_ns, 0),
            age=max(0.0, time.time() - st.st_mtime),
            problem="lock directory has no owner.json",
        )

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock if it is still ``expected``, under lockkit's breaker lock."""
        with files.breaker(name) as held:
            if not held:
                return False
            current = self.inspect(name)
            if current is None or current.identity != expected.identity:
                return False
            token = current.owner.token if current.owner else ""
            if token != (expected.owner.token if expected.owner else ""):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(name, OWNER_FILE))  # noqa: PTH108, PTH118
            return _remove_lock_dir(name, token or "stale")

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        """Sleep until the directory is removed (inotify where available)."""
        return files.wait_for_removal(name, deadline, attempt)

    @classmethod
    def probe(cls, location: str) -> Support:
        """mkdir() twice: the second must fail with EEXIST."""
        probe = os.path.join(location, f".lockkit-mkdir-probe-{os.getpid()}")  # noqa: PTH118
        try:
            os.mkdir(probe)  # noqa: PTH102
        except OSError as exc:
            return Support(
                ok=False, reason=f"mkdir() failed: {errno.errorcode.get(exc.errno or 0)}"
            )
        try:
            os.mkdir(probe)  # noqa: PTH102
        except FileExistsError:
            ok = True
        else:
            ok = False
        finally:
            _rmdir_quietly(probe)
        if not ok:
            return Support(ok=False, reason="mkdir() of an existing directory succeeded")
        # Below the built-ins: auto-detection picks it only where they all fail.
        return Support(ok=True, preference=20, reason="mkdir() is exclusive")


def _remove_lock_dir(path: str, token: str) -> bool:
    """Remove the (now empty) lock directory; ``False`` if it was already gone.

    FUSE filesystems without ``hard_remove`` (exfat-fuse, many others) keep a file that
    is deleted while another process has it open as ``.fuse_hidden*`` until that
    process closes it; a reader of owner.json then makes ``rmdir`` fail with ENOTEMPTY
    for a moment. Retry briefly; if it persists, rename the directory aside so the lock
    is free at once, and leave the leftover to be removed when it empties.
    """
    delay = 0.001
    deadline = time.monotonic() + 1.0
    while True:
        try:
            os.rmdir(path)  # noqa: PTH106
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            leftovers = os.listdir(path)  # noqa: PTH208
            if any(not entry.startswith(".fuse_hidden") for entry in leftovers):
                raise
            if time.monotonic() >= deadline:
                tomb = f"{path}.{token[:16]}.released"
                os.rename(path, tomb)  # noqa: PTH104
                with contextlib.suppress(OSError):
                    os.rmdir(tomb)  # noqa: PTH106
                return True
            # Nothing signals when the reader closes its descriptor: back off briefly.
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        else:
            return True


def _rmdir_quietly(path: str) -> bool:
    try:
        os.rmdir(path)  # noqa: PTH106
    except FileNotFoundError:
        return False
    return True


@hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``mkdir`` backend."""
    return [MkdirBackend]
