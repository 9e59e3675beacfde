"""`lockkit status` and `lockkit break` on real lock files."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

import lockkit
from lockkit.cli import main

pytestmark = pytest.mark.fs


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_status_of_a_free_lock(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "status", str(tmp_path / "a.lock"), "--json")
    assert code == 0
    assert json.loads(out) == {"lock": str(tmp_path / "a.lock"), "held": False}


def test_status_and_break_of_a_live_lock(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.lock"
    lock = lockkit.Lock(path, backend="hardlink")
    lock.acquire()
    code, out = run(capsys, "status", str(path), "--json")
    report = json.loads(out)
    assert code == 0
    assert report["held"] is True
    assert report["holder"]["pid"] == os.getpid()
    assert report["backend"] == "hardlink"
    assert report["machine_view"] == "same"
    assert report["stale"] is False
    assert report["rule"] == "alive"
    assert lock.lease is not None
    assert lock.lease.token not in out

    code, out = run(capsys, "break", str(path))
    assert code == 1
    assert "refusing to break a live lock" in out
    assert path.exists()

    code, out = run(capsys, "break", str(path), "--force", "--json")
    assert code == 0
    assert json.loads(out)["removed"] is True
    assert not path.exists()
    assert not lock.is_held()
    lock.release()


def test_break_of_a_stale_lock(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stale.lock"
    path.write_text(json.dumps({"pid": dead_pid(), "createdAt": "2026-01-01T00:00:00Z"}))
    code, out = run(capsys, "status", str(path))
    assert code == 0
    assert "STALE (rule pid-dead)" in out
    code, out = run(capsys, "break", str(path))
    assert code == 0
    assert "removed" in out
    assert not path.exists()


def test_break_names_a_breaker_in_the_way(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A (planted) breaker from the future: the message says what is in the way, and when."""
    path = tmp_path / "stale.lock"
    path.write_text(json.dumps({"pid": dead_pid(), "createdAt": "2026-01-01T00:00:00Z"}))
    breaker = tmp_path / "stale.lock.break"
    breaker.write_text(json.dumps({"pid": 1, "createdAt": "2999-01-01T00:00:00Z"}))
    code, out = run(capsys, "break", "--backend", "excl", str(path))
    assert code == 1
    assert f"holds the breaker lock {breaker}" in out
    assert "cleared after 30 s of age" in out
    assert path.exists()
    assert breaker.exists()  # young: not cleared yet


def test_status_of_a_malformed_lock(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.lock"
    path.write_bytes(b'{"pid": garbage')
    code, out = run(capsys, "status", str(path))
    assert code == 0
    assert "unknown (lock file is not valid JSON" in out
    assert "rule write-grace" in out


def test_status_and_break_of_a_filelock_lock(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "os.lock"
    with lockkit.Lock(path, backend="filelock"):
        code, out = run(capsys, "status", str(path), "--json")
        report = json.loads(out)
        assert report["held"] is True
        assert report["backend"] == "filelock"
        code, out = run(capsys, "break", str(path), "--force")
        assert code == 1
        assert "cannot break locks" in out
    # Released: the file stays (flock semantics) but the lock is free.
    code, out = run(capsys, "status", str(path), "--json")
    assert json.loads(out)["held"] is False


def test_status_refuses_a_symlink(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "l.lock").symlink_to(target)
    code, out = run(capsys, "status", str(tmp_path / "l.lock"))
    assert code == 2
    assert "symbolic link" in out
    assert "Traceback" not in out
