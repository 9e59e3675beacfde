"""The base classes of the file backends, and the file primitives' old home.

`LocalIOBackend` gives backends that lock with a few system calls on a local path their
asyncio methods; `FileBackend` is the base of backends whose lock is the existence of a
file (``excl``, ``hardlink``): naming, turns on shares, release, refresh, inspection,
race-free breaking and waiting (`FileWaiter`).

The primitives live in one private module per concern, and import nothing from here:

* `lockkit.backends._paths`: lock path rules, auxiliary names, open flags;
* `lockkit.backends._payload`: the JSON payload and the content rule;
* `lockkit.backends._lockfile`: creating, reading and removing lock files;
* `lockkit.backends._fsfacts`: local filesystem or share, inline or threaded I/O;
* `lockkit.backends._breaker`: the breaker lock that serialises breaking;
* `lockkit.backends._lease`: expiry and the ``O_EXCL`` lease of ``excl``.

Their names are re-exported here, because code outside lockkit (the Redis backend's
``encode_payload``/``decode_payload``, tests, older plugins) imports them from this
module. Plugin authors use `lockkit.files`, the public face of the same primitives.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import time

from lockkit import _notify
from lockkit._calls import plan, try_acquire_in_thread
from lockkit._value import evolve
from lockkit.backends._breaker import (
    BREAK_BUSY_WAIT,
    BREAKER_BACKEND,
    BREAKER_MAX_AGE,
    BREAKER_SUFFIX,
    BREAKER_WAIT,
    CLOCK_SKEW,
    LOCAL_BREAKER_WAIT,
    REASSERT_BREAKER_WAIT,
    breaker,
    breaker_clearable,
    breaker_path,
    observed_age,
)
from lockkit.backends._fsfacts import (
    LOCAL_FSTYPES,
    fstype_of,
    inline_io,
    on_share,
    run_file_io,
)
from lockkit.backends._lockfile import (
    BUSY_WAIT,
    HeldFile,
    carries_token,
    create_exclusive,
    create_held,
    file_identity,
    inspect_file,
    lock_info,
    read_lock_file,
    remove_held,
    remove_if_ours,
    unlink_lock_file,
    write_all,
)
from lockkit.backends._paths import (
    AUX_ROOM,
    CREATE_FLAGS,
    NAME_MAX,
    NOT_A_FILE,
    PATH_MAX,
    READ_FLAGS,
    RESERVED_SUFFIXES,
    REWRITE_FLAGS,
    VANISHED,
    aux_path,
    check_directory,
    linked_file_error,
    lock_path,
    name_max,
    not_a_file_error,
    open_lock_directory,
    open_nofollow,
    reserved_suffix,
    symlink_error,
)
from lockkit.backends._payload import (
    MAX_PAYLOAD,
    PAYLOAD_VERSION,
    Payload,
    check_content,
    decode_payload,
    encode_payload,
    looks_like_lock,
)
from lockkit.errors import BackendUnavailable
from lockkit.spec import Backend, Capabilities, Waiter

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from lockkit._info import Lease, LockInfo, Owner
    from lockkit.backends import _turn

__all__ = [
    "ARRIVAL_MARGIN",
    "AUX_ROOM",
    "BREAKER_BACKEND",
    "BREAKER_MAX_AGE",
    "BREAKER_SUFFIX",
    "BREAKER_WAIT",
    "BREAK_BUSY_WAIT",
    "BUSY_WAIT",
    "CLOCK_SKEW",
    "CREATE_FLAGS",
    "LOCAL_BREAKER_WAIT",
    "LOCAL_FSTYPES",
    "MAX_PAYLOAD",
    "NAME_MAX",
    "PATH_MAX",
    "PAYLOAD_VERSION",
    "READ_FLAGS",
    "REASSERT_BREAKER_WAIT",
    "RESERVED_SUFFIXES",
    "FileBackend",
    "FileWaiter",
    "HeldFile",
    "LocalIOBackend",
    "Payload",
    "WatchWaiter",
    "aux_path",
    "breaker",
    "breaker_clearable",
    "breaker_path",
    "carries_token",
    "check_content",
    "check_directory",
    "create_exclusive",
    "create_held",
    "decode_payload",
    "encode_payload",
    "file_identity",
    "fstype_of",
    "inline_io",
    "inspect_file",
    "linked_file_error",
    "lock_info",
    "lock_path",
    "looks_like_lock",
    "name_max",
    "not_a_file_error",
    "observed_age",
    "on_share",
    "open_lock_directory",
    "open_nofollow",
    "read_lock_file",
    "remove_held",
    "remove_if_ours",
    "reserved_suffix",
    "run_file_io",
    "symlink_error",
    "unlink_lock_file",
    "write_all",
]

ARRIVAL_MARGIN = 0.5
"""An attempt with a TTL that took longer than this fraction of it re-asserts the lock."""


class LocalIOBackend(Backend):
    """``*_async`` methods for backends that lock with a few system calls on a local path.

    Where `inline_io` says the lock's filesystem answers at once, attempts, releases and
    reads run right on the event loop (a thread hop would cost more than the calls);
    elsewhere they take the `Backend` defaults, a worker thread. `FileBackend` and the
    ``filelock`` backend share this.
    """

    async def try_acquire_async(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """`try_acquire` on the event loop where `inline_io`, else in a worker thread.

        The ``waiter`` goes on to `try_acquire` if that takes one (`FileBackend` does).
        """
        if waiter is not None and not plan(self).accepts_waiter:
            waiter = None
        if not inline_io(os.path.dirname(name)):  # noqa: PTH120
            return await try_acquire_in_thread(self, name, owner, ttl, shared=shared, waiter=waiter)
        if waiter is None:
            return self.try_acquire(name, owner, ttl, shared=shared)
        v2: Any = self.try_acquire  # `waiter` is an optional keyword of spec v2
        lease: Lease | None = v2(name, owner, ttl, shared=shared, waiter=waiter)
        return lease

    async def release_async(self, lease: Lease) -> bool:
        """`release` on the event loop where `inline_io` (unless `_release_may_block`)."""
        released = self.release_at_once(lease)
        if released is not None:
            return released
        return await super().release_async(lease)

    def release_at_once(self, lease: Lease) -> bool | None:
        """Release on the event loop if that cannot block; ``None`` when it might.

        `lockkit.AsyncLock` calls this first: a release done here needs no task to
        shield it from the caller's cancellation.
        """
        if not self._release_may_block(lease) and inline_io(os.path.dirname(lease.name)):  # noqa: PTH120
            return self.release(lease)
        return None

    def _release_may_block(self, lease: Lease) -> bool:
        """Whether releasing ``lease`` may wait, so must not run on the event loop."""
        del lease
        return False

    async def inspect_async(self, name: str) -> LockInfo | None:
        """`inspect` on the event loop where `inline_io`, else in a worker thread."""
        return await run_file_io(name, self.inspect, name)


class FileBackend(LocalIOBackend):
    """Shared behaviour of backends whose lock is the existence of a file.

    A lock is held while the file exists; releasing removes it. Subclasses implement
    `attempt` with their primitive; naming, turns on shares, release, refresh,
    inspection, race-free breaking and waiting are common.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(across_hosts=True, ttl=True, notify=True)

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Require a file path whose directory exists; return it absolute."""
        return lock_path(name)

    def try_acquire(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """One `attempt`; on a share, stepping aside while another waiter has the turn.

        See `lockkit.backends._turn`: on filesystems other hosts may reach, a waiter
        that has waited a while claims the lock's next turn, and the others let it
        have the lock. The ``waiter`` (a `FileWaiter`, from the core) tells whose turn
        is this caller's; a successful attempt gives its turn back.

        With a TTL, an attempt that took longer than `ARRIVAL_MARGIN` of it (the process
        was paused between computing the expiry and its lock file appearing) re-asserts
        the lock before returning it (`_reassert`): it may have arrived expired.
        """
        del shared  # the core never asks: the capability is off
        turns = waiter.turns if isinstance(waiter, FileWaiter) else None
        if ttl is None:
            return self._try_acquire(name, owner, None, turns)
        started = time.monotonic()
        lease = self._try_acquire(name, owner, ttl, turns)
        if lease is not None and time.monotonic() - started > ttl * ARRIVAL_MARGIN:
            return self._reassert(lease, ttl)
        return lease

    def _try_acquire(
        self, name: str, owner: Owner, ttl: float | None, turns: _turn.TurnState | None
    ) -> Lease | None:
        directory = os.path.dirname(name)  # noqa: PTH120
        if not on_share(directory):
            return self.attempt(name, directory, owner, ttl)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        token = turns.token if turns is not None else ""
        turn = _turn.look(name, token)
        if turn is not None and not turn.mine:
            return None
        lease = self.attempt(name, directory, owner, ttl)
        # A turn found here and not stepped aside for is this waiter's (`turns` has its
        # token). Given back once, without waiting: `FileWaiter.close` retries if busy.
        if (
            lease is not None
            and turn is not None
            and turns is not None
            and _turn.give_back(name, token)
        ):
            turns.token = ""
        return lease

    def _reassert(self, lease: Lease, ttl: float) -> Lease | None:
        """Renew a lease that may have arrived expired; ``None`` if it is not ours now.

        Under the breaker lock, so no break runs between the token check and the new
        expiry: either a waiter broke the lock first (the token is gone: busy), or the
        lock is ours and now expires ``ttl`` from now.
        """
        try:
            with breaker(lease.name, wait=REASSERT_BREAKER_WAIT) as held:
                if held:
                    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
                    if self.refresh(lease, ttl):
                        return evolve(lease, expires=expires)
        except BaseException:
            _close_handle(lease)
            raise
        # Broken and perhaps taken meanwhile, or a breaker at work on it: busy. A lock
        # file still ours expires by its TTL.
        _close_handle(lease)
        return None

    def attempt(self, name: str, directory: str, owner: Owner, ttl: float | None) -> Lease | None:
        """Take the lock with this backend's primitive, once; ``None`` when it is held.

        Args:
            name: The lock path (absolute, checked by `normalize_name`).
            directory: Its directory.
            owner: Who takes it.
            ttl: Seconds the lock lives unless renewed, or ``None``.
        """
        raise NotImplementedError

    @staticmethod
    def keep_open(held: HeldFile, directory: str) -> HeldFile | None:
        """What a lease keeps of the lock file it created in ``directory``.

        The open descriptor on local filesystems (it makes release exact and cheap, see
        `HeldFile`); nothing on shares and FUSE mounts: through an SMB client a file
        that any descriptor holds open cannot be removed by anyone (EBUSY), so a holder
        that kept it open would stop a breaker from clearing its expired lock.
        """
        if inline_io(directory):
            return held
        held.close()
        return None

    def release(self, lease: Lease) -> bool:
        """Remove the lock file if it is still this lease's.

        A lease with a TTL is always released under the breaker lock: a waiter may judge
        it expired and break it at any moment, and a release paused (GC, SIGSTOP) between
        its ownership check and its unlink must not then remove the next holder's lock.
        Under the breaker no break can run, so the check and the unlink see one file.
        A lease without a TTL is only broken once its holder is dead (or, from another
        machine view, past the ``stale`` setting): it is removed directly.

        When the breaker stays busy (a breaker at work, paused, or planted), the release
        did not happen: if the lock file still carries this lease's token, it raises
        `BackendUnavailable` and the core keeps the lease (``release()`` may be retried;
        the lock otherwise expires by its TTL); if the token is gone, the lock really was
        lost and it returns ``False``. The wait is `BREAKER_WAIT` on filesystems other
        hosts may reach (a breaker there may retry a busy file for `BREAK_BUSY_WAIT`),
        `LOCAL_BREAKER_WAIT` elsewhere (a breaker is held for microseconds).

        Raises:
            BackendUnavailable: The breaker stayed busy and the lock is still ours.
        """
        directory = os.path.dirname(lease.name)  # noqa: PTH120
        wait = (
            LOCAL_BREAKER_WAIT
            if lease.expires is not None and inline_io(directory)
            else BREAKER_WAIT
        )
        released = self._release(lease, wait=wait)
        if released is not None:
            return released
        if carries_token(lease.name, lease.token):
            raise BackendUnavailable(
                errno.EBUSY,
                f"could not release {lease.name!r}: the breaker lock "
                f"{breaker_path(lease.name)!r} stays busy (held by another process, or a file "
                f"planted there) after {wait:g} s; the lock is still held: call release() "
                "again, or let it expire by its TTL",
            )
        return False

    def _release(self, lease: Lease, *, wait: float) -> bool | None:
        """`release`, waiting up to ``wait`` for a busy breaker; ``None`` if it stayed busy."""
        remove = remove_held if isinstance(lease.handle, HeldFile) else remove_if_ours
        if lease.expires is None:
            return remove(lease)
        try:
            with breaker(lease.name, wait=wait) as held:
                if held:
                    return remove(lease)
        except BaseException:
            _close_handle(lease)
            raise
        if wait > 0:
            _close_handle(lease)  # given up: the lock expires by its TTL
        return None

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Rewrite the payload with a new expiry if the file is still this lease's.

        Race-free without the breaker: the open descriptor pins the file, so the token
        read through it and the payload written through it belong to the same file; if
        the lock was broken meanwhile, the write lands in an unlinked file and the
        token check has already failed or will fail on the next refresh.
        """
        try:
            fd = os.open(lease.name, REWRITE_FLAGS)
        except OSError as exc:
            if exc.errno in VANISHED or exc.errno in NOT_A_FILE:
                return False  # gone, or replaced by a symlink, FIFO...: not ours any more
            raise  # a passing error: the core retries while the lock may still be ours
        try:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return False  # replaced by a FIFO or a device: not ours any more
                data = os.pread(fd, MAX_PAYLOAD + 1, 0)
            except OSError as exc:
                if exc.errno in VANISHED:
                    return False  # removed under us (FUSE/NFS report it on the open fd)
                raise
            owner = decode_payload(data).owner
            if owner is None or owner.token != lease.token:
                return False
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
            payload = encode_payload(lease.owner, lease.backend, expires)
            os.pwrite(fd, payload, 0)
            os.ftruncate(fd, len(payload))
        finally:
            os.close(fd)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """Read the holder from the lock file."""
        return inspect_file(name, self.name)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock file if it is still exactly the holding ``expected`` describes.

        Why this is race-free: every removal of a lock file for staleness happens while
        holding the breaker lock (``<name>.break``, created with ``O_EXCL``), and
        re-reads the file *under* it. The file at ``name`` can only be replaced by first
        being removed (a TTL renewal rewrites it in place, which changes its mtime and
        so fails the re-check), and removals happen only (a) here, serialised by the
        breaker, or
        (b) by the legitimate holder's release, which removes only its own token and,
        for a lease with a TTL (the only kind a live holder can lose), also takes the
        breaker. So between the re-read and the
        unlink nobody can swap the file, and the comparison of token, mtime and size
        rules out the two traps: a fresh lock on an inode number reused at once (ext4;
        it has another token), and a lock renewed since it was judged (another mtime).
        A lock that vanished is free, not stale: nothing is unlinked then, the caller
        retries the create.

        The re-read and the removal happen in the lock's directory opened and proven
        to be the one its path leads to now (`open_lock_directory`): a symlink of
        another user put on the way after the lock was named cannot redirect a break
        into another directory.
        """
        with breaker(name) as held:
            if not held:
                return False
            dfd = open_lock_directory(name)
            if dfd is None:
                return False  # the directory changed as we looked: not now
            at = dfd if dfd >= 0 else None
            try:
                if not self._still_as_seen(name, expected, at):
                    return False
                # On SMB every waiter reading the lock makes its removal fail (EBUSY)
                # for a moment: retry, briefly (we hold the breaker), and only while
                # the file is still exactly what was judged stale.
                return unlink_lock_file(
                    name,
                    lambda: self._still_as_seen(name, expected, at),
                    patience=BREAK_BUSY_WAIT,
                    dir_fd=at,
                )
            except BackendUnavailable:
                return False  # still busy: not broken now; the caller reads it again
            finally:
                if dfd >= 0:
                    os.close(dfd)

    def _still_as_seen(self, name: str, expected: LockInfo, dir_fd: int | None = None) -> bool:
        """Whether the lock file is still the very version ``expected`` describes."""
        current = inspect_file(name, self.name, dir_fd=dir_fd)
        return (
            current is not None
            and current.identity == expected.identity
            and _token(current) == _token(expected)
            # The expiry too: a client that reports mtimes in whole seconds (SFTP) can
            # show a renewed lock with the expired version's identity.
            and current.expires == expected.expires
        )

    def waiter(self, name: str) -> FileWaiter:
        """A `FileWaiter`: woken by the lock file's removal, taking turns on shares."""
        return FileWaiter(name)

    # -- asyncio: inline on local filesystems (see `inline_io`), else in a worker thread --

    async def release_async(self, lease: Lease) -> bool:
        """`release` on the event loop where `inline_io`, unless the breaker is busy.

        A lease with a TTL goes through the breaker lock; the loop tries it once, and
        only waits for a busy breaker in a worker thread.
        """
        released = self.release_at_once(lease)
        if released is not None:
            return released
        import asyncio  # noqa: PLC0415 - already imported by the running event loop

        return await asyncio.to_thread(self.release, lease)

    def release_at_once(self, lease: Lease) -> bool | None:
        """As `LocalIOBackend.release_at_once`; a TTL lease tries its breaker once."""
        if lease.expires is None or not inline_io(os.path.dirname(lease.name)):  # noqa: PTH120
            return super().release_at_once(lease)
        return self._release(lease, wait=0.0)

    def _release_may_block(self, lease: Lease) -> bool:
        """A lease with a TTL: its release may wait for the breaker lock (`release`)."""
        return lease.expires is not None

    async def break_lock_async(self, name: str, expected: LockInfo) -> bool:
        """`break_lock` on the event loop where `inline_io`, else in a worker thread."""
        return await run_file_io(name, self.break_lock, name, expected)


