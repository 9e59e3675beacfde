"""A FUSE passthrough filesystem on which ``link()`` always fails with ENOTSUP.

Usage::

    python tests/_nolink_fs.py [--die-with-parent] [--debug] SOURCE_DIR MOUNTPOINT

The mount mirrors ``SOURCE_DIR``: every operation is forwarded to the same
system call on the underlying file, except that ``link()`` fails with
``ENOTSUP``.  lockkit's tests use it for the filesystems (some FUSE and network
filesystems) that refuse hard links but still create ``O_EXCL`` atomically.
It runs in the foreground and multithreaded, so many processes can use it at
once.  It stops, unmounting, on SIGTERM/SIGINT/SIGHUP or ``fusermount3 -u``.

Design notes, because each of these decides whether a lock test on this mount
means anything:

* File handles *are* the underlying file descriptors, and all I/O goes through
  ``pread``/``pwrite`` on them, so concurrent requests from the worker threads
  never share a file position.
* ``create`` passes the caller's open flags (which still contain
  ``O_CREAT|O_EXCL``) to ``os.open`` on the underlying file, so the underlying
  filesystem decides atomically which of several racing creators wins.
* Kernel attribute, entry and negative-lookup caching is off (``*_timeout=0``).
  Operations that go through the mount keep the kernel's caches coherent
  anyway; with caching, changes made directly in SOURCE_DIR would go unseen
  for up to the timeout, and stale positive/negative entries are exactly the
  kind of thing a lock test must not depend on.
* ``flock()`` and ``fcntl()`` locks are not implemented here on purpose: when a
  FUSE filesystem registers no ``flock``/``lock`` operation, the kernel keeps
  those locks itself on the FUSE inode, which is exact for all processes on
  this machine.
* A file unlinked while still open (by anyone) is not really unlinked by
  libfuse: it renames it to ``.fuse_hiddenXXXX`` and removes it at the last
  close.  ``hard_remove`` would avoid that, but then libfuse forgets the
  file's path and ``fstat()`` on the open descriptor fails with ``ESTALE``
  (the kernel sends no file handle with ``fstat``), which breaks the "is my
  descriptor still the file at that path?" checks locks depend on.  So the
  hiding is kept, but the hidden file is moved into a private directory
  (``SOURCE_DIR/.nolinkfs-hidden``, invisible through the mount): the name
  vanishes atomically, directory listings stay clean, ``rmdir`` works, and
  ``fstat`` keeps working with ``st_nlink == 0`` -- as on a disk filesystem.
  Remaining differences: a ``rename()`` over a file that is open somewhere
  happens in two steps (hide the target, then rename), so for a moment the
  target name does not exist; and a hidden file whose directory was removed
  before its last close stays in the stash until unmount (libfuse no longer
  knows its path to remove it).
* Inode numbers are the underlying ones (``use_ino``), so ``st_ino``
  comparisons behave as on the underlying filesystem (including ext4 reusing
  the number of a deleted file at once).
* libfuse3 is forced: mfusepy prefers libfuse2 when both are installed.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from typing import Any

# mfusepy loads libfuse2 when both are installed; the options and behaviour
# below are those of libfuse3.  Must be set before the import.
if "FUSE_LIBRARY_PATH" not in os.environ:
    os.environ["FUSE_LIBRARY_NAME"] = "fuse3"

import mfusepy  # needs the environment set up above
from mfusepy import FuseOSError

# Directory inside SOURCE_DIR that holds files unlinked while still open.
# Reserved: it does not exist as far as the mount is concerned.
STASH_NAME = ".nolinkfs-hidden"

# libfuse renames a file unlinked while open to ".fuse_hidden" + node id +
# counter (8 hex digits each); the names are unique within one mount.
_HIDDEN_NAME = re.compile(r"\.fuse_hidden[0-9a-f]{16}")

# utimensat(2) sentinels.  libfuse3 hands them over as tv_sec=0 with these
# tv_nsec values, which mfusepy (use_ns=True) turns into these plain integers.
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2

_PR_SET_PDEATHSIG = 1

# fuse_main()'s return code for "the event loop ended with an error".
_FUSE_MAIN_LOOP_FAILED = 8

_STATVFS_FIELDS = (
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


class NoLinkPassthrough(mfusepy.Operations):  # type: ignore[misc]
    """Forward every operation to ``root``; refuse ``link()`` with ENOTSUP."""

    # Times as integer nanoseconds (the float form is deprecated and lossy).
    use_ns = True

    def __init__(self, root: str) -> None:
        """Mirror the directory ``root``."""
        self.root = os.path.realpath(root)
        self.stash = os.path.join(self.root, STASH_NAME)
        # A stash left by a killed instance holds nothing anyone can reach.
        shutil.rmtree(self.stash, ignore_errors=True)
        os.mkdir(self.stash, 0o700)
        # Hidden name -> its place in the stash.
        self._hidden: dict[str, str] = {}
        self._hidden_lock = threading.Lock()

    # -- path mapping -----------------------------------------------------

    def _full(self, path: str | None) -> str:
        # libfuse passes path=None only for a file handle whose path it no
        # longer knows; with no handle to go by there is nothing to act on.
        if path is None:
            raise FuseOSError(errno.ESTALE)
        # Paths are absolute within the mount and normalised by the kernel.
        rel = path.lstrip("/")
        if rel.partition("/")[0] == STASH_NAME:
            raise FuseOSError(errno.ENOENT)
        name = rel.rpartition("/")[2]
        if _HIDDEN_NAME.fullmatch(name):
            with self._hidden_lock:
                stashed = self._hidden.get(name)
            if stashed is not None:
                return stashed
        return os.path.join(self.root, rel)

    # -- metadata ---------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        """Stat through the open descriptor if there is one, else the path."""
        st = os.fstat(fh) if fh is not None else os.lstat(self._full(path))
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
        """access(2) on the underlying file."""
        if not os.access(self._full(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        """chmod(2) on the underlying file."""
        os.chmod(self._full(path), mode, follow_symlinks=False)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        """lchown(2) on the underlying file."""
        os.chown(self._full(path), uid, gid, follow_symlinks=False)
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        """utimensat(2) on the underlying file, honouring UTIME_NOW/UTIME_OMIT."""
        full = self._full(path)
        if times is None:
            os.utime(full, follow_symlinks=False)
            return 0
        atime, mtime = times
        if _UTIME_OMIT in (atime, mtime):
            # os.utime() cannot say "leave this one alone": re-apply it.
            st = os.lstat(full)
            atime = st.st_atime_ns if atime == _UTIME_OMIT else atime
            mtime = st.st_mtime_ns if mtime == _UTIME_OMIT else mtime
        now = time.time_ns()
        atime = now if atime == _UTIME_NOW else atime
        mtime = now if mtime == _UTIME_NOW else mtime
        os.utime(full, ns=(atime, mtime), follow_symlinks=False)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        """statvfs(3) of the underlying filesystem."""
        sv = os.statvfs(self._full(path))
        return {key: getattr(sv, key) for key in _STATVFS_FIELDS}

    # -- namespace ----------------------------------------------------------

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        """List the underlying directory (without the stash)."""
        full = self._full(path)
        at_root = path.strip("/") == ""
        entries: list[tuple[str, dict[str, int], int]] = []
        for name in (".", ".."):
            st = os.lstat(os.path.join(full, name))
            entries.append((name, {"st_mode": st.st_mode, "st_ino": st.st_ino}, 0))
        with os.scandir(full) as it:
            for entry in it:
                if at_root and entry.name == STASH_NAME:
                    continue
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except FileNotFoundError:
                    continue  # unlinked since scandir() listed it
                entries.append((entry.name, {"st_mode": mode, "st_ino": entry.inode()}, 0))
        return entries

    def mkdir(self, path: str, mode: int) -> int:
        """mkdir(2)."""
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        """rmdir(2)."""
        os.rmdir(self._full(path))
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        """mknod(2) (FIFOs, sockets; device nodes as far as allowed)."""
        os.mknod(self._full(path), mode, dev)
        return 0

    def unlink(self, path: str) -> int:
        """unlink(2); also how libfuse removes a hidden file at its last close."""
        full = self._full(path)
        os.unlink(full)
        name = path.rpartition("/")[2]
        if _HIDDEN_NAME.fullmatch(name):
            with self._hidden_lock:
                self._hidden.pop(name, None)
        return 0

    def rename(self, old: str, new: str) -> int:
        """rename(2); libfuse's "hide an open file" renames go to the stash."""
        # mfusepy drops renameat2() flags (RENAME_NOREPLACE/EXCHANGE), so this
        # is always a plain rename().
        name = new.rpartition("/")[2]
        if _HIDDEN_NAME.fullmatch(name) and not os.path.lexists(self._full(new)):
            stashed = os.path.join(self.stash, name)
            os.rename(self._full(old), stashed)
            with self._hidden_lock:
                self._hidden[name] = stashed
            return 0
        os.rename(self._full(old), self._full(new))
        return 0

    def symlink(self, target: str, source: str) -> int:
        """symlink(2): ``target`` is the new name, ``source`` the link's text."""
        os.symlink(source, self._full(target))
        return 0

    def readlink(self, path: str) -> str:
        """readlink(2)."""
        return os.readlink(self._full(path))

    def link(self, target: str, source: str) -> int:
        """The whole point of this filesystem: no hard links."""
        raise FuseOSError(errno.ENOTSUP)

    # -- open files -----------------------------------------------------------

    def create(self, path: str, mode: int, flags: int) -> int:
        """open(2) with O_CREAT and the caller's flags -- O_EXCL included."""
        return os.open(self._full(path), flags | os.O_CREAT | os.O_CLOEXEC, mode)

    def open(self, path: str, flags: int) -> int:
        """open(2) with the caller's flags; the descriptor is the file handle."""
        return os.open(self._full(path), flags | os.O_CLOEXEC)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        """pread(2) on the handle."""
        return os.pread(fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        """pwrite(2) on the handle."""
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        """ftruncate(2) on the handle if there is one, else truncate(2)."""
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)
        return 0

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        """posix_fallocate(3); the Linux-only modes are not passed through."""
        if mode != 0:
            raise FuseOSError(errno.EOPNOTSUPP)
        os.posix_fallocate(fh, offset, size)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        """Nothing to do: no buffering in here, and locks are the kernel's."""
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        """fsync(2)/fdatasync(2) on the handle."""
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def release(self, path: str | None, fh: int) -> int:
        """Close the handle (the last close of the caller's open file)."""
        os.close(fh)
        return 0

    def destroy(self, path: str) -> None:
        """Drop hidden files that were still open when the mount went away."""
        shutil.rmtree(self.stash, ignore_errors=True)


