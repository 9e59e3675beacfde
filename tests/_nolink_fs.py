"""A FUSE passthrough filesystem on which ``link()`` always fails.

Usage::

    python tests/_nolink_fs.py [--die-with-parent] [--debug] SOURCE_DIR MOUNTPOINT

The mount mirrors ``SOURCE_DIR`` faithfully -- every operation is forwarded to
the same system call on the underlying file -- except that ``link()`` fails
with ``ENOTSUP``.  lockkit's tests use it to exercise the code paths for
filesystems without hard links (some network filesystems, some FUSE
filesystems) that still offer atomic ``O_CREAT|O_EXCL``.

Design notes, because each of these decides whether lock tests on this mount
mean anything:

* File handles *are* the underlying file descriptors, and all I/O goes through
  ``pread``/``pwrite`` on them, so concurrent requests from the multithreaded
  libfuse loop never share a file position.
* ``create`` passes the kernel's open flags (which still contain
  ``O_CREAT|O_EXCL``) straight to ``os.open`` on the underlying file, so the
  exclusivity decision is made atomically by the underlying filesystem, not
  by a racy "does it exist?" check in here.
* Kernel attribute/entry/negative-lookup caching is switched off
  (``*_timeout=0``): with caching, a process could be told a lock file does
  not exist (negative dentry) or still exists (positive dentry) for up to the
  timeout after another process created or unlinked it.
* ``flock()``/``fcntl()`` locks are not implemented here on purpose: a FUSE
  filesystem that registers no ``flock``/``lock`` operation makes the kernel
  handle those locks locally on the FUSE inode, which is exactly right for
  processes on one machine.
* Unlinking a file that is still open uses libfuse's default "hide" strategy
  (rename to ``.fuse_hiddenXXXX`` until the last close) rather than
  ``hard_remove``.  With ``hard_remove`` libfuse forgets the path of the
  unlinked node and ``fstat()`` on a still-open descriptor fails with
  ``ESTALE`` (the kernel does not send the file handle for ``fstat``), which
  would break the "was my lock file unlinked under me?" checks lock libraries
  rely on.  The hidden files are filtered out of directory listings.
* libfuse3 is forced (mfusepy prefers libfuse2 when both are installed).
* SIGTERM/SIGINT/SIGHUP are handled by libfuse, which leaves its loop and
  unmounts; ``fusermount3 -u`` makes the loop end, after which the process
  exits with status 0.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import signal
import sys
import time
from typing import Any

# mfusepy picks libfuse2 over libfuse3 when both are installed; the options and
# behaviour below are chosen for libfuse3.  Must happen before the import.
if "FUSE_LIBRARY_PATH" not in os.environ:
    os.environ["FUSE_LIBRARY_NAME"] = "fuse3"

import mfusepy  # noqa: E402  (needs the environment set up above)
from mfusepy import FuseOSError  # noqa: E402

# Names libfuse gives to files unlinked while still open (see module docstring).
_HIDDEN_PREFIX = ".fuse_hidden"

# utimensat(2) sentinels.  libfuse3 hands them over as tv_sec=0 with these
# tv_nsec values, which mfusepy (use_ns=True) turns into these plain integers.
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2

_PR_SET_PDEATHSIG = 1


class NoLinkPassthrough(mfusepy.Operations):  # type: ignore[misc]
    """Forward every operation to ``root``; refuse ``link()`` with ENOTSUP."""

    # Times as integer nanoseconds (the float form is deprecated and lossy).
    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def _full(self, path: str) -> str:
        # FUSE paths are absolute within the mount and already normalised by
        # the kernel (no "..", no empty components).
        return os.path.join(self.root, path.lstrip("/"))

    # -- metadata ---------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        # Prefer the open descriptor when libfuse hands one over: it names the
        # open file even if its path has since been unlinked or renamed.
        st = os.fstat(fh) if fh is not None else os.lstat(self._require(path))
        return {
            "st_mode": st.st_mode,
            "st_ino": st.st_ino,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_blocks": st.st_blocks,
            "st_blksize": st.st_blksize,
            "st_rdev": st.st_rdev,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._full(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        os.chmod(self._require(path), mode, follow_symlinks=False)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        os.chown(self._require(path), uid, gid, follow_symlinks=False)
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        full = self._require(path)
        if times is None:
            os.utime(full, follow_symlinks=False)
            return 0
        atime, mtime = times
        if _UTIME_OMIT in (atime, mtime):
            # os.utime() cannot express "leave this one alone": re-apply the
            # current value instead.
            st = os.lstat(full)
            atime = st.st_atime_ns if atime == _UTIME_OMIT else atime
            mtime = st.st_mtime_ns if mtime == _UTIME_OMIT else mtime
        now = time.time_ns()
        atime = now if atime == _UTIME_NOW else atime
        mtime = now if mtime == _UTIME_NOW else mtime
        os.utime(full, ns=(atime, mtime), follow_symlinks=False)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._full(path))
        return {
            key: getattr(sv, key)
            for key in (
                "f_bsize",
                "f_frsize",
                "f_blocks",
                "f_bfree",
                "f_bavail",
                "f_files",
                "f_ffree",
                "f_favail",
                "f_flag",
                "f_namemax",
            )
        }

    # -- namespace ----------------------------------------------------------

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        full = self._full(path)
        entries: list[tuple[str, dict[str, int], int]] = []
        for name in (".", ".."):
            st = os.lstat(os.path.join(full, name))
            entries.append((name, {"st_mode": st.st_mode, "st_ino": st.st_ino}, 0))
        with os.scandir(full) as it:
            for entry in it:
                if entry.name.startswith(_HIDDEN_PREFIX):
                    continue  # open-but-unlinked files; they do not "exist"
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except FileNotFoundError:
                    continue  # unlinked since scandir() listed it
                entries.append((entry.name, {"st_mode": mode, "st_ino": entry.inode()}, 0))
        return entries

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._full(path))
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        os.mknod(self._full(path), mode, dev)
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._full(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        # mfusepy drops renameat2() flags (RENAME_NOREPLACE/EXCHANGE); plain
        # rename() semantics are what the flag-less call asks for anyway.
        os.rename(self._full(old), self._full(new))
        return 0

    def symlink(self, target: str, source: str) -> int:
        # mfusepy: "creates a symlink `target -> source`"; target is the new
        # name inside the mount, source the (uninterpreted) link contents.
        os.symlink(source, self._full(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    def link(self, target: str, source: str) -> int:
        """The whole point of this filesystem: no hard links."""
        raise FuseOSError(errno.ENOTSUP)

    # -- open files -----------------------------------------------------------

    def create(self, path: str, mode: int, flags: int) -> int:
        # ``flags`` still carries O_CREAT|O_EXCL from the caller's open(), so
        # the underlying filesystem arbitrates racing creators atomically.
        return os.open(self._full(path), flags | os.O_CREAT | os.O_CLOEXEC, mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._full(path), flags | os.O_CLOEXEC)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._require(path), length)
        return 0

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        if mode != 0:
            raise FuseOSError(errno.EOPNOTSUPP)  # no punch-hole/keep-size passthrough
        os.posix_fallocate(fh, offset, size)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        # Called on every close() of a descriptor; nothing is buffered in
        # here, and locks are kernel-local, so there is nothing to do.
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def release(self, path: str | None, fh: int) -> int:
        os.close(fh)
        return 0

    # -- helpers ----------------------------------------------------------

    def _require(self, path: str | None) -> str:
        # libfuse passes path=None only for operations on a file handle whose
        # path it no longer knows; without a handle there is nothing to act on.
        if path is None:
            raise FuseOSError(errno.ESTALE)
        return self._full(path)


class _FUSE(mfusepy.FUSE):  # type: ignore[misc]
    """mfusepy's FUSE with the file handle forwarded to ``truncate``.

    mfusepy 3.1.1 drops the ``fuse_file_info`` that libfuse3 passes to
    ``truncate``, turning ``ftruncate(fd)`` into a path-based truncate.  That
    is wrong for a file that was renamed or unlinked while open, and it
    truncates through a different open file than the caller's.
    """

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        result: int = self.operations.truncate(decoded, length, fh)
        return result


def _die_with_parent() -> None:
    """Get SIGTERM (hence a clean unmount) if the process that started us dies.

    Without this a killed test runner would leave a mount behind.
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # parent died before prctl took effect
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, mount, and serve until unmounted or signalled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", help="directory to mirror")
    parser.add_argument("mountpoint", help="empty directory to mount on")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    parser.add_argument(
        "--die-with-parent",
        action="store_true",
        help="unmount and exit when the parent process dies (Linux only)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if mfusepy.fuse_version_major != 3:
        print(
            f"{sys.argv[0]}: needs libfuse3, mfusepy loaded {mfusepy._libfuse_path}",
            file=sys.stderr,
        )
        return 2
    if not os.path.isdir(args.source):
        print(f"{sys.argv[0]}: not a directory: {args.source}", file=sys.stderr)
        return 2
    if args.die_with_parent:
        _die_with_parent()

    _FUSE(
        NoLinkPassthrough(args.source),
        args.mountpoint,
        foreground=True,
        nothreads=False,
        debug=args.debug,
        fsname="nolinkfs",
        subtype="nolinkfs",
        # Correctness over speed: every lookup and stat goes to the
        # underlying filesystem, so creations and unlinks made by one process
        # are seen by all others at once (see module docstring).
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        # Report the underlying inode numbers, so st_ino comparisons between
        # fstat(fd) and stat(path) behave as on the real filesystem.
        use_ino=True,
        # libfuse spawns a fusermount3 watchdog that unmounts if we die
        # without unmounting (e.g. SIGKILL), instead of leaving a dead
        # "Transport endpoint is not connected" mount behind.
        auto_unmount=True,
        # libfuse 3.14's fuse_main() otherwise complains "Ignoring invalid max
        # threads value 4294967295" (an unset default); the value is a cap on
        # idle+busy worker threads, plenty for tests with many processes.
        max_threads=64,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