class WatchWaiter(Waiter):
    """A `Waiter` woken by an inotify event on a file in the lock's directory.

    A subclass says which events mean "released" (`mask`) and how to tell that the lock
    is still busy (`still_busy`). That check runs once the watch is armed: a release
    between the caller's failed attempt and the arming would otherwise be missed, and
    one after it leaves an event. The watch then stays armed across this waiter's
    failed attempts (`lockkit._notify.wait_for_event` knows its waiter), so later waits
    of the same acquisition need neither re-arming nor the check.

    Each wait is bounded by `lockkit._notify.wait_bound`, for releases no event reports
    (another host's); where inotify is unavailable it sleeps `lockkit.spec.poll_delay`.
    Blocking waits use their thread's inotify descriptor, asyncio waits their event
    loop's one (`lockkit._notify_async`): no thread and no descriptor per waiter.
    """

    __slots__ = ()

    mask: ClassVar[int] = _notify.IN_DELETE | _notify.IN_MOVED_FROM
    """The events on the watched file that may mean a release (default: its removal)."""

    def still_busy(self, path: str) -> bool:
        """Whether the lock is still held, judged by ``path`` (default: it exists)."""
        return os.path.lexists(path)

    async def still_busy_async(self, path: str) -> bool:
        """`still_busy` for asyncio: on the loop where `inline_io`, else in a thread."""
        return await run_file_io(path, self.still_busy, path)

    def watch(self, path: str, deadline: float) -> bool:
        """Sleep until an event of `mask` on ``path``, or the bound, or ``deadline``.

        Returns:
            ``True`` when an event came, or `still_busy` said the lock is free.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        directory, filename = os.path.split(path)
        woken = _notify.wait_for_event(
            directory,
            filename,
            self.mask,
            lambda: self.still_busy(path),
            _notify.wait_bound(remaining, self.attempts),
            waiter=self,
        )
        if woken is None:
            time.sleep(_notify.poll_delay(remaining, self.attempts))
            return False
        return woken

    async def watch_async(self, path: str, deadline: float) -> bool:
        """`watch` through the event loop's inotify descriptor; cancellable at any point."""
        import asyncio  # noqa: PLC0415 - already imported by the running event loop

        from lockkit import _notify_async  # noqa: PLC0415 - asyncio callers only

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        directory, filename = os.path.split(path)
        woken = await _notify_async.wait_for_event(
            directory,
            filename,
            self.mask,
            lambda: self.still_busy_async(path),
            _notify.wait_bound(remaining, self.attempts),
        )
        if woken is None:
            await asyncio.sleep(_notify.poll_delay(remaining, self.attempts))
            return False
        return woken

    def wait(self, deadline: float) -> bool:
        """Sleep until the lock file's release is seen (`watch`), bounded."""
        return self.watch(self.name, deadline)

    async def wait_async(self, deadline: float) -> bool:
        """`wait` for asyncio callers (`watch_async`)."""
        return await self.watch_async(self.name, deadline)


