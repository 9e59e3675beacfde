"""Stale-lock rules on real lock files, including OpenClaw's payload shapes."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import subprocess
import time

import pytest

import lockkit
from lockkit._info import LockInfo, Owner, process_identity, read_start_time
from lockkit._stale import WRITE_GRACE, judge
from lockkit.backends._file import BREAKER_SUFFIX, MAX_PAYLOAD
from lockkit.errors import LockTimeout

pytestmark = pytest.mark.fs

FILE_BACKENDS = ["excl", "hardlink"]


@pytest.fixture(params=FILE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plant(path: pathlib.Path, payload: object, *, age: float = 0.0) -> None:
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def me() -> dict[str, object]:
    ident = process_identity()
    return {"host": ident.host, "bootId": ident.boot_id, "pidNs": ident.pid_ns}


def take(path: pathlib.Path, backend: str) -> lockkit.Lock:
    lock = lockkit.Lock(path, backend=backend)
    lock.acquire(blocking=False)
    return lock


def assert_respected(path: pathlib.Path, backend: str, *, reason: str) -> LockTimeout:
    before = path.read_bytes()
    with pytest.raises(LockTimeout) as caught:
        take(path, backend)
    assert path.read_bytes() == before  # untouched
    info = lockkit.Lock(path, backend=backend).inspect()
    assert info is not None
    assert reason in judge(info).reason
    return caught.value


def assert_reclaimed(path: pathlib.Path, backend: str) -> None:
    lock = take(path, backend)
    info = lock.inspect()
    assert info is not None
    assert info.owner is not None
    assert info.owner.pid == os.getpid()
    lock.release()
    assert not path.exists()
    assert not pathlib.Path(str(path) + BREAKER_SUFFIX).exists()


def test_dead_holder_is_reclaimed(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    assert_reclaimed(path, backend)


def test_live_holder_is_respected(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    parent = os.getppid()
    plant(path, {"pid": parent, **me(), "startTime": read_start_time(parent), "token": "t"})
    error = assert_respected(path, backend, reason="is running")
    assert f"pid {parent}" in str(error)


def test_reused_pid_is_stale(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    parent = os.getppid()
    start = read_start_time(parent)
    assert start is not None
    plant(path, {"pid": parent, **me(), "startTime": start + 12345, "token": "t"})
    info = lockkit.Lock(path, backend=backend).inspect()
    assert info is not None
    verdict = judge(info)
    assert verdict.stale
    assert verdict.rule == "pid-reused"
    assert_reclaimed(path, backend)


def test_other_host_without_expiry_is_never_broken(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), "host": "elsewhere", "bootId": "not-this-boot"}, age=3600)
    error = assert_respected(path, backend, reason="never broken automatically")
    assert "host elsewhere" in str(error)


def test_other_host_with_past_expiry_is_broken(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    plant(path, {"pid": 1, "host": "elsewhere", "bootId": "x", "expires": past, "token": "t"})
    assert_reclaimed(path, backend)


def test_other_host_with_future_expiry_is_respected(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)).isoformat()
    plant(path, {"pid": 1, "host": "elsewhere", "bootId": "x", "expires": future, "token": "t"})
    assert_respected(path, backend, reason="expires in")


@pytest.mark.parametrize(
    "shape",
    [
        {"startedAt": 1_700_000_000_000, "token": "t"},
        {"createdAt": "2026-01-01T00:00:00.000Z", "starttime": 4242},
        {"createdAt": "2026-01-01T00:00:00.000Z", "startTime": 4242},
    ],
    ids=["pid-startedAt-token", "pid-createdAt-starttime", "pid-createdAt-startTime"],
)
def test_openclaw_payloads(tmp_path: pathlib.Path, backend: str, shape: dict[str, object]) -> None:
    path = tmp_path / "openclaw.lock"
    parent = os.getppid()
    live = dict(shape)
    if "starttime" in live:
        live["starttime"] = read_start_time(parent)
    if "startTime" in live:
        live["startTime"] = read_start_time(parent)
    plant(path, {"pid": parent, **live})
    assert_respected(path, backend, reason="is running")
    plant(path, {"pid": dead_pid(), **shape})
    assert_reclaimed(path, backend)


MALFORMED = {
    "empty": "",
    "truncated": '{"pid": 12, "createdAt": "2026-',
    "not-json": "{locked by cron}\n",
    "no-pid": '{"host": "cron"}',
    # As large as a lock file may be. Larger, or not starting with "{", it is not a
    # lock file at all and is refused, never broken (tests/adversarial/test_hostile_paths).
    "at-the-size-limit": "{" + "x" * (MAX_PAYLOAD - 1),
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lock_within_grace_is_respected(
    tmp_path: pathlib.Path, backend: str, content: str
) -> None:
    path = tmp_path / "bad.lock"
    plant(path, content)
    error = assert_respected(path, backend, reason="write in progress")
    assert "unreadable lock" in str(error)


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lock_after_grace_is_reclaimed(
    tmp_path: pathlib.Path, backend: str, content: str
) -> None:
    path = tmp_path / "bad.lock"
    plant(path, content, age=WRITE_GRACE + 1)
    assert_reclaimed(path, backend)


def test_stale_breaker_left_by_a_crash_does_not_block(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    plant(pathlib.Path(str(path) + BREAKER_SUFFIX), {"pid": dead_pid(), **me(), "token": "b"})
    assert_reclaimed(path, backend)


def test_break_refuses_a_lock_that_changed_since_it_was_judged(
    tmp_path: pathlib.Path, backend: str
) -> None:
    assert_break_refuses_a_changed_lock(tmp_path / "a.lock", backend)


def assert_break_refuses_a_changed_lock(path: pathlib.Path, backend: str) -> None:
    plant(path, {"pid": dead_pid(), **me(), "token": "old"})
    lock = lockkit.Lock(path, backend=backend)
    stale = lock.inspect()
    assert stale is not None
    assert judge(stale).stale
    # Meanwhile the stale lock is broken and a live one takes its place, possibly on the
    # very same inode number.
    path.unlink()
    fresh = lockkit.Lock(path, backend=backend)
    fresh.acquire()
    assert not lock.backend.break_lock(lock.name, stale)
    assert fresh.is_held()
    fresh.release()


def test_break_of_a_vanished_lock_unlinks_nothing(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "old"})
    lock = lockkit.Lock(path, backend=backend)
    stale = lock.inspect()
    assert stale is not None
    path.unlink()
    assert not lock.backend.break_lock(lock.name, stale)
    assert sorted(os.listdir(tmp_path)) == []


def test_zombie_holder_counts_as_dead(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    child = subprocess.Popen(["true"])
    # Wait for it to exit without reaping it: it stays a zombie until child.wait().
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.005)  # polling a process state: there is no event to wait on
    plant(path, {"pid": child.pid, **me(), "token": "z"})
    try:
        assert_reclaimed(path, backend)
    finally:
        child.wait()


def test_judge_other_machine_view_for_foreign_boot() -> None:
    info = LockInfo(
        name="x", backend="excl", owner=Owner(pid=os.getpid(), host="h", boot_id="another")
    )
    verdict = judge(info)
    assert not verdict.stale
    assert verdict.view == "other"


def test_a_lock_held_by_unnamed_readers_is_live() -> None:
    # filelock read locks: flock records no readers, so there is no owner to judge.
    info = LockInfo(name="/x.lock", backend="filelock", owner=None, shared=True, age=3600.0)
    verdict = judge(info)
    assert verdict.stale is False
    assert verdict.rule == "shared"
    # The same report without `shared` is an unreadable file past its grace: stale.
    assert judge(LockInfo(name="/x.lock", backend="filelock", owner=None, age=3600.0)).stale
