"""A hostile local user: nobody plants things where root's locks live.

A real unprivileged user (``nobody``, through ``setpriv``) plants, in a sticky
world-writable directory, at every name lockkit uses (the lock, its breaker, its turn):
a FIFO, a socket, a directory, a symlink and a hard link (both to a root-owned 0600
file), a live-looking fake lock and a breaker from the year 2999. Root then acquires
(with and without a TTL, the name checked before and after the plant), releases,
inspects, and runs ``lockkit status`` and ``lockkit break``. Every one of them must
return or raise a `LockError` within its timeout plus a small bound, never hang, and
never write, truncate, chmod or delete what nobody planted or what it points to.

These tests need root (to become nobody); with ``LOCKKIT_REQUIRE_REAL_FS=1`` a skip is a
failure.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

import lockkit
from lockkit import cli
from lockkit._info import LockInfo
from lockkit.backends import _file, _turn
from lockkit.errors import LockError
from tests.mounts import skip_or_fail

pytestmark = [pytest.mark.fs, pytest.mark.realfs, pytest.mark.timeout(120)]

NOBODY = 65534
TIMEOUT = 0.5
SLACK = 1.5  # seconds an operation may take past its own timeout (interpreter, fs)
BACKENDS = ["excl", "hardlink", "filelock"]
KINDS = ["fifo", "socket", "directory", "symlink", "hardlink", "live-lock", "future-breaker"]
PROTECTED_HARDLINKS = "/proc/sys/fs/protected_hardlinks"

PLANT = r"""
import json, os, socket, sys
kind, path, target = sys.argv[1:4]
if kind == "fifo":
    os.mkfifo(path)
elif kind == "socket":
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.close()
elif kind == "directory":
    os.mkdir(path)
elif kind == "symlink":
    os.symlink(target, path)
elif kind == "hardlink":
    os.link(target, path)
elif kind == "live-lock":
    with open("/proc/1/stat") as handle:
        start = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open(path, "w") as handle:
        json.dump({"pid": 1, "startTime": start, "createdAt": "2999-01-01T00:00:00Z"}, handle)
elif kind == "future-breaker":
    with open(path, "w") as handle:
        json.dump({"pid": 1, "createdAt": "2999-01-01T00:00:00Z"}, handle)
"""


def _as_nobody(*argv: str) -> None:
    subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        check=True,
        timeout=30,
    )


@pytest.fixture
def sticky(request: pytest.FixtureRequest) -> Iterator[pathlib.Path]:
    """A sticky world-writable directory (like /tmp) whose parents nobody can traverse."""
    del request
    if os.geteuid() != 0:
        skip_or_fail("needs root: the hostile user is a real one (nobody, via setpriv)")
    if shutil.which("setpriv") is None:
        skip_or_fail("needs setpriv (util-linux) to become nobody")
    base = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-hostile-", dir="/tmp"))
    try:
        base.chmod(0o755)
        shared = base / "shared"
        shared.mkdir()
        shared.chmod(0o1777)
        yield shared
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def secret(sticky: pathlib.Path) -> pathlib.Path:
    """A root-owned 0600 file next to the shared directory: what an attacker aims at."""
    path = sticky.parent / "secret"
    path.write_text("root's secret, not a lock\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def _hardlinks_unprotected() -> Iterator[None]:
    """``fs.protected_hardlinks=0`` (the kernel default) while nobody plants a link."""
    try:
        with open(PROTECTED_HARDLINKS) as handle:
            before = handle.read().strip()
        with open(PROTECTED_HARDLINKS, "w") as handle:
            handle.write("0")
    except OSError as exc:
        skip_or_fail(f"cannot set {PROTECTED_HARDLINKS}: {exc}")
    try:
        yield
    finally:
        with open(PROTECTED_HARDLINKS, "w") as handle:
            handle.write(before)


def plant(kind: str, path: str, target: pathlib.Path) -> None:
    """Have nobody create ``kind`` at ``path``."""
    argv = [sys.executable, "-I", "-c", PLANT, kind, path, str(target)]
    if kind == "hardlink":
        with _hardlinks_unprotected():
            _as_nobody(*argv)
    else:
        _as_nobody(*argv)
    assert os.lstat(path).st_uid == NOBODY or kind == "hardlink"


def snapshot(path: str | pathlib.Path) -> tuple[object, ...] | None:
    """What must not change: type, owner, mode, inode, size, mtime, content's hash."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    digest = ""
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    return (
        stat.S_IFMT(st.st_mode),
        st.st_uid,
        stat.S_IMODE(st.st_mode),
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        digest,
    )


def names(lock: str) -> dict[str, str]:
    return {
        "lock": lock,
        "breaker": _file.breaker_path(lock),
        "turn": _turn.turn_path(lock),
    }


def timed(call: Callable[[], object], bound: float) -> object:
    """``call()``'s result or the `LockError` it raised; fails past ``bound`` seconds."""
    start = time.monotonic()
    try:
        result: object = call()
    except LockError as exc:
        result = exc
    elapsed = time.monotonic() - start
    assert elapsed <= bound, f"took {elapsed:.2f} s, bound {bound:.2f} s"
    return result