class FileWaiter(WatchWaiter):
    """The waiter of `FileBackend`: woken by the lock file's removal; takes turns on shares.

    On a filesystem other hosts may reach, it keeps this acquisition's `_turn.TurnState`
    (its claim token, its waits that saw no release): while another waiter's turn is
    live it sleeps until that turn ends; once `_turn.TURN_AFTER` waits saw no release it
    claims the next turn, which `FileBackend.try_acquire` recognises by its token. Its
    `close` gives a turn it still has back.

    Attributes:
        turns: The turn state, made by the first wait on a share (else ``None``).
    """

    __slots__ = ("turns",)

    def __init__(self, name: str) -> None:
        """A waiter for lock file ``name``; cheap: nothing is looked at before a wait."""
        super().__init__(name)
        self.turns: _turn.TurnState | None = None

    def _turns(self) -> _turn.TurnState:
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        turns = self.turns
        if turns is None:
            turns = self.turns = _turn.TurnState()
        return turns

    def wait(self, deadline: float) -> bool:
        """Sleep until the lock file is removed; on a share, take turns (see the class)."""
        name = self.name
        if not on_share(os.path.dirname(name)):  # noqa: PTH120
            return self.watch(name, deadline)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        turns = self._turns()
        turn = _turn.look(name, turns.token)
        if turn is not None and not turn.mine:
            self.watch(_turn.turn_path(name), min(deadline, time.monotonic() + turn.left))
            return False
        if turns.due():
            _turn.claim(name, turns.claim_token(), turn)
            # The others step aside now: look again soon.
            deadline = min(deadline, time.monotonic() + _turn.TURN_POLL)
        woken = self.watch(name, deadline)
        turns.waited(noticed=woken)
        return woken

    async def wait_async(self, deadline: float) -> bool:
        """`wait` for asyncio: turn files are read and written where `run_file_io` says."""
        name = self.name
        if not on_share(os.path.dirname(name)):  # noqa: PTH120
            return await self.watch_async(name, deadline)
        from lockkit.backends import _turn  # noqa: PLC0415 - shares only

        turns = self._turns()
        turn = await run_file_io(name, _turn.look, name, turns.token)
        if turn is not None and not turn.mine:
            until = min(deadline, time.monotonic() + turn.left)
            await self.watch_async(_turn.turn_path(name), until)
            return False
        if turns.due():
            # The token is made here, before the thread hop: if this task is cancelled
            # during the claim, `close_async` still knows which turn to give back.
            await run_file_io(name, _turn.claim, name, turns.claim_token(), turn)
            deadline = min(deadline, time.monotonic() + _turn.TURN_POLL)
        woken = await self.watch_async(name, deadline)
        turns.waited(noticed=woken)
        return woken

    def close(self) -> None:
        """Give back this waiter's turn, if it still has one (retrying a busy turn file)."""
        turns, self.turns = self.turns, None
        if turns is not None and turns.token:
            from lockkit.backends import _turn  # noqa: PLC0415 - shares only

            _turn.give_back(self.name, turns.token, patience=_turn.TURN_TTL)

    async def close_async(self) -> None:
        """`close` without blocking the event loop."""
        turns, self.turns = self.turns, None
        if turns is not None and turns.token:
            from lockkit.backends import _turn  # noqa: PLC0415 - shares only

            await run_file_io(
                self.name, _turn.give_back, self.name, turns.token, patience=_turn.TURN_TTL
            )


def _close_handle(lease: Lease) -> None:
    if isinstance(lease.handle, HeldFile):
        lease.handle.close()


def _token(info: LockInfo) -> str:
    return info.owner.token if info.owner is not None else ""
