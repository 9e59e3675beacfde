"""Platform facilities are probed, not assumed, and `lockkit doctor` says what is missing.

The probes are checked by making a facility absent in this process (monkeypatch) and,
end to end, in a child interpreter whose sitecustomize hides /proc, O_NOFOLLOW and
inotify: what a macOS-like system offers. Locks must still work there.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from lockkit import _fsinfo, _info, _notify, _platform
from lockkit._value import evolve
from lockkit.cli import main

NAMES = [
    "inotify",
    "process start times",
    "machine view",
    "pid liveness",
    "filesystem types",
    "O_NOFOLLOW",
    "flock",
    "fork safety",
]


def _by_name() -> dict[str, _platform.Feature]:
    return {feature.name: feature for feature in _platform.features()}


def test_every_facility_is_reported_once() -> None:
    found = _platform.features()
    assert [feature.name for feature in found] == NAMES
    for feature in found:
        assert feature.detail
        assert feature.fallback
        with pytest.raises(AttributeError):
            feature.available = False  # type: ignore[misc]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux has every facility")
def test_linux_has_every_facility() -> None:
    assert {name for name, feature in _by_name().items() if not feature.available} == set()


def _no_inotify(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(_notify, "available", lambda: False)


def _no_proc_stat(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(_info, "read_start_time", lambda pid: None)


def _no_boot_id(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    identity = evolve(_info.process_identity(), boot_id="", pid_ns=None)
    monkeypatch.setattr(_info, "process_identity", lambda: identity)


def _no_mount_table(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(_fsinfo, "MOUNT_TABLE", str(tmp_path / "no-mountinfo"))


def _no_nofollow(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delattr(os, "O_NOFOLLOW")


def _no_fcntl(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError


def _no_fork_hooks(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delattr(os, "register_at_fork")


def _no_kill(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delattr(os, "kill")


Remove = Callable[[pytest.MonkeyPatch, pathlib.Path], None]


@pytest.mark.parametrize(
    ("name", "remove", "expected"),
    [
        ("inotify", _no_inotify, ("no inotify", "poll with bounded backoff")),
        (
            "process start times",
            _no_proc_stat,
            ("/proc/<pid>/stat", "pid reuse cannot be detected"),
        ),
        ("machine view", _no_boot_id, ("no boot id and pid namespace", "host name alone")),
        ("filesystem types", _no_mount_table, ("no-mountinfo", "filesystem type as unknown")),
        ("O_NOFOLLOW", _no_nofollow, ("O_NOFOLLOW is missing", "checked with lstat()")),
        ("flock", _no_fcntl, ("no fcntl.flock", "filelock backend is unavailable")),
        ("fork safety", _no_fork_hooks, ("register_at_fork is missing", "forked")),
        ("pid liveness", _no_kill, ("no way to ask", "assumed alive")),
    ],
)
def test_a_missing_facility_is_reported_with_its_fallback(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
    name: str,
    remove: Remove,
    expected: tuple[str, str],
) -> None:
    detail, fallback = expected
    assert _by_name()[name].available is True
    remove(monkeypatch, tmp_path)
    found = _by_name()
    assert found[name].available is False
    assert detail in found[name].detail
    assert fallback in found[name].fallback
    # Only that one is affected.
    assert [n for n, feature in found.items() if not feature.available] == [name]


def _degrade(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    for remove in (_no_inotify, _no_proc_stat, _no_mount_table, _no_nofollow):
        remove(monkeypatch, tmp_path)


@pytest.mark.fs
def test_doctor_lists_missing_facilities_with_their_fallbacks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _degrade(monkeypatch, tmp_path)
    argv = ["doctor", str(work), "--backend", "excl", "--processes", "1", "--increments", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    section = out[out.index("Platform features") : out.index("verdict:")]
    lines = section.splitlines()
    for name, fallback in [
        ("inotify", "waiters poll with bounded backoff instead of inotify"),
        ("process start times", "pid reuse cannot be detected"),
        ("filesystem types", "`doctor` shows the filesystem type as unknown"),
        ("O_NOFOLLOW", "the lock path is checked with lstat()"),
    ]:
        [row] = [i for i, line in enumerate(lines) if line.strip().startswith(name + " ")]
        assert " NO " in lines[row]
        assert fallback in lines[row + 1]
        assert "instead:" in lines[row + 1]
    [flock] = [line for line in lines if line.strip().startswith("flock ")]
    assert " yes " in flock
    # The filesystem line degrades too: no type, but a mount point found by device.
    assert "filesystem  unknown (mounted at /" in out


@pytest.mark.fs
def test_doctor_json_has_the_platform(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _no_inotify(monkeypatch, tmp_path)
    argv = ["doctor", str(work), "--json", "--backend", "excl"]
    assert main([*argv, "--processes", "1", "--increments", "1"]) == 0
    platform = json.loads(capsys.readouterr().out)["platform"]
    assert platform["system"]
    rows = {row["name"]: row for row in platform["features"]}
    assert list(rows) == NAMES
    assert rows["inotify"]["available"] is False
    assert "bounded backoff" in rows["inotify"]["fallback"]
    assert rows["flock"] == {
        "name": "flock",
        "available": True,
        "detail": "fcntl.flock: OS locks for the filelock backend",
        "fallback": None,
    }


# -- end to end, in an interpreter without /proc, O_NOFOLLOW and inotify ------------------

SITECUSTOMIZE = '''
"""Hide /proc, O_NOFOLLOW and inotify from this interpreter (and its children)."""

import builtins
import ctypes
import os

_open, _os_open, _os_stat = builtins.open, os.open, os.stat


def _check(path):
    if not isinstance(path, int):
        text = os.fsdecode(os.fspath(path))
        if text == "/proc" or text.startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", text)


def open(file, *args, **kwargs):
    _check(file)
    return _open(file, *args, **kwargs)


def os_open(path, *args, **kwargs):
    _check(path)
    return _os_open(path, *args, **kwargs)


def os_stat(path, *args, **kwargs):
    _check(path)
    return _os_stat(path, *args, **kwargs)


class CDLL(ctypes.CDLL):
    """A C library without inotify, like macOS's."""

    def __getattr__(self, name):
        if name.startswith("inotify_"):
            raise AttributeError(name)
        return super().__getattr__(name)


