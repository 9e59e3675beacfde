"""A full disk, a read-only filesystem and failing system calls: only `LockError` escapes.

The real part: a private tmpfs mounted per test (root), filled until it has no inode
or no byte left, or remounted read-only. The supplement: every system call the file
backends make fails in turn with each errno a faulty world produces; a public call may
then raise only a `LockError`, and must leave no half-written lock or temp file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pathlib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lockkit
from tests.mounts import skip_or_fail

BACKENDS = ["excl", "hardlink", "filelock"]


@pytest.fixture
def small_tmpfs(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 256 KiB tmpfs with 64 inodes, mounted for this test only."""
    if os.geteuid() != 0:
        skip_or_fail("needs root to mount a tmpfs")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    result = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=256k,nr_inodes=64,mode=0755",
            "tmpfs",
            str(mountpoint),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill_inodes(directory: pathlib.Path) -> None:
    for index in range(10_000):
        try:
            (directory / f"filler-{index}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return
    pytest.fail("the tmpfs never ran out of inodes")


def fill_bytes(directory: pathlib.Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def entries(directory: pathlib.Path) -> set[str]:
    return {p.name for p in directory.iterdir() if not p.name.startswith("filler")}


@pytest.mark.realfs
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("filled", ["inodes", "bytes", "read-only"])
def test_a_full_or_read_only_filesystem_is_a_clear_lock_error(
    small_tmpfs: pathlib.Path, backend: str, filled: str
) -> None:
    lock_dir = small_tmpfs / "locks"
    lock_dir.mkdir()
    if filled == "inodes":
        fill_inodes(small_tmpfs)
    elif filled == "bytes":
        fill_bytes(small_tmpfs)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    lock = lockkit.Lock(lock_dir / "state.lock", backend=backend)
    with pytest.raises(lockkit.LockError) as caught:
        lock.acquire(timeout=0.5)
    assert isinstance(caught.value, lockkit.BackendUnavailable), caught.value
    assert caught.value.errno in {errno.ENOSPC, errno.EROFS}, caught.value
    assert "state.lock" in str(caught.value)
    # filelock keeps its (empty) lock file by design; nothing else may stay.
    kept = {"state.lock"} if backend == "filelock" else set()
    assert entries(lock_dir) <= kept, "a half-made lock or temp file was left behind"
    assert not lock.locked

    async def attempt() -> None:
        await lockkit.AsyncLock(lock_dir / "state.lock", backend=backend).acquire(timeout=0.5)

    with pytest.raises(lockkit.BackendUnavailable):
        asyncio.run(attempt())
    assert entries(lock_dir) <= kept


# -- the supplement: each system call fails in turn ---------------------------------

ERRNOS = [errno.EIO, errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EMFILE]
PATCHED = ["open", "write", "pwrite", "pread", "read", "fstat", "lstat", "stat", "link",
           "unlink", "rename", "fsync", "ftruncate", "close"]  # fmt: skip


class Faults:
    """Make the ``fail_at``-th patched ``os`` call raise ``OSError(code)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.fail_at = -1
        self.code = errno.EIO
        for name in PATCHED:
            original = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(original, name))

    def _wrap(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.fail_at and not (name == "close" and self.code != errno.EIO):
                raise OSError(self.code, os.strerror(self.code))
            return original(*args, **kwargs)

        return call

    @contextlib.contextmanager
    def failing(self, at: int, code: int) -> Iterator[None]:
        self.calls, self.fail_at, self.code = 0, at, code
        try:
            yield
        finally:
            self.fail_at = -1


ALLOWED = (lockkit.LockError, ValueError, TypeError)


def scenario(lock: lockkit.Lock) -> None:
    """Everything a caller does with a lock, once."""
    lock.inspect()
    with lock.acquire(timeout=0):
        lock.is_held()
        lock.inspect()


@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_failing_system_call_surfaces_as_a_lock_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, backend: str, code: int
) -> None:
    path = tmp_path / "state.lock"
    scenario(lockkit.Lock(path, backend=backend))  # warm caches outside the count
    faults = Faults(monkeypatch)
    with faults.failing(at=-1, code=code):
        scenario(lockkit.Lock(path, backend=backend))
    total = faults.calls
    assert total > 3
    escaped = []
    for at in range(1, total + 1):
        lock = lockkit.Lock(path, backend=backend)
        try:
            with faults.failing(at=at, code=code):
                scenario(lock)
        except ALLOWED:
            pass
        except Exception as exc:  # noqa: BLE001 - collecting what escapes is the point
            escaped.append(f"call {at}: {type(exc).__name__}: {exc}")
        monkeypatch.undo()
        if lock.locked:
            # The release failed: the lock is still this object's, and a retry frees it.
            lock.release()
        # Nothing half-made is left, and the lock works again.
        allowed = {"state.lock"} if backend == "filelock" else set()
        leftovers = {p.name for p in tmp_path.iterdir()} - allowed
        assert not leftovers, (at, leftovers)
        scenario(lockkit.Lock(path, backend=backend))
        faults = Faults(monkeypatch)
    assert escaped == []