class _FUSE(mfusepy.FUSE):  # type: ignore[misc]
    """mfusepy's FUSE, forwarding the file handle to ``truncate``.

    mfusepy 3.1.1 drops the ``fuse_file_info`` libfuse3 passes to truncate,
    turning ``ftruncate(fd)`` into a truncate of whatever the path names now,
    through a different open file than the caller's.
    """

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        result: int = self.operations.truncate(decoded, length, fh)
        return result


def _die_with_parent() -> None:
    """Get SIGTERM -- hence unmount -- when the process that started us dies.

    Without this a test runner killed mid-session would leave a mount behind.
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before prctl() took effect
        sys.exit(1)


def serve(source: str, mountpoint: str, *, debug: bool = False) -> None:
    """Mount ``source`` on ``mountpoint`` and serve requests until unmounted."""
    _FUSE(
        NoLinkPassthrough(source),
        mountpoint,
        foreground=True,
        nothreads=False,
        debug=debug,
        fsname="nolinkfs",
        subtype="nolinkfs",  # mount type "fuse.nolinkfs"
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        use_ino=True,
        # libfuse keeps a fusermount3 watchdog that unmounts if we die
        # without unmounting (SIGKILL), instead of leaving a dead "Transport
        # endpoint is not connected" mount behind.
        auto_unmount=True,
        # Worker-thread pool.  Setting max_idle_threads explicitly also stops
        # libfuse 3.14's fuse_main() from logging "Ignoring invalid max
        # threads value 4294967295" about its own unset default.
        max_threads=32,
        max_idle_threads=8,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, mount, and serve until unmounted or signalled."""
    parser = argparse.ArgumentParser(description="Passthrough FUSE mount whose link() fails.")
    parser.add_argument("source", help="directory to mirror")
    parser.add_argument("mountpoint", help="empty directory to mount on")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    parser.add_argument(
        "--die-with-parent",
        action="store_true",
        help="unmount and exit when the parent process dies",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if mfusepy.fuse_version_major != 3:  # pragma: no cover - depends on the machine
        print(f"needs libfuse3, mfusepy loaded {mfusepy._libfuse_path}", file=sys.stderr)  # noqa: SLF001
        return 2
    if not os.path.isdir(args.source):
        print(f"not a directory: {args.source}", file=sys.stderr)
        return 2
    if args.die_with_parent:
        _die_with_parent()

    try:
        serve(args.source, args.mountpoint, debug=args.debug)
    except RuntimeError as exc:
        # libfuse 3.14's fuse_main() returns 8 ("loop failed") when a signal
        # stopped the loop -- after unmounting.  That is the normal way to
        # stop us.  Other codes are real failures, explained by libfuse on
        # stderr already.
        if exc.args != (_FUSE_MAIN_LOOP_FAILED,):
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
