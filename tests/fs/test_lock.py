"""lockkit.Lock on a real directory, for every built-in file backend."""

from __future__ import annotations

import errno
import os
import pathlib
import threading

import pytest

import lockkit
from lockkit.errors import InvalidLockName, LockNotHeld, LockTimeout

pytestmark = pytest.mark.fs

BACKENDS = ["excl", "hardlink", "filelock"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_context_manager_holds_and_frees(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "state.json.lock"
    lock = lockkit.Lock(path, backend=backend)
    assert not lock.locked
    with lock:
        assert lock.locked
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        assert info.backend == backend
    assert not lock.locked
    assert lock.inspect() is None


def test_nonblocking_attempt_on_busy_lock_names_the_holder(
    tmp_path: pathlib.Path, backend: str
) -> None:
    path = tmp_path / "busy.lock"
    with lockkit.Lock(path, backend=backend):
        other = lockkit.Lock(path, backend=backend)
        with pytest.raises(LockTimeout) as caught:
            other.acquire(blocking=False)
        holder = caught.value.holder
        assert holder is not None
        assert holder.owner is not None
        assert holder.owner.pid == os.getpid()
        assert f"pid {os.getpid()}" in str(caught.value)
        assert f"host {holder.owner.host}" in str(caught.value)
        assert caught.value.timeout == 0
        assert not other.locked


def test_timeout_raises_after_waiting(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "busy.lock"
    with lockkit.Lock(path, backend=backend):
        other = lockkit.Lock(path, backend=backend, timeout=0.05)
        with pytest.raises(LockTimeout, match=r"timed out after 0\.05 s"):
            other.acquire()
        # An explicit timeout overrides the object's default.
        with pytest.raises(LockTimeout, match=r"timed out after 0\.02 s"):
            other.acquire(timeout=0.02)


def test_waiter_gets_lock_when_holder_releases(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "handoff.lock"
    holder = lockkit.Lock(path, backend=backend)
    holder.acquire()
    waiting = threading.Event()
    got: list[bool] = []

    def waiter() -> None:
        lock = lockkit.Lock(path, backend=backend)
        waiting.set()
        lock.acquire(timeout=30)
        got.append(lock.locked)
        lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    holder.release()
    thread.join(30)
    assert got == [True]


def test_reentrant_within_a_thread(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "re.lock", backend=backend)
    with lock, lock:
        assert lock.locked
    assert not lock.locked
    assert lock.inspect() is None


def test_other_thread_on_same_object_waits(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "threads.lock", backend=backend)
    lock.acquire()
    outcome: list[str] = []

    def other() -> None:
        try:
            lock.acquire(timeout=0.05)
        except LockTimeout:
            outcome.append("timeout")
        else:
            outcome.append("acquired")
            lock.release()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert outcome == ["timeout"]
    lock.release()


def test_release_when_not_held_is_an_error(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "x.lock", backend=backend)
    with pytest.raises(LockNotHeld, match="not held"):
        lock.release()


def test_decorator(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "deco.lock", backend=backend)

    @lock
    def critical() -> bool:
        return lock.locked

    assert critical() is True
    assert not lock.locked


def test_force_release_ignores_nesting(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "force.lock", backend=backend)
    lock.acquire()
    lock.acquire()
    lock.release(force=True)
    assert not lock.locked
    assert lock.inspect() is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("bad\0name.lock", "NUL"),
        ("missing-dir/x.lock", "does not exist; create it first"),
        ("dir-here/", "name a file"),
    ],
)
def test_invalid_names_are_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, backend: str, name: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir-here").mkdir()
    with pytest.raises(InvalidLockName, match=message):
        lockkit.Lock(name, backend=backend)


def test_directory_is_refused(tmp_path: pathlib.Path, backend: str) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(InvalidLockName, match="is a directory"):
        lockkit.Lock(tmp_path / "adir", backend=backend)


def test_symlink_at_lock_path_is_refused_and_target_untouched(
    tmp_path: pathlib.Path, backend: str
) -> None:
    target = tmp_path / "precious.json"
    target.write_text('{"keep": true}')
    link = tmp_path / "app.lock"
    link.symlink_to(target)
    with pytest.raises(InvalidLockName, match="symbolic link"):
        lockkit.Lock(link, backend=backend)
    assert target.read_text() == '{"keep": true}'


def test_symlink_planted_after_construction_is_never_followed(
    tmp_path: pathlib.Path, backend: str
) -> None:
    target = tmp_path / "precious.json"
    target.write_text('{"keep": true}')
    path = tmp_path / "app.lock"
    lock = lockkit.Lock(path, backend=backend, timeout=0)
    path.symlink_to(target)
    with pytest.raises((InvalidLockName, LockTimeout)):
        lock.acquire()
    assert target.read_text() == '{"keep": true}'
    assert path.is_symlink()


def test_no_descriptor_leak(tmp_path: pathlib.Path, backend: str) -> None:
    before = len(os.listdir("/proc/self/fd"))
    path = tmp_path / "fd.lock"
    for _ in range(200):
        with lockkit.Lock(path, backend=backend):
            pass
    busy = lockkit.Lock(path, backend=backend)
    with busy:
        for _ in range(50):
            with pytest.raises(LockTimeout):
                lockkit.Lock(path, backend=backend).acquire(timeout=0)
    assert len(os.listdir("/proc/self/fd")) == before


def test_forgotten_lock_is_freed_when_collected(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "gc.lock"
    lock = lockkit.Lock(path, backend=backend)
    lock.acquire()
    del lock
    again = lockkit.Lock(path, backend=backend)
    again.acquire(timeout=0)
    again.release()


def test_repr_shows_no_token(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "r.lock", backend=backend)
    with lock:
        assert lock.lease is not None
        token = lock.lease.token
        assert token
        assert token not in repr(lock)
        assert token not in repr(lock.lease)
        assert token not in repr(lock.inspect())


def test_hardlink_leaves_no_temp_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "clean.lock"
    lock = lockkit.Lock(path, backend="hardlink")
    with lock:
        assert sorted(os.listdir(tmp_path)) == ["clean.lock"]
        with pytest.raises(LockTimeout):
            lockkit.Lock(path, backend="hardlink").acquire(timeout=0)
        assert sorted(os.listdir(tmp_path)) == ["clean.lock"]
    assert os.listdir(tmp_path) == []


def test_hardlink_falls_back_when_link_is_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Supplements the real exFAT/FUSE tests: every errno of the fallback set is covered.
    from lockkit.backends.hardlink import LINK_UNSUPPORTED, HardlinkBackend
    from lockkit.errors import LockkitWarning

    for code in sorted(LINK_UNSUPPORTED):
        backend = HardlinkBackend()
        directory = tmp_path / errno.errorcode[code]
        directory.mkdir()

        def refuse(src: str, dst: str, *, _code: int = code) -> None:
            raise OSError(_code, os.strerror(_code), src, None, dst)

        def lock_three_times(
            directory: pathlib.Path = directory, backend: object = backend
        ) -> None:
            for _ in range(3):
                with lockkit.Lock(directory / "x.lock", backend=backend):  # type: ignore[arg-type]
                    assert (directory / "x.lock").exists()

        monkeypatch.setattr(os, "link", refuse)
        with pytest.warns(LockkitWarning, match="falls back to O_CREAT") as caught:
            lock_three_times()
        assert len(caught) == 1
        assert errno.errorcode[code] in str(caught[0].message)
        assert backend.falls_back_in(str(directory))
        monkeypatch.undo()


def test_hardlink_propagates_unexpected_link_errors(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "I/O error", src)

    monkeypatch.setattr(os, "link", broken)
    with pytest.raises(OSError, match="I/O error"):
        lockkit.Lock(tmp_path / "io.lock", backend="hardlink").acquire(timeout=0)
    assert os.listdir(tmp_path) == []


def test_with_acquire_releases_at_block_end(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "acq.lock", backend=backend)
    with lock.acquire(timeout=5) as held:
        assert held is lock
        assert lock.locked
    assert not lock.locked
    assert lock.inspect() is None


def test_thread_waiting_on_shared_object_times_out(tmp_path: pathlib.Path, backend: str) -> None:
    lock = lockkit.Lock(tmp_path / "deadline.lock", backend=backend)
    lock.acquire()
    errors: list[LockTimeout] = []
    thread = threading.Thread(target=lambda: _acquire_expecting_timeout(lock, errors))
    thread.start()
    thread.join(10)
    lock.release()
    assert len(errors) == 1
    assert errors[0].timeout == 0.1


def _acquire_expecting_timeout(lock: lockkit.Lock, errors: list[LockTimeout]) -> None:
    try:
        lock.acquire(timeout=0.1)
    except LockTimeout as exc:
        errors.append(exc)


def test_inspect_reports_the_backend_that_wrote_the_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "mixed.lock"
    with lockkit.Lock(path, backend="hardlink"):
        info = lockkit.Lock(path, backend="excl").inspect()
        assert info is not None
        assert info.backend == "hardlink"


@pytest.mark.parametrize("before", [b"", b"{" + b"x" * 600], ids=["shorter", "longer"])
def test_filelock_payload_replaces_the_previous_one_whole(
    tmp_path: pathlib.Path, before: bytes
) -> None:
    path = tmp_path / "state.json.lock"
    path.write_bytes(before)  # what an earlier holder (or anyone) left in the file
    with lockkit.Lock(path, backend="filelock"):
        data = path.read_bytes()
        info = lockkit.Lock(path, backend="filelock").inspect()
    assert data.startswith(b"{")
    assert data.endswith(b"}")
    assert info is not None
    assert info.owner is not None
    assert info.owner.pid == os.getpid()
