"""Hostile paths: what sits at, or on the way to, a lock path is someone else's.

Issue: hardening of the file backends, second round (findings 1, 4, 5, 7).

- A file at the lock path that is not a lock file (the content rule) is never broken as
  malformed, removed by ``lockkit break`` or overwritten by ``filelock``.
- A symlink on the way to the lock, owned by another user, is refused when the lock is
  named; a directory on the way swapped for one later is refused when a lock is broken.
- A lock name that is another lock's auxiliary name (``.break``, ``.turn``, a
  ``hardlink`` temp name) is refused.
- A TTL release that cannot take the breaker does not report a loss that did not happen.
- A directory that cannot be searched, or an unencodable name, is a `LockError`.

The tests that need another real user (``nobody`` via ``setpriv``, or a symlink owned by
it) need root; with ``LOCKKIT_REQUIRE_REAL_FS=1`` a skip is a failure.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

import lockkit
from lockkit import cli
from lockkit.backends import _file, _turn
from lockkit.errors import BackendUnavailable, InvalidLockName
from tests.mounts import skip_or_fail

pytestmark = [pytest.mark.fs, pytest.mark.timeout(60)]

NOBODY = 65534
PRECIOUS = b"root's precious data\n"
HOUR = 3600.0


def _old(path: pathlib.Path) -> None:
    """Make ``path`` an hour old: far past the write grace."""
    moment = time.time() - HOUR
    os.utime(path, (moment, moment))


def _precious(path: pathlib.Path, data: bytes = PRECIOUS) -> pathlib.Path:
    path.write_bytes(data)
    path.chmod(0o600)
    _old(path)
    return path


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root: the other user is a real one (nobody)")


# -- finding 1 (a): the content rule -------------------------------------------------


FOREIGN = {
    "text": PRECIOUS,
    "json-array": b'[{"pid": 1}]\n',
    "binary": bytes(range(1, 256)),
    "too-large": b"{" + b" " * _file.MAX_PAYLOAD + b"}",
}


@pytest.mark.parametrize("content", sorted(FOREIGN))
@pytest.mark.parametrize("backend", ["excl", "hardlink", "filelock"])
def test_a_file_that_is_not_a_lock_file_is_refused_never_removed_nor_written(
    tmp_path: pathlib.Path, backend: str, content: str
) -> None:
    """Before: excl/hardlink judged it malformed and deleted it; filelock overwrote it."""
    path = _precious(tmp_path / "state.lock", FOREIGN[content])
    lock = lockkit.Lock(path, backend=backend)
    with pytest.raises(InvalidLockName, match=r"is not a lock file.*remove it or choose another"):
        lock.acquire(timeout=0.5)
    assert path.read_bytes() == FOREIGN[content]
    if backend != "filelock":
        with pytest.raises(InvalidLockName, match="is not a lock file"):
            lock.inspect()
        # Neither `lockkit break` nor `--force` removes it.
        for force in ([], ["--force"]):
            assert cli.main(["break", str(path), "--backend", backend, *force]) != 0
    assert path.read_bytes() == FOREIGN[content]
    assert sorted(os.listdir(tmp_path)) == ["state.lock"]


@pytest.mark.parametrize("content", [b"", b"\0" * 300, b"\n", b'{"pid": 2'])
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_an_empty_or_truncated_lock_file_is_still_broken_after_the_grace(
    tmp_path: pathlib.Path, backend: str, content: bytes
) -> None:
    """The content rule keeps what a crashed writer leaves (NULs: a power cut) breakable."""
    path = _precious(tmp_path / "state.lock", content)
    with lockkit.Lock(path, backend=backend, timeout=0):
        assert json.loads(path.read_bytes())["pid"] == os.getpid()


def test_a_breaker_that_is_not_a_lock_file_is_refused_not_cleared(
    tmp_path: pathlib.Path,
) -> None:
    lock = tmp_path / "a.lock"
    lock.write_text(
        json.dumps({"pid": 2**22 + 1, "host": "gone", "expires": "2000-01-01T00:00:00Z"})
    )
    breaker = _precious(pathlib.Path(_file.breaker_path(str(lock))))
    with pytest.raises(InvalidLockName, match=r"a\.lock\.break' is not a lock file"):
        lockkit.Lock(lock, backend="excl").acquire(timeout=0.5)
    assert breaker.read_bytes() == PRECIOUS


# -- finding 1 (b), (c): symlinks on the way ------------------------------------------


@pytest.fixture
def public(as_root: None) -> Iterator[pathlib.Path]:
    """A directory of root's that nobody can reach (pytest's tmp_path is 0700)."""
    del as_root
    if shutil.which("setpriv") is None:
        skip_or_fail("needs setpriv (util-linux) to become nobody")
    base = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-paths-", dir="/tmp"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sticky(public: pathlib.Path) -> pathlib.Path:
    """A sticky world-writable directory (like /tmp), and root's victim directory."""
    shared = public / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (public / "victim").mkdir()
    return shared


