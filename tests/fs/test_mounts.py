"""The real-filesystem fixtures deliver what they promise.

exFAT refuses ``link()`` with EPERM, the FUSE passthrough with ENOTSUP; on both,
``O_CREAT|O_EXCL`` is atomic, ``flock`` excludes (between open file descriptions
and between processes), and data written reads back.  The passthrough also
passes inode numbers, metadata and ``renameat2()`` flags through faithfully.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from tests.mounts import REQUIRE_REAL_FS_ENV, _build_nolink_fs, mount_of, skip_or_fail

EXCL_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY

# Child: take the flock, say so, hold it until told to go (or until stdin closes).
HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""

# Child: try the flock without blocking; if busy, show that a blocking attempt
# is still waiting when a timer of argv[2] seconds interrupts it.
TRY_FLOCK = """
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy", flush=True)
else:
    print("acquired")
    sys.exit()
def give_up(signum, frame):
    raise TimeoutError
signal.signal(signal.SIGALRM, give_up)
try:
    signal.setitimer(signal.ITIMER_REAL, float(sys.argv[2]))
    fcntl.flock(fd, fcntl.LOCK_EX)
except TimeoutError:
    print("still waiting")
else:
    print("acquired")
"""

# Child: report ready, wait for the starting byte, then race for O_EXCL.
RACE_EXCL = """
import os, sys
print("ready", flush=True)
sys.stdin.read(1)
try:
    fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
except FileExistsError:
    print("lost")
else:
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    print("won")
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> list[str]:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out.splitlines()


# -- link() ----------------------------------------------------------------------


@pytest.mark.realfs
def test_link_fails_with_eperm_on_exfat(exfat_dir: pathlib.Path) -> None:
    source = exfat_dir / "link-source"
    source.write_bytes(b"x")
    try:
        with pytest.raises(PermissionError) as excinfo:
            os.link(source, exfat_dir / "link-target")
        assert excinfo.value.errno == errno.EPERM
        assert not (exfat_dir / "link-target").exists()
    finally:
        source.unlink()


@pytest.mark.realfs
def test_link_fails_with_enotsup_on_nolink(nolink_dir: pathlib.Path) -> None:
    source = nolink_dir / "link-source"
    source.write_bytes(b"x")
    try:
        with pytest.raises(OSError, match="not supported") as excinfo:
            os.link(source, nolink_dir / "link-target")
        assert excinfo.value.errno == errno.ENOTSUP == errno.EOPNOTSUPP
        assert not (nolink_dir / "link-target").exists()
    finally:
        source.unlink()


# -- the mounts themselves ---------------------------------------------------------


@pytest.mark.realfs
def test_exfat_is_a_fuseblk_mount_of_a_loop_device(exfat_dir: pathlib.Path) -> None:
    mount = mount_of(exfat_dir)
    assert mount.fstype == "fuseblk" or "exfat" in mount.fstype
    assert mount.source.startswith("/dev/loop")
    assert os.path.ismount(mount.mount_point)
    st = os.statvfs(exfat_dir)
    size = st.f_blocks * st.f_frsize
    # The 64 MiB image, minus exFAT's own tables.
    assert 48 * 2**20 < size <= 64 * 2**20
    assert 0 < st.f_bavail <= st.f_bfree <= st.f_blocks
    assert st.f_namemax == 255


@pytest.mark.realfs
def test_nolink_is_our_fuse_mount_passing_statfs_through(nolink_dir: pathlib.Path) -> None:
    mount = mount_of(nolink_dir)
    assert mount.fstype == "fuse.nolinkfs"
    assert mount.source == "nolinkfs"
    assert os.path.ismount(mount.mount_point)
    # The mirrored source directory lives in the temporary directory's
    # filesystem, whose figures the mount reports.
    ours, underlying = os.statvfs(nolink_dir), os.statvfs(tempfile.gettempdir())
    assert (ours.f_blocks, ours.f_frsize, ours.f_files) == (
        underlying.f_blocks,
        underlying.f_frsize,
        underlying.f_files,
    )


