"""The user's own cache files: what a fresh process would otherwise work out again.

Two files live in ``$XDG_CACHE_HOME/lockkit/`` (else ``~/.cache/lockkit/``): the
registry's record of the installed backends (`lockkit._regcache`) and auto-detection's
verdicts per filesystem (`lockkit._autodetect`). Both are only ever a shortcut: a file
that is missing, unreadable, corrupt, stale or not trustworthy means the slow path, and
is rewritten when that path is done.

The directory is the user's, and nothing here trusts anything else:

* The cache root (``$XDG_CACHE_HOME`` or ``~/.cache``) must belong to the effective
  user: root under ``sudo -E`` keeps another user's ``HOME`` and gets no cache at all
  (it neither reads that user's files nor leaves root-owned ones behind).
* ``lockkit/`` is created ``0700``; it and every file in it are opened with
  ``O_NOFOLLOW`` and used only if they belong to the effective user and nobody else may
  write them. Files are created ``0600`` and replaced atomically (a temporary file in
  the same directory, then ``os.replace``).
* A read-only or missing ``HOME``, a full disk, Windows (no owner to check): no cache,
  no error, no warning.
* ``LOCKKIT_NO_CACHE=1`` bypasses both caches (neither read nor written).

The files are `marshal` data behind a short header, not JSON: ``marshal`` is built into
the interpreter, and importing ``json`` would cost a ``lockkit run`` more than reading
the file. marshal is not meant for untrusted data, and these files are trusted exactly
as far as the ``.pyc`` files Python itself unmarshals from ``__pycache__``: only the
user's own, in the user's own directory. Even so, a value is used only if it is made of
dicts, lists, tuples, strings, numbers, booleans and ``None`` (never a code object).
"""

from __future__ import annotations

import marshal
import os
import stat

from lockkit._log import log

__all__ = ["NO_CACHE_ENV", "cache_dir", "enabled", "read", "write"]

NO_CACHE_ENV = "LOCKKIT_NO_CACHE"
"""Set to anything but ``""`` or ``0`` to bypass the caches."""

MAX_SIZE = 1 << 20
"""A cache file larger than this is not read (it is not one lockkit wrote)."""

_MAGIC = b"lockkit-cache 1\n"
"""What every cache file starts with: its format (the marshal data follows)."""
_PLAIN = (str, int, float, bool, type(None))

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def enabled() -> bool:
    """Whether the caches may be used: not disabled, and on a system with owners."""
    flag = os.environ.get(NO_CACHE_ENV, "").strip()
    return flag in ("", "0") and hasattr(os, "geteuid") and hasattr(os, "O_NOFOLLOW")


def cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/lockkit`` (an absolute one), else ``~/.cache/lockkit``, else None."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # noqa: PTH117 - the XDG spec: a relative value is ignored
        home = os.environ.get("HOME", "")
        if not os.path.isabs(home):  # noqa: PTH117
            return None
        base = os.path.join(home, ".cache")  # noqa: PTH118
    return os.path.join(base, "lockkit")  # noqa: PTH118


def _mine(info: os.stat_result) -> bool:
    """Owned by the effective user, and nobody else may write it."""
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _root_is_mine(base: str, *, create: bool) -> bool:  # noqa: PLR0911 - one per refusal
    """Whether the cache root belongs to the effective user (made if missing and ``create``)."""
    try:
        # The root may be a symlink the user made (~/.cache elsewhere): that is theirs.
        return os.stat(base).st_uid == os.geteuid()  # noqa: PTH116
    except FileNotFoundError:
        if not create:
            return False
    except OSError:
        return False
    # Made only inside a directory of the user's own: root with another user's HOME
    # (sudo -E) must not leave a root-owned ~/.cache in it.
    parent = os.path.dirname(base.rstrip(os.sep)) or os.sep  # noqa: PTH120
    while not os.path.exists(parent):  # noqa: PTH110
        above = os.path.dirname(parent)  # noqa: PTH120
        if above == parent:
            return False
        parent = above
    try:
        if os.stat(parent).st_uid != os.geteuid():  # noqa: PTH116
            return False
        os.makedirs(base, mode=0o700, exist_ok=True)  # noqa: PTH103
    except OSError:
        return False
    return True


def _open_dir(*, create: bool) -> int | None:
    """A descriptor of the cache directory if it is trustworthy (made if ``create``)."""
    path = cache_dir()
    if path is None or not enabled():
        return None
    if not _root_is_mine(os.path.dirname(path), create=create):  # noqa: PTH120
        return None
    if create:
        try:
            os.mkdir(path, 0o700)  # noqa: PTH102
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        fd = os.open(path, _DIR_FLAGS | _CLOEXEC)
    except OSError:
        return None  # missing, a symlink (ELOOP), not a directory
    info = os.fstat(fd)
    if not (stat.S_ISDIR(info.st_mode) and _mine(info)):
        os.close(fd)
        log.debug("lockkit: ignoring the cache directory %s: not the user's own", path)
        return None
    return fd


def read(name: str) -> dict[str, object] | None:  # noqa: PLR0911 - one return per refusal
    """The dict in cache file ``name``, or None (missing, untrusted, corrupt)."""
    directory = _open_dir(create=False)
    if directory is None:
        return None
    try:
        try:
            # O_NONBLOCK: a FIFO planted at the name must not block the open (it is then
            # refused as not a regular file); reading a regular file ignores the flag.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
            fd = os.open(name, flags, dir_fd=directory)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not (stat.S_ISREG(info.st_mode) and _mine(info)) or info.st_size > MAX_SIZE:
                log.debug("lockkit: ignoring the cache file %s: not the user's own", name)
                return None
            data = os.read(fd, MAX_SIZE + 1)
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        os.close(directory)
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("no lockkit cache header")  # noqa: TRY301 - one path for all
        value = marshal.loads(data[len(_MAGIC) :])  # noqa: S302 - see the module's docstring
    except (ValueError, EOFError, TypeError):  # corrupt or truncated: rewritten later
        log.debug("lockkit: ignoring the cache file %s: not a lockkit cache", name)
        return None
    if not (isinstance(value, dict) and _plain(value)):
        log.debug("lockkit: ignoring the cache file %s: unexpected contents", name)
        return None
    return value


def _plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` holds only plain data: what `write` stores, nothing else."""
    if isinstance(value, _PLAIN):
        return True
    if depth > 16:  # noqa: PLR2004 - far deeper than any record lockkit writes
        return False
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item, depth + 1) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(item, depth + 1) for item in value)
    return False


def write(name: str, value: dict[str, object]) -> bool:
    """Replace cache file ``name`` with ``value`` (plain data), atomically; False if not."""
    directory = _open_dir(create=True)
    if directory is None:
        return False
    temporary = f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
    data = _MAGIC + marshal.dumps(value)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=directory)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError as exc:
        log.debug("lockkit: could not write the cache file %s: %s", name, exc)
        try:  # noqa: SIM105 - contextlib is not imported on the cold path
            os.unlink(temporary, dir_fd=directory)
        except OSError:
            pass
        return False
    finally:
        os.close(directory)
    return True
