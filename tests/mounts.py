"""Real filesystems on which ``link()`` fails, mounted for the test session.

A pytest plugin (``pytest_plugins = ["tests.mounts"]``) with these fixtures:

``exfat_dir``
    A directory on a 64 MiB exFAT image attached to a loop device and mounted
    with ``mount.exfat-fuse``.  ``link()`` fails there with ``EPERM``.
``nolink_dir``
    A directory on the passthrough FUSE filesystem in ``tests/nolink_fs.c``
    (C, libfuse3), whose ``link()`` fails with ``ENOTSUP``.  It is compiled
    once per version of its source and cached in the temporary directory.
``realfs_dir``
    Parametrised over both (ids ``exfat`` and ``nolink``): a fresh, empty
    directory on each, for one test.

Both mounts need root, ``/dev/fuse`` and some system tools (for ``nolink_dir``
also ``cc``, ``pkg-config`` and the libfuse3 headers).  Where those are
missing the tests are skipped -- unless ``LOCKKIT_REQUIRE_REAL_FS=1`` is set
(CI sets it), which turns the skip into a failure so that a misconfigured
runner cannot pass by skipping the tests that matter.  ``skip_or_fail``
implements that for any fixture needing an external resource.

Tests using these fixtures get the ``realfs`` marker automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, NoReturn

import pytest

__all__ = [
    "REQUIRE_REAL_FS_ENV",
    "MountEntry",
    "MountTeardownWarning",
    "exfat_dir",
    "mount_at",
    "mount_of",
    "nolink_dir",
    "real_fs_required",
    "realfs_dir",
    "skip_or_fail",
]

REQUIRE_REAL_FS_ENV = "LOCKKIT_REQUIRE_REAL_FS"

NOLINK_FS_SOURCE = Path(__file__).with_name("nolink_fs.c")
EXFAT_IMAGE_SIZE = 64 * 1024 * 1024

# Where root's tools live when PATH lacks the sbin directories (sudo, CI).
_SBIN_PATH = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))
_MOUNT_TIMEOUT = 15.0  # s: for a mount to appear
_EXIT_TIMEOUT = 10.0  # s: for the FUSE process to exit once unmounted or signalled
_COMMAND_TIMEOUT = 60.0  # s: for mkfs, losetup, mount, umount
_UNMOUNT_ATTEMPTS = 5  # busy unmounts are retried, 50 ms to 400 ms apart
_REALFS_FIXTURES = frozenset({"exfat_dir", "nolink_dir", "realfs_dir"})
_UNMOUNT_NOISE = re.compile(r"(: not mounted|failed to unmount .*: Invalid argument)$")


class MountTeardownWarning(pytest.PytestWarning):
    """A mount could not be taken down cleanly (usually: a test left a file open)."""


# -- skipping ------------------------------------------------------------------


def real_fs_required() -> bool:
    """Whether ``LOCKKIT_REQUIRE_REAL_FS`` asks for failures instead of skips."""
    return os.environ.get(REQUIRE_REAL_FS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it if real filesystems are required.

    With ``LOCKKIT_REQUIRE_REAL_FS=1`` a missing prerequisite is an error of
    the test environment, and must not pass as a skip.
    """
    if real_fs_required():
        pytest.fail(f"{reason} ({REQUIRE_REAL_FS_ENV}=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _require_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root: mounting filesystems and attaching loop devices")


def _require_fuse_device() -> None:
    if not os.path.exists("/dev/fuse"):
        skip_or_fail("/dev/fuse is missing: no FUSE support here")


def _require_tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=_SBIN_PATH)
    if found is None:
        skip_or_fail(f"{name} not found (install {package})")
    return found


def _fuse3_build_command() -> list[str]:
    """The compiler command for ``nolink_fs.c``, less its ``-o OUTPUT``.

    Skips (or fails) where a C compiler, pkg-config or the libfuse3 headers
    are missing.
    """
    cc = _require_tool("cc", "gcc")
    pkg_config = _require_tool("pkg-config", "pkg-config")
    if _run([pkg_config, "--exists", "fuse3"]).returncode != 0:
        skip_or_fail("pkg-config knows no fuse3 (install libfuse3-dev)")
    flags = _setup_step([pkg_config, "--cflags", "--libs", "fuse3"])
    return [cc, "-O2", "-Wall", str(NOLINK_FS_SOURCE), *shlex.split(flags)]


# -- the mount table -----------------------------------------------------------