@pytest.mark.realfs
def test_realfs_dir_is_fresh_and_on_its_mount(
    realfs_dir: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    assert os.listdir(realfs_dir) == []
    session_dir = request.getfixturevalue(f"{request.node.callspec.id}_dir")
    assert realfs_dir.parent == session_dir
    assert mount_of(realfs_dir) == mount_of(session_dir)


# -- O_CREAT|O_EXCL ----------------------------------------------------------------


@pytest.mark.realfs
def test_excl_create_is_exclusive(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "excl.lock"
    fd = os.open(path, EXCL_FLAGS, 0o644)
    try:
        with pytest.raises(FileExistsError):
            os.open(path, EXCL_FLAGS, 0o644)
    finally:
        os.close(fd)
    # Once unlinked the name is free again at once (no stale cached entry).
    path.unlink()
    os.close(os.open(path, EXCL_FLAGS, 0o644))
    with pytest.raises(FileExistsError):
        os.open(path, EXCL_FLAGS, 0o644)


@pytest.mark.realfs
@pytest.mark.multiprocess
def test_excl_create_has_one_winner_among_racing_processes(realfs_dir: pathlib.Path) -> None:
    for round_ in range(5):
        path = realfs_dir / f"race-{round_}.lock"
        children = [_python(RACE_EXCL, str(path)) for _ in range(6)]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # the starting gun: one byte each, as fast as we can
            assert child.stdin is not None
            child.stdin.write("g")
            child.stdin.flush()
        outcomes = {child.pid: _finish(child) for child in children}
        winners = [pid for pid, said in outcomes.items() if said == ["won"]]
        assert len(winners) == 1, outcomes
        assert sorted(outcomes.values()) == [["lost"]] * 5 + [["won"]]
        assert path.read_text() == str(winners[0])


@pytest.mark.realfs
def test_unlinked_open_file_behaves_as_on_disk(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "doomed"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"still here")
        before = os.fstat(fd)
        path.unlink()
        assert not path.exists()
        assert "doomed" not in os.listdir(realfs_dir)
        after = os.fstat(fd)  # must not be ESTALE
        assert after.st_nlink == 0
        assert after.st_ino == before.st_ino
        os.ftruncate(fd, 5)
        assert os.pread(fd, 100, 0) == b"still"
        # A new file can take the name while the old one is open.
        os.close(os.open(path, EXCL_FLAGS, 0o644))
        assert os.stat(path).st_size == 0
    finally:
        os.close(fd)
    path.unlink()


# -- flock -------------------------------------------------------------------------


@pytest.mark.realfs
def test_flock_excludes_between_open_file_descriptions(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "flock.lock"
    path.touch()
    first = os.open(path, os.O_RDWR)
    second = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(second, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(first, fcntl.LOCK_UN)
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(first)
        os.close(second)


@pytest.mark.realfs
@pytest.mark.multiprocess
def test_flock_held_here_blocks_another_process(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "flock.lock"
    path.touch()
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert _finish(_python(TRY_FLOCK, str(path), "0.3")) == ["busy", "still waiting"]
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert _finish(_python(TRY_FLOCK, str(path), "0.3")) == ["acquired"]
    finally:
        os.close(fd)


@pytest.mark.realfs
@pytest.mark.multiprocess
def test_flock_held_by_another_process_blocks_until_it_exits(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "flock.lock"
    path.touch()
    holder = _python(HOLD_FLOCK, str(path))
    fd = os.open(path, os.O_RDWR)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        # Blocks until the holder's exit releases the lock.
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert holder.wait(timeout=60) == 0
    finally:
        os.close(fd)
        if holder.poll() is None:
            holder.kill()
        holder.communicate()


# -- data --------------------------------------------------------------------------


@pytest.mark.realfs
def test_writes_read_back(realfs_dir: pathlib.Path) -> None:
    path = realfs_dir / "data.bin"
    # Larger than FUSE's 128 KiB request size, not a multiple of any block size.
    payload = os.urandom(3 * 2**20 + 12345)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == payload
    assert path.stat().st_size == len(payload)

    # Overwrite in the middle, then cut short, through one descriptor.
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"PATCH", 1000)
        os.ftruncate(fd, 4096)
    finally:
        os.close(fd)
    expected = payload[:1000] + b"PATCH" + payload[1005:4096]
    assert path.read_bytes() == expected

    # Another process sees the same bytes.
    code = "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"
    digest = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert digest == hashlib.sha256(expected).hexdigest()


@pytest.mark.realfs
def test_append_rename_and_directories(realfs_dir: pathlib.Path) -> None:
    sub = realfs_dir / "sub"
    sub.mkdir()
    path = sub / "log"
    for line in (b"one\n", b"two\n"):
        with path.open("ab") as handle:
            handle.write(line)
    target = realfs_dir / "log.renamed"
    path.rename(target)
    assert target.read_bytes() == b"one\ntwo\n"
    assert os.listdir(sub) == []
    sub.rmdir()
    assert sorted(os.listdir(realfs_dir)) == ["log.renamed"]


# -- the nolink passthrough ---------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _renameat2(src: pathlib.Path, dst: pathlib.Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(src))


def _source_of(path: pathlib.Path, nolink_dir: pathlib.Path) -> pathlib.Path:
    """Where ``path`` (on the mount) lives in the mirrored source directory."""
    mountpoint = nolink_dir.parent
    return mountpoint.parent / "source" / path.relative_to(mountpoint)


@pytest.mark.realfs
def test_nolink_inode_numbers_are_the_sources(nolink_dir: pathlib.Path) -> None:
    path = nolink_dir / "ino"
    path.write_bytes(b"x")
    try:
        ino = path.stat().st_ino
        assert ino == _source_of(path, nolink_dir).stat().st_ino
        renamed = nolink_dir / "ino.renamed"
        path.rename(renamed)
        path = renamed
        assert path.stat().st_ino == ino
        assert {entry.name: entry.inode() for entry in os.scandir(nolink_dir)}["ino.renamed"] == ino
    finally:
        path.unlink()


@pytest.mark.realfs
def test_nolink_metadata_passes_through(nolink_dir: pathlib.Path) -> None:
    sub = nolink_dir / "meta"
    old_umask = os.umask(0o027)  # the caller's umask applies, once
    try:
        sub.mkdir(0o777)
        fd = os.open(sub / "file", EXCL_FLAGS, 0o666)
        os.close(fd)
    finally:
        os.umask(old_umask)
    path = sub / "file"
    assert sub.stat().st_mode & 0o777 == 0o750
    assert path.stat().st_mode & 0o777 == 0o640
    os.chmod(path, 0o604)
    os.utime(path, ns=(1_000_000_001, 2_000_000_003))
    os.symlink("file", sub / "link")
    source = _source_of(path, nolink_dir)
    st = source.stat()
    assert st.st_mode & 0o777 == 0o604
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_001, 2_000_000_003)
    assert path.stat().st_mtime_ns == 2_000_000_003
    assert os.readlink(sub / "link") == os.readlink(source.with_name("link")) == "file"
    for name in ("link", "file"):
        (sub / name).unlink()
    sub.rmdir()
    assert not source.parent.exists()


@pytest.mark.realfs
def test_nolink_renameat2_flags_pass_through(nolink_dir: pathlib.Path) -> None:
    first, second, third = (nolink_dir / name for name in ("first", "second", "third"))
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    try:
        with pytest.raises(FileExistsError):
            _renameat2(first, second, _RENAME_NOREPLACE)
        assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")
        _renameat2(first, second, _RENAME_EXCHANGE)
        assert (first.read_bytes(), second.read_bytes()) == (b"2", b"1")
        _renameat2(first, third, _RENAME_NOREPLACE)
        assert not first.exists()
        assert third.read_bytes() == b"2"
    finally:
        for path in (first, second, third):
            path.unlink(missing_ok=True)


@pytest.mark.realfs
def test_nolink_unlinked_open_file_leaves_no_trace(nolink_dir: pathlib.Path) -> None:
    # libfuse keeps such a file under a hidden name until its last close; the
    # filesystem keeps those names out of the directory, which can be removed.
    sub = nolink_dir / "doomed-dir"
    sub.mkdir()
    fd = os.open(sub / "doomed", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"data")
        os.unlink(sub / "doomed")
        assert os.listdir(sub) == []
        assert os.fstat(fd).st_nlink == 0
        sub.rmdir()
        # (fstat() would now fail with ESTALE: libfuse's path-based API
        # cannot name a file whose directory is gone.  I/O goes by handle.)
        assert os.pread(fd, 10, 0) == b"data"
    finally:
        os.close(fd)
    # The mount's root shows nothing but the fixture's directory.
    assert os.listdir(nolink_dir.parent) == [nolink_dir.name]


@pytest.mark.realfs
def test_nolink_binary_is_built_once(nolink_dir: pathlib.Path) -> None:
    binary = _build_nolink_fs()
    built = binary.stat().st_mtime_ns
    assert _build_nolink_fs() == binary
    assert binary.stat().st_mtime_ns == built
    assert os.access(binary, os.X_OK)


# -- skip_or_fail --------------------------------------------------------------------


def test_skip_or_fail_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_REAL_FS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        skip_or_fail("no widget")


def test_skip_or_fail_fails_when_real_filesystems_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_REAL_FS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no widget"):
        skip_or_fail("no widget")