# nobody cannot run this venv's interpreter (it lives under /root): the system's, with
# this checkout and the venv's packages on its path.
NOBODY_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def _nobody(code: str) -> subprocess.CompletedProcess[str]:
    paths = [str(pathlib.Path(lockkit.__file__).parent.parent), *sys.path]
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         NOBODY_PYTHON, "-c", code],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(paths), "HOME": "/"},
    )  # fmt: skip


def _as_nobody(code: str) -> None:
    done = _nobody(code)
    assert done.returncode == 0, done.stderr


@pytest.mark.realfs
@pytest.mark.parametrize("variant", ["symlink-in-sticky-dir", "symlink-in-squatted-dir"])
@pytest.mark.parametrize("backend", ["excl", "hardlink", "filelock"])
def test_a_symlink_of_another_user_on_the_way_is_refused(
    sticky: pathlib.Path, backend: str, variant: str
) -> None:
    """Before: root's acquire and `lockkit break` deleted victim/x.lock; filelock wrote it."""
    victim = sticky.parent / "victim"
    target = _precious(victim / "x.lock")
    if variant == "symlink-in-sticky-dir":
        _as_nobody(f"import os; os.symlink({str(victim)!r}, {str(sticky / 'app')!r})")
        directory = sticky / "app"
    else:
        squat = sticky / "squat"
        _as_nobody(
            f"import os; os.mkdir({str(squat)!r}); "
            f"os.symlink({str(victim)!r}, {str(squat / 'locks')!r})"
        )
        directory = squat / "locks"
    assert os.lstat(directory).st_uid == NOBODY
    with pytest.raises(InvalidLockName, match=r"symbolic link owned by uid 65534"):
        lockkit.Lock(directory / "x.lock", backend=backend)
    with pytest.raises(InvalidLockName, match=r"symbolic link owned by uid 65534"):
        lockkit.Lock(directory / "x.lock")  # auto-detection walks the path too
    assert cli.main(["break", str(directory / "x.lock"), "--backend", backend]) != 0
    assert target.read_bytes() == PRECIOUS


@pytest.mark.realfs
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_symlink_of_root_or_of_this_user_on_the_way_is_followed(
    sticky: pathlib.Path, backend: str
) -> None:
    victim = sticky.parent / "victim"
    (sticky.parent / "mine").symlink_to(victim)
    with lockkit.Lock(sticky.parent / "mine" / "x.lock", backend=backend, timeout=0):
        assert (victim / "x.lock").exists()
    assert not (victim / "x.lock").exists()


@pytest.mark.realfs
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_directory_swapped_for_a_symlink_after_the_lock_was_named_is_not_broken_into(
    sticky: pathlib.Path, backend: str
) -> None:
    """(c): a break walks the path again and removes only in the directory it proved.

    The victim's file looks like a stale lock (a dead pid), so only the directory
    re-check stands between it and its removal.
    """
    victim = sticky.parent / "victim"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = json.dumps({"pid": dead.pid, "token": "victim's"}).encode()
    target = _precious(victim / "x.lock", stale)
    squat = sticky / "squat"
    locks = str(squat / "locks")
    _as_nobody(f"import os; os.makedirs({locks!r}); os.chmod({locks!r}, 0o777)")
    lock = lockkit.Lock(squat / "locks" / "x.lock", backend=backend)  # a real directory now
    _as_nobody(
        f"import os; os.rename({str(squat / 'locks')!r}, {str(squat / 'old')!r}); "
        f"os.symlink({str(victim)!r}, {str(squat / 'locks')!r})"
    )
    with pytest.raises(InvalidLockName, match=r"symbolic link owned by uid 65534"):
        lock.acquire(timeout=0.5)
    assert target.read_bytes() == stale
    info = lockkit.LockInfo(
        name=str(squat / "locks" / "x.lock"), backend=backend, owner=None,
        identity=_file.file_identity(target.stat()),
    )  # fmt: skip
    with pytest.raises(InvalidLockName, match=r"symbolic link owned by uid 65534"):
        lock.backend.break_lock(lock.name, info)
    assert target.read_bytes() == stale


# -- finding 4: names reserved for auxiliary files --------------------------------------


RESERVED = {
    "job.lock.break": ".break",
    "job.lock.turn": ".turn",
    "JOB.LOCK.BREAK": ".break",
    "short~0123456789abcdef01234567.break": ".break",
    ".job.lock.0123456789abcdef0123456789abcdef.tmp": ".<token>.tmp",
}