builtins.open, os.open, os.stat, ctypes.CDLL = open, os_open, os_stat, CDLL
del os.O_NOFOLLOW
'''

SCRIPT = """
import json, os, subprocess, sys
import lockkit
from lockkit import _info, _notify
from lockkit.backends._file import encode_payload

directory = sys.argv[1]
report = {
    "nofollow": hasattr(os, "O_NOFOLLOW"),
    "inotify": _notify.available(),
    "start_time": _info.read_start_time(os.getpid()),
    "boot_id": _info.process_identity().boot_id,
    "held": {},
}
for backend in ("excl", "hardlink", "filelock"):
    path = os.path.join(directory, backend + ".lock")
    with lockkit.Lock(path, backend=backend, timeout=5) as lock:
        owner = lock.inspect().owner
        other = lockkit.Lock(path, backend=backend)
        try:
            other.acquire(timeout=0.2)
            excluded = False
        except lockkit.LockTimeout:
            excluded = True
    with other.acquire(timeout=0):
        pass
    report["held"][backend] = {"pid": owner.pid, "start_time": owner.start_time,
                               "excluded": excluded}

# A symlink planted at the lock path after the lock object was made is still refused.
target = os.path.join(directory, "target")
with open(target, "wb") as handle:
    handle.write(encode_payload(lockkit.Owner(pid=1), "excl", None))
planted = lockkit.Lock(os.path.join(directory, "planted.lock"), backend="excl")
os.symlink(target, planted.name)
try:
    planted.inspect()
    report["symlink"] = "followed"
except lockkit.InvalidLockName as exc:
    report["symlink"] = str(exc)

# A lock left by a dead process is broken by the pid rule, without /proc.
dead = subprocess.Popen([sys.executable, "-c", "pass"])
dead.wait()
stale = os.path.join(directory, "stale.lock")
with open(stale, "wb") as handle:
    owner = lockkit.Owner(pid=dead.pid, host=_info.process_identity().host, token="old")
    handle.write(encode_payload(owner, "excl", None))
with lockkit.Lock(stale, backend="excl", timeout=2) as lock:
    report["stale_taken_over"] = lock.inspect().owner.pid == os.getpid()
print(json.dumps(report))
"""


def _degraded_env(tmp_path: pathlib.Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.mark.fs
@pytest.mark.multiprocess
def test_locks_work_without_proc_nofollow_and_inotify(tmp_path: pathlib.Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _degraded_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The facilities really are gone in there.
    assert report["nofollow"] is False
    assert report["inotify"] is False
    assert report["start_time"] is None
    assert report["boot_id"] == ""
    for backend in ("excl", "hardlink", "filelock"):
        held = report["held"][backend]
        assert held["pid"] > 0
        assert held["start_time"] is None  # recorded as unknown, not guessed
        assert held["excluded"] is True
    assert "is a symbolic link" in report["symlink"]
    assert report["stale_taken_over"] is True


@pytest.mark.fs
@pytest.mark.multiprocess
def test_doctor_without_proc_nofollow_and_inotify(tmp_path: pathlib.Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    backends = ["--backend", "excl", "--backend", "hardlink", "--backend", "filelock"]
    result = subprocess.run(
        [
            *(sys.executable, "-m", "lockkit", "doctor", str(work), "--json", *backends),
            *("--processes", "3", "--increments", "20"),
        ],
        env=_degraded_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    for row in report["backends"]:
        assert row["works"] is True
        assert row["stress"]["count"] == 60
        assert row["stress"]["lost"] == 0
    missing = {row["name"] for row in report["platform"]["features"] if not row["available"]}
    assert missing == {
        "inotify",
        "process start times",
        "machine view",
        "filesystem types",
        "O_NOFOLLOW",
    }
    assert report["filesystem"]["type"] == "unknown"
    mount_point = report["filesystem"]["mount_point"]
    assert str(work).startswith(mount_point)
    assert os.stat(mount_point).st_dev == os.stat(work).st_dev


@pytest.mark.parametrize(
    "fstype", ["nfs4", "cifs", "lustre", "gpfs", "gfs2", "ocfs2", "afs", "beegfs", "fuse.sshfs"]
)
def test_network_and_cluster_filesystems_may_be_shared(fstype: str) -> None:
    # Auto-detection then chooses only backends that exclude other hosts, and never
    # caches the verdict.
    assert _fsinfo.may_be_shared(fstype)


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "tmpfs", "fuseblk", "overlay"])
def test_local_filesystems_are_not_counted_as_shared(fstype: str) -> None:
    assert not _fsinfo.may_be_shared(fstype)