class MountEntry(NamedTuple):
    """One line of ``/proc/self/mountinfo``."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _mount_table() -> list[MountEntry]:
    entries = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(fields) >= 5 and len(extra) >= 2:
                entries.append(MountEntry(_unescape(fields[4]), extra[0], _unescape(extra[1])))
    return entries


def mount_at(path: str | os.PathLike[str]) -> MountEntry | None:
    """The filesystem mounted exactly at ``path`` (the top one if stacked), if any.

    Reads the mount table instead of calling ``os.path.ismount``, which has to
    stat the path and so cannot see a FUSE mount whose process has died.
    """
    target = os.path.abspath(path)
    found = None
    for entry in _mount_table():
        if entry.mount_point == target:
            found = entry  # later lines are mounted on top of earlier ones
    return found


def mount_of(path: str | os.PathLike[str]) -> MountEntry:
    """The filesystem holding ``path``: the mount with the longest matching mount point."""
    target = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in _mount_table():
        prefix = entry.mount_point.rstrip("/") + "/"
        inside = target == entry.mount_point or target.startswith(prefix)
        if inside and (best is None or len(entry.mount_point) >= len(best.mount_point)):
            best = entry
    if best is None:
        raise LookupError(f"no mount holds {target}")
    return best


def _wait_for_mount(
    path: Path, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Wait until something is mounted at ``path``; False on timeout or if ``process`` exits.

    No sleeping: /proc/self/mountinfo polls readable-with-POLLPRI whenever the
    mount table changes, and a pidfd polls readable when its process exits.
    """
    deadline = time.monotonic() + timeout
    poller = select.poll()
    pidfd = -1
    with open("/proc/self/mountinfo", "rb") as table:
        # Opening records the table's state; poll() reports later changes.
        poller.register(table, select.POLLPRI | select.POLLERR)
        if process is not None:
            with contextlib.suppress(OSError):  # pidfd_open needs Linux 5.3
                pidfd = os.pidfd_open(process.pid)
                poller.register(pidfd, select.POLLIN)
        try:
            while True:
                if mount_at(path) is not None:
                    return True
                if process is not None and process.poll() is not None:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if process is not None and pidfd < 0:
                    remaining = min(remaining, 0.1)  # no pidfd: notice the exit by polling
                poller.poll(remaining * 1000)
        finally:
            if pidfd >= 0:
                os.close(pidfd)


# -- running commands ----------------------------------------------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        # A hung umount (FUSE process stuck) must not hang the session's teardown.
        return subprocess.CompletedProcess(argv, -1, "", f"timed out after {exc.timeout:g} s")


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stderr or result.stdout).strip()
    return f"`{' '.join(result.args)}` exited with {result.returncode}: {output}"


def _setup_step(argv: list[str]) -> str:
    """Run one step of building a mount; skip (or fail) the tests if it fails.

    Such a failure means this machine cannot provide the filesystem (no loop
    devices in a container, FUSE not permitted...), not a bug in lockkit.
    """
    result = _run(argv)
    if result.returncode != 0:
        skip_or_fail(_describe(result))
    return result.stdout.strip()


def _unmount(argv: list[str]) -> str | None:
    """Run an unmount command, retrying a few times while the mount is busy.

    Busy is often momentary -- a process of the test exiting, a FUSE release
    still in flight -- and nothing announces when it stops being busy, so
    this is a short bounded retry.  Returns None on success, else the error.
    """
    delay = 0.05
    error = ""
    for attempt in range(_UNMOUNT_ATTEMPTS):
        result = _run(argv)
        if result.returncode == 0:
            return None
        error = _describe(result)
        if "busy" not in error.lower() or attempt == _UNMOUNT_ATTEMPTS - 1:
            break
        time.sleep(delay)
        delay *= 2
    return error


def _report(problems: list[str]) -> None:
    # Called last in a teardown: with filterwarnings=error the warning raises,
    # and the cleanup before it must have happened by then.  Not called when
    # setup failed: it would replace the skip (or failure) with this error.
    if problems:
        warnings.warn(MountTeardownWarning("; ".join(problems)), stacklevel=2)


def _remove_tree(base: Path, mountpoint: Path, problems: list[str]) -> None:
    # Never delete through a mount that is still there.
    if mount_at(mountpoint) is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        problems.append(f"left {base} in place: {mountpoint} is still mounted")


