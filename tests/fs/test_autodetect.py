"""Auto-detection on real filesystems: the right backend, the evidence, and no leftovers."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

import lockkit
from lockkit._autodetect import detect
from lockkit._stress import run_increments
from lockkit.errors import BackendUnavailable
from tests.mounts import skip_or_fail

pytestmark = pytest.mark.fs


def test_local_directory_gets_hardlink(local_dir: pathlib.Path) -> None:
    lock = lockkit.Lock(local_dir / "a.lock")
    assert lock.selection.source == "auto-detect"
    assert lock.selection.backend == "hardlink"
    assert "link() works" in lock.selection.detail
    assert os.listdir(local_dir) == []  # probing left nothing behind
    detection = detect(str(local_dir))
    assert dict(detection.evidence)["excl"].ok
    assert dict(detection.evidence)["filelock"].ok


def test_detection_is_cached_per_device(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert detect(str(tmp_path / "a")) is detect(str(tmp_path / "b"))


@pytest.mark.realfs
@pytest.mark.multiprocess
def test_auto_on_filesystems_without_hard_links(
    realfs_dir: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    lock = lockkit.Lock(realfs_dir / "a.lock")
    assert lock.selection.backend == "excl"
    expected = "EPERM" if "exfat" in request.node.callspec.id else "ENOTSUP"
    evidence = dict(detect(str(realfs_dir)).evidence)
    assert f"link() failed: {expected}" in evidence["hardlink"].reason
    assert "O_CREAT|O_EXCL is exclusive" in lock.selection.detail
    assert os.listdir(realfs_dir) == []
    result = run_increments(str(realfs_dir), "auto", processes=8, increments=100, timeout=300)
    assert result.errors == ()
    assert result.lost == 0
    assert result.final == 800


@pytest.mark.realfs
def test_nothing_can_lock_on_a_read_only_filesystem(tmp_path: pathlib.Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("mounting a read-only tmpfs needs root")
    target = tmp_path / "ro"
    target.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "lockkit-ro", str(target)], check=True
    )
    try:
        with pytest.raises(BackendUnavailable) as caught:
            lockkit.Lock(target / "a.lock")
        message = str(caught.value)
        assert "no lock backend works" in message
        assert "tmpfs" in message
        assert "Read-only file system" in message
    finally:
        subprocess.run(["umount", str(target)], check=True)