@pytest.mark.parametrize("name", sorted(RESERVED))
@pytest.mark.parametrize("backend", ["excl", "hardlink", "filelock", None])
def test_a_lock_named_like_an_auxiliary_file_is_refused(
    tmp_path: pathlib.Path, backend: str | None, name: str
) -> None:
    """Before: a lock `job.lock.break` was deleted as `job.lock`'s abandoned breaker."""
    with pytest.raises(
        InvalidLockName, match=f"ends with '{RESERVED[name]}', which lockkit reserves"
    ):
        lockkit.Lock(tmp_path / name, backend=backend)


@pytest.mark.parametrize("name", ["job.lock", "job.break.lock", "a.tmp", "break", ".turnip"])
def test_names_near_the_reserved_ones_are_fine(tmp_path: pathlib.Path, name: str) -> None:
    with lockkit.Lock(tmp_path / name, backend="excl", timeout=0):
        pass


def test_the_reserved_names_are_the_ones_lockkit_makes(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / ("x" * 250))
    for aux in (_file.breaker_path(lock), _turn.turn_path(lock)):
        assert _file.reserved_suffix(os.path.basename(aux)) is not None
    token = lockkit.Owner.current().token
    temp = _file.aux_path(lock, f".{token}.tmp", prefix=".")
    assert _file.reserved_suffix(os.path.basename(temp)) == ".<token>.tmp"
    # ReadWriteLock's gate is a lock of its own, not an auxiliary file.
    rw = lockkit.ReadWriteLock(tmp_path / "data.lock", backend="filelock")
    with rw.write(timeout=0):
        pass


# -- finding 5: a TTL release behind a busy breaker ------------------------------------


def _plant_breaker(lock: lockkit.Lock) -> pathlib.Path:
    """A breaker nobody provably holds, fresh (it is cleared only after 30 s)."""
    breaker = pathlib.Path(_file.breaker_path(lock.name))
    breaker.write_text(json.dumps({"pid": 1, "createdAt": "2999-01-01T00:00:00Z"}))
    return breaker


@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_ttl_release_behind_a_busy_breaker_keeps_the_lock_and_reports_no_loss(
    tmp_path: pathlib.Path, backend: str
) -> None:
    """Before: release() waited 5 s, fired on_lost and logged a loss that never happened."""
    lost = threading.Event()
    lock = lockkit.Lock(tmp_path / "a.lock", backend=backend, ttl=30, on_lost=lambda _: lost.set())
    lock.acquire()
    breaker = _plant_breaker(lock)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"breaker lock .* stays busy") as caught:
        lock.release()
    assert time.monotonic() - start < _file.LOCAL_BREAKER_WAIT + 1.0
    assert caught.value.errno == errno.EBUSY
    assert not lost.is_set()
    assert lock.locked
    assert lock.is_held()
    breaker.unlink()
    lock.release()  # the retry releases it
    assert not lock.locked
    assert not lost.is_set()
    assert os.listdir(tmp_path) == []


def test_a_ttl_release_behind_a_busy_breaker_of_a_lock_really_lost_reports_it(
    tmp_path: pathlib.Path,
) -> None:
    lost = threading.Event()
    lock = lockkit.Lock(tmp_path / "a.lock", backend="excl", ttl=30, on_lost=lambda _: lost.set())
    lock.acquire()
    breaker = _plant_breaker(lock)
    os.unlink(lock.name)  # broken by an operator: the token is gone
    lock.release()
    assert lost.is_set()
    assert not lock.locked
    assert breaker.exists()  # someone else's: left alone


# -- finding 7: unsearchable directories, unencodable names ----------------------------


@pytest.mark.realfs
def test_an_unsearchable_directory_is_a_lock_error(public: pathlib.Path) -> None:
    """Before: the constructor raised a bare PermissionError."""
    private = public / "private"
    private.mkdir(mode=0o700)
    code = f"""
import errno, lockkit
for backend in ("excl", "hardlink", "filelock", None):
    try:
        lockkit.Lock({str(private / "x.lock")!r}, backend=backend)
    except lockkit.BackendUnavailable as exc:
        # Auto-detection finds no backend that can work there: no errno of its own.
        assert backend is None or exc.errno == errno.EACCES, exc
        assert "private" in str(exc), exc
    else:
        raise AssertionError("no error")
print("ok")
"""
    out = _nobody(code)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("backend", ["excl", "hardlink", "filelock", None])
@pytest.mark.parametrize("where", ["name", "directory"])
def test_an_unencodable_lock_name_is_invalid(
    tmp_path: pathlib.Path, backend: str | None, where: str
) -> None:
    """Before: UnicodeEncodeError from os.lstat."""
    path = tmp_path / "a\ud800.lock" if where == "name" else tmp_path / "d\udfff" / "a.lock"
    with pytest.raises(InvalidLockName, match="cannot be encoded"):
        lockkit.Lock(path, backend=backend)