# -- exFAT ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def exfat_dir() -> Iterator[Path]:
    """A writable directory on a real exFAT filesystem (``link()`` fails with EPERM).

    A sparse 64 MiB image is formatted with ``mkfs.exfat``, attached to a loop
    device (``mount.exfat-fuse`` wants a block device) and mounted with
    ``mount.exfat-fuse``, so the mount type is ``fuseblk``.  Teardown
    unmounts (which frees the loop device) and deletes the image.
    """
    _require_root()
    _require_fuse_device()
    mkfs = _require_tool("mkfs.exfat", "exfatprogs")
    mount_exfat = _require_tool("mount.exfat-fuse", "exfat-fuse")
    losetup = _require_tool("losetup", "util-linux")
    umount = _require_tool("umount", "util-linux")

    # Not tmp_path_factory: pytest deletes old base temp directories itself,
    # and must never recurse into a mount that a crashed session left behind.
    base = Path(tempfile.mkdtemp(prefix="lockkit-exfat-"))
    image = base / "exfat.img"
    mountpoint = base / "mnt"
    mountpoint.mkdir()
    loop_device: str | None = None
    problems: list[str] = []
    yielded = False
    try:
        with image.open("wb") as handle:
            handle.truncate(EXFAT_IMAGE_SIZE)  # sparse: costs no disk until written
        _setup_step([mkfs, str(image)])
        loop_device = _setup_step([losetup, "--find", "--show", str(image)])
        # mount.exfat-fuse daemonises once the mount exists; wait anyway, in
        # case a version returns earlier.
        _setup_step([mount_exfat, loop_device, str(mountpoint)])
        if not _wait_for_mount(mountpoint, _MOUNT_TIMEOUT):
            skip_or_fail(f"mount.exfat-fuse succeeded but nothing is mounted at {mountpoint}")
        # Detach now: the daemon holds the device open, so the kernel only
        # marks it "autoclear" and frees it at the daemon's last close --
        # however the mount ends, even if this session is killed.
        _setup_step([losetup, "--detach", loop_device])
        loop_device = None
        work = mountpoint / "work"
        work.mkdir()
        yielded = True
        yield work
    finally:
        if mount_at(mountpoint) is not None:
            # fuseblk: umount waits until the daemon has flushed and closed
            # the device, so the loop device is gone afterwards.
            error = _unmount([umount, str(mountpoint)])
            if error is not None:
                problems.append(f"{error}; unmounting lazily (is a file still open?)")
                _run([umount, "--lazy", str(mountpoint)])
        if loop_device is not None:  # setup failed before the early detach
            result = _run([losetup, "--detach", loop_device])
            if result.returncode != 0:
                problems.append(_describe(result))
        _remove_tree(base, mountpoint, problems)
        if yielded:  # after a failed setup, the skip/fail reason says it all
            _report(problems)


# -- FUSE without link() -------------------------------------------------------


def _log_tail(log_path: Path, limit: int = 4000) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    # Unmounting something already unmounted (by us, or lazily) is not news:
    # the auto_unmount watchdog says "not mounted", libfuse "Invalid argument".
    lines = [line for line in text.splitlines() if not _UNMOUNT_NOISE.search(line)]
    return "\n".join(lines).strip()[-limit:]


