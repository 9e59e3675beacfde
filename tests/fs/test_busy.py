"""What share servers answer, replayed on a local disk: busy files, EPERM for "exists".

The real answers are tested on real shares (`tests/multiprocess/test_shares.py`);
these tests supplement them with interleavings a share produces only by chance: a
lock file replaced while its removal waited out an EBUSY, a break that meets a busy
file, and a create refused with EPERM. ``os.unlink`` and ``os.open`` are patched for the
length of a test to answer as smbnetfs and sshfs do.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import pathlib
from collections.abc import Callable

import pytest

import lockkit
from lockkit._info import LockInfo, Owner
from lockkit._value import evolve
from lockkit.backends import _file
from lockkit.errors import BackendUnavailable

pytestmark = pytest.mark.fs

NEWER = "newer"
_real_unlink = os.unlink
_real_open = os.open


def _busy_once(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]) -> list[str]:
    """The next unlink answers EBUSY after running ``meanwhile``; later ones are real."""
    calls: list[str] = []

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        # Breaks remove relative to the lock's directory, opened (`open_lock_directory`).
        where = (
            path if dir_fd is None else os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        )
        calls.append(where)
        if len(calls) == 1:
            meanwhile()
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        _real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    return calls


def _replace_with(path: pathlib.Path, token: str) -> Callable[[], None]:
    def replace() -> None:
        _real_unlink(path)
        other = Owner.current()
        path.write_bytes(_file.encode_payload(evolve(other, token=token), "excl", None))

    return replace


@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_release_retried_after_ebusy_spares_a_lock_that_replaced_ours(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    path = tmp_path / "a.lock"
    lease = _file.remove_if_ours  # the path every share release takes
    lost: list[lockkit.Lock] = []
    lock = lockkit.Lock(path, backend=backend, on_lost=lost.append)
    lock.acquire()
    held = lock.lease
    assert held is not None
    calls = _busy_once(monkeypatch, _replace_with(path, NEWER))
    assert not lease(held)
    # The retry read the token again and left the newer holder's file alone.
    assert len(calls) == 1
    assert json.loads(path.read_bytes())["token"] == NEWER
    monkeypatch.undo()
    lock.release()
    assert lost == [lock]  # reported lost, and the newer file untouched:
    assert json.loads(path.read_bytes())["token"] == NEWER


def test_a_release_waits_out_a_reader(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.lock"
    lock = lockkit.Lock(path, backend="excl")
    lock.acquire()
    held = lock.lease
    assert held is not None
    calls = _busy_once(monkeypatch, lambda: None)
    assert _file.remove_if_ours(held)
    assert len(calls) == 2
    assert not path.exists()


def _stale_lock(path: pathlib.Path) -> tuple[lockkit.Lock, LockInfo]:
    path.write_text(json.dumps({"pid": 2**22 + 1, "token": "stale", "host": "elsewhere"}))
    lock = lockkit.Lock(path, backend="excl")
    stale = lock.inspect()
    assert stale is not None
    return lock, stale


def test_a_break_waits_out_a_reader(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.lock"
    lock, stale = _stale_lock(path)
    calls = _busy_once(monkeypatch, lambda: None)
    assert lock.backend.break_lock(lock.name, stale)
    assert calls.count(str(path)) == 2
    assert not path.exists()
    assert not os.path.lexists(str(path) + _file.BREAKER_SUFFIX)


def test_a_break_retried_after_ebusy_spares_a_lock_renewed_meanwhile(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.lock"
    lock, stale = _stale_lock(path)
    renewed = {
        "pid": 2**22 + 1,
        "token": "stale",
        "host": "elsewhere",
        "expires": "2999-01-01T00:00:00Z",
    }
    calls = _busy_once(monkeypatch, lambda: path.write_text(json.dumps(renewed)))
    assert not lock.backend.break_lock(lock.name, stale)
    assert calls.count(str(path)) == 1  # the retry saw the renewal and let it be
    assert json.loads(path.read_text()) == renewed


def test_a_break_refuses_a_renewed_lock_with_the_same_identity(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.lock"
    path.write_text(json.dumps({"pid": 2**22 + 1, "token": "t", "host": "elsewhere"}))
    lock = lockkit.Lock(path, backend="excl")
    seen = lock.inspect()
    assert seen is not None
    # An SFTP client can show a renewed file with the old mtime and size; only the
    # expiry in the payload differs.
    renewed = evolve(seen, expires=dt.datetime.now(dt.UTC))
    assert not lock.backend.break_lock(lock.name, renewed)
    assert path.exists()


def test_a_file_that_stays_busy_is_a_clear_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.tmp"
    path.write_bytes(b"x")

    def unlink(target: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy", target)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(BackendUnavailable, match=r"busy \(EBUSY\) for 0\.05 s.*SMB"):
        _file.unlink_lock_file(str(path), patience=0.05)


def _eperm_when(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def open_(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_EXCL:
            calls.append(flags)
            raise OSError(errno.EPERM, "Operation not permitted", path)
        return _real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", open_)
    return calls


def test_eperm_for_an_existing_file_is_busy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.lock"
    path.write_text("{}")
    calls = _eperm_when(monkeypatch)
    assert _file.create_held(str(path), b"{}") is None
    assert len(calls) == 1


def test_eperm_with_no_file_there_is_an_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _eperm_when(monkeypatch)
    with pytest.raises(PermissionError):
        _file.create_held(str(tmp_path / "a.lock"), b"{}")
    assert len(calls) == 2  # tried once more in case the file vanished in between