def root_operations(path: str, backend: str) -> list[tuple[str, object]]:
    """Everything root does with lock ``path``; each outcome, each within its bound."""
    outcomes: list[tuple[str, object]] = []

    def acquire(ttl: float | None) -> object:
        lock = lockkit.Lock(path, backend=backend, ttl=ttl)
        lock.acquire(timeout=TIMEOUT)
        # A release through a breaker nobody holds waits for it, up to BREAKER_WAIT.
        timed(lock.release, _file.BREAKER_WAIT + SLACK)
        return "acquired"

    def early() -> object:
        # The name is checked before the plant; the plant is found at the attempt.
        return lockkit.Lock(path, backend=backend).inspect()

    for name, call, bound in (
        ("acquire", lambda: acquire(None), TIMEOUT + SLACK),
        ("acquire-ttl", lambda: acquire(5.0), TIMEOUT + _file.BREAKER_WAIT + 2 * SLACK),
        ("inspect", early, SLACK),
        ("status", lambda: cli.main(["status", path, "--backend", backend]), SLACK),
        ("break", lambda: cli.main(["break", path, "--backend", backend]), SLACK),
    ):
        outcomes.append((name, timed(call, bound)))
    return outcomes


@pytest.mark.parametrize("where", ["lock", "breaker", "turn"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_root_never_hangs_nor_touches_what_nobody_planted(  # noqa: PLR0917 - fixtures
    sticky: pathlib.Path,
    secret: pathlib.Path,
    backend: str,
    kind: str,
    where: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = str(sticky / "state.json.lock")
    early = lockkit.Lock(lock, backend=backend)  # named before anything is planted
    planted = names(lock)[where]
    plant(kind, planted, secret)
    before = {"planted": snapshot(planted), "secret": snapshot(secret)}

    outcomes = root_operations(lock, backend)
    start = time.monotonic()
    try:
        early.acquire(timeout=TIMEOUT)
    except LockError as exc:
        outcomes.append(("acquire-named-early", exc))
    else:
        early.release()
        outcomes.append(("acquire-named-early", "acquired"))
    assert time.monotonic() - start <= TIMEOUT + SLACK
    capsys.readouterr()

    after = {"planted": snapshot(planted), "secret": snapshot(secret)}
    # The secret is never written, truncated or chmodded, whatever pointed at it.
    assert (
        after["secret"] == before["secret"]
        or (
            kind == "hardlink"  # link count and change time only; content, mode, owner kept
            and after["secret"] is not None
            and before["secret"] is not None
            and after["secret"][:3] == before["secret"][:3]
            and after["secret"][-1] == before["secret"][-1]
        )
    )
    # What nobody planted is left as it was: only root's own files come and go.
    assert after["planted"] == before["planted"], outcomes
    for name, outcome in outcomes:
        assert outcome in {"acquired", None} or isinstance(outcome, LockError | LockInfo | int), (
            name,
            outcome,
        )
    # Root left nothing of its own behind but a lock file it could not release.
    leftovers = set(os.listdir(sticky)) - {os.path.basename(planted)}
    assert leftovers <= {"state.json.lock"}, leftovers


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "symlink"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_special_files_at_the_lock_path_are_refused_by_name(
    sticky: pathlib.Path, secret: pathlib.Path, backend: str, kind: str
) -> None:
    lock = str(sticky / "a.lock")
    named = lockkit.Lock(lock, backend=backend)
    plant(kind, lock, secret)
    calls: list[Callable[[], object]] = [
        lambda: named.acquire(timeout=TIMEOUT),
        named.inspect,
        lambda: lockkit.Lock(lock, backend=backend),
    ]
    for call in calls:
        error = timed(functools.partial(_raises, call), SLACK + TIMEOUT)
        assert isinstance(error, lockkit.InvalidLockName), error
        assert (
            "not a lock file" in str(error)
            or "symbolic link" in str(error)
            or ("directory" in str(error))
        )


def _raises(call: Callable[[], object]) -> object:
    try:
        call()
    except LockError as exc:
        return exc
    return None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_planted_hard_link_is_never_written_through(
    sticky: pathlib.Path, secret: pathlib.Path, backend: str
) -> None:
    """Issue 15 item 3: with protected_hardlinks=0, filelock overwrote the target."""
    lock = str(sticky / "a.lock")
    plant("hardlink", lock, secret)
    content = secret.read_bytes()
    outcome = timed(
        lambda: _raises(lambda: lockkit.Lock(lock, backend=backend).acquire(timeout=TIMEOUT)),
        TIMEOUT + SLACK,
    )
    assert secret.read_bytes() == content
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert isinstance(outcome, lockkit.InvalidLockName)
    if backend == "filelock":
        assert "2 hard links" in str(outcome)
    else:
        assert "is not a lock file" in str(outcome)  # the secret's content is not a lock's


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["excl", "hardlink"])
def test_a_breaker_planted_from_the_future_delays_recovery_by_a_bounded_time(
    sticky: pathlib.Path, secret: pathlib.Path, backend: str
) -> None:
    """Issue 15 item 7: recovery waited forever behind nobody's breaker from 2999."""
    lock = str(sticky / "a.lock")
    dead = subprocess.Popen(["true"])
    dead.wait()
    pathlib.Path(lock).write_text(json.dumps({"pid": dead.pid, "token": "dead"}))
    plant("future-breaker", _file.breaker_path(lock), secret)
    start = time.monotonic()
    taken = lockkit.Lock(lock, backend=backend)
    taken.acquire(timeout=_file.BREAKER_MAX_AGE + 10)
    elapsed = time.monotonic() - start
    taken.release()
    assert elapsed <= _file.BREAKER_MAX_AGE + SLACK
    assert os.listdir(sticky) == []