def _stop_nolink(
    process: subprocess.Popen[bytes],
    mountpoint: Path,
    fusermount: str,
    log_path: Path,
    problems: list[str],
) -> None:
    lazy = False
    if mount_at(mountpoint) is not None:
        error = _unmount([fusermount, "-u", str(mountpoint)])
        if error is not None:
            # Something still uses the mount.  Detach it from the tree; the
            # FUSE process would keep serving the open files until they are
            # closed, so it is stopped below instead of waited for.
            problems.append(f"{error}; unmounted lazily (is a file still open?)")
            _run([fusermount, "-u", "-z", str(mountpoint)])
            lazy = True
    if not lazy:
        # Unmounting ends the FUSE loop; the process exits by itself.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_EXIT_TIMEOUT)
    if process.poll() is None:
        process.terminate()  # SIGTERM: libfuse leaves its loop and unmounts
        try:
            process.wait(timeout=_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            problems.append("the nolink FUSE process ignored SIGTERM and was killed")
    if process.returncode != 0 and not lazy:
        problems.append(
            f"the nolink FUSE process exited with {process.returncode}: {_log_tail(log_path)}"
        )
    elif log := _log_tail(log_path):
        problems.append(f"the nolink FUSE process logged errors: {log}")
    if mount_at(mountpoint) is not None:  # e.g. it was killed before unmounting
        _run([fusermount, "-u", "-z", str(mountpoint)])


def _private_cache_dir() -> Path:
    """``$TMPDIR/lockkit-nolinkfs-UID``, created if need be, or a fresh temporary one.

    The cached binary is run as root, so the directory must be ours and
    writable by nobody else; if it is not, nothing is reused.
    """
    cache = Path(tempfile.gettempdir()) / f"lockkit-nolinkfs-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        cache.mkdir(mode=0o700)
    info = os.lstat(cache)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022:
        return cache
    return Path(tempfile.mkdtemp(prefix="lockkit-nolinkfs-"))


def _build_nolink_fs() -> Path:
    """Compile ``nolink_fs.c``, or reuse the binary built from the same source and flags."""
    command = _fuse3_build_command()
    key = hashlib.sha256(NOLINK_FS_SOURCE.read_bytes())
    key.update("\0".join(command).encode())
    cache = _private_cache_dir()
    binary = cache / f"nolink_fs-{key.hexdigest()[:16]}"
    if binary.exists():
        return binary
    # Built under a temporary name and renamed: concurrent sessions never run
    # a half-written binary.
    fd, partial = tempfile.mkstemp(prefix=".build-", dir=cache)
    os.close(fd)
    try:
        result = _run([*command, "-o", partial])
        if result.returncode != 0:
            # The tools are there, so this is a bug in nolink_fs.c: fail, never skip.
            pytest.fail(f"cannot build the nolink filesystem: {_describe(result)}", pytrace=False)
        os.chmod(partial, 0o700)  # the linker may have kept mkstemp()'s mode 0600
        os.replace(partial, binary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    # Builds of other versions stay: another checkout may be running one now.
    return binary


@pytest.fixture(scope="session")
def nolink_dir() -> Iterator[Path]:
    """A writable directory on a FUSE passthrough mount whose ``link()`` fails with ENOTSUP.

    ``tests/nolink_fs.c``, compiled (or taken from the cache), mirrors a
    temporary source directory.  ``auto_unmount`` (a ``fusermount3``
    watchdog) unmounts if the process dies, ``--die-with-parent`` stops it
    if this session dies.  Teardown unmounts with ``fusermount3 -u``, reaps
    the process and deletes the files.
    """
    _require_root()
    _require_fuse_device()
    fusermount = _require_tool("fusermount3", "fuse3")
    binary = _build_nolink_fs()

    base = Path(tempfile.mkdtemp(prefix="lockkit-nolink-"))
    source = base / "source"
    mountpoint = base / "mnt"
    source.mkdir()
    mountpoint.mkdir()
    log_path = base / "nolinkfs.log"
    problems: list[str] = []
    yielded = False
    with log_path.open("wb") as log:
        # A file, not a pipe: nobody reads a pipe during the session, and a
        # full one would block the filesystem the moment it logs too much.
        process = subprocess.Popen(
            [
                str(binary),
                "--die-with-parent",
                "-f",
                "-o",
                "auto_unmount",
                str(source),
                str(mountpoint),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            # Out of the terminal's process group: Ctrl-C must reach pytest
            # only, so that teardown still finds the filesystem running.
            start_new_session=True,
        )
    try:
        # ismount() stats through FUSE: True means requests are being served.
        if not _wait_for_mount(mountpoint, _MOUNT_TIMEOUT, process) or not os.path.ismount(
            mountpoint
        ):
            status = process.poll()
            what = (
                f"did not mount within {_MOUNT_TIMEOUT:g} s"
                if status is None
                else f"exited with {status} before mounting"
            )
            skip_or_fail(f"the nolink FUSE filesystem {what}: {_log_tail(log_path)}")
        work = mountpoint / "work"
        work.mkdir()
        yielded = True
        yield work
    finally:
        _stop_nolink(process, mountpoint, fusermount, log_path, problems)
        _remove_tree(base, mountpoint, problems)
        if yielded:  # after a failed setup, the skip/fail reason says it all
            _report(problems)


# -- both ----------------------------------------------------------------------


@pytest.fixture(params=["exfat", "nolink"], ids=["exfat", "nolink"])
def realfs_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh empty directory on exFAT or on the no-link FUSE mount, for one test.

    Fresh per test (in the session's ``exfat_dir``/``nolink_dir``) because
    tests assert on directory contents, and lock files of one test must not
    meet the next.  Removed afterwards.
    """
    session_dir: Path = request.getfixturevalue(f"{request.param}_dir")
    # exFAT refuses some characters in names; keep the test name recognisable.
    label = re.sub(r"[^\w.-]", "_", request.node.name)[:60]
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=session_dir))
    yield path
    shutil.rmtree(path)


# -- hooks ---------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``realfs`` marker (harmless if pyproject declares it too)."""
    config.addinivalue_line(
        "markers", "realfs: needs the exFAT or ENOTSUP-FUSE mounts (root and /dev/fuse)"
    )


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that uses one of the mounts ``realfs``, so ``-m`` can select it."""
    if _REALFS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.realfs)
