"""lockkit.AsyncLock: the same acquisition loop as Lock, awaited; cancellation-safe.

The first tests use scripted in-memory backends (no disk): the sync and async drivers
must issue the same backend requests, and a cancelled attempt or wait must leave
nothing held. The ``fs`` tests then run the real file backends: round trips, per-task
reentrancy, timeouts, events, and the two promises of the asyncio API: a cancelled
waiter leaves no lock file behind, and waiting neither blocks the event loop nor
starts a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest

import lockkit
from lockkit import _calls, _notify, _notify_async
from lockkit._info import Lease, LockInfo, Owner
from lockkit._registry import get_registry
from lockkit.errors import LockNotHeld, LockTimeout
from lockkit.spec import Backend, Capabilities, Waiter, hookimpl
from tests.helpers.cancellation import cancellation_race

FILE_BACKENDS = ["excl", "hardlink", "filelock"]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a test coroutine in a fresh event loop, with a global safety timeout."""

    async def bounded() -> Any:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


class Recorder:
    """A plugin recording lockkit's events; ``contended`` doubles as a signal."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.on_contended: Callable[[], None] | None = None

    @hookimpl
    def lockkit_acquired(self, name: str, backend: str, lease: Lease, waited: float) -> None:
        self.calls.append(("acquired", {"name": name, "lease": lease, "waited": waited}))

    @hookimpl
    def lockkit_released(self, name: str, backend: str, lease: Lease, held: float) -> None:
        self.calls.append(("released", {"name": name, "lease": lease, "held": held}))

    @hookimpl
    def lockkit_contended(self, name: str, backend: str, holder: LockInfo | None) -> None:
        self.calls.append(("contended", {"name": name, "holder": holder}))
        if self.on_contended is not None:
            self.on_contended()

    @hookimpl
    def lockkit_stale_broken(self, name: str, backend: str, info: LockInfo, reason: str) -> None:
        self.calls.append(("stale_broken", {"name": name, "info": info, "reason": reason}))

    @hookimpl
    def lockkit_lost(self, name: str, backend: str, lease: Lease) -> None:
        self.calls.append(("lost", {"name": name, "lease": lease}))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == event]


@pytest.fixture
def recorder() -> Recorder:
    plugin = Recorder()
    get_registry().register(plugin, name="async-recorder")
    return plugin


def signal_when_contended(recorder: Recorder) -> asyncio.Event:
    """An event set (on the running loop) when some acquisition starts to wait."""
    contended = asyncio.Event()
    recorder.on_contended = contended.set
    return contended


# -- one acquisition loop, two drivers ------------------------------------------------------


EXPIRED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class ScriptedCore(Backend):
    """Answers from a script and records every request, for either driver."""

    name: ClassVar[str] = "scripted"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, tries: list[bool], inspects: list[LockInfo | None]) -> None:
        self.tries = list(tries)
        self.inspects = list(inspects)
        self.log: list[str] = []

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        self.log.append("try")
        return Lease(name, self.name, owner) if self.tries.pop(0) else None

    def release(self, lease: Lease) -> bool:
        self.log.append("release")
        return True

    def inspect(self, name: str) -> LockInfo | None:
        self.log.append("inspect")
        return self.inspects.pop(0)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        self.log.append("break")
        return True

    def scripted_wait(self, attempt: int) -> bool:
        self.log.append(f"wait {attempt}")
        # The first wait is "woken by a release", the others end by timing out.
        return sum(entry.startswith("wait") for entry in self.log) == 1


class ScriptedWaiter(Waiter):
    """Spec v2: the waiting requests go through a waiter the backend makes."""

    def __init__(self, backend: ScriptedCore, name: str) -> None:
        super().__init__(name)
        self.backend = backend

    def wait(self, deadline: float) -> bool:
        return self.backend.scripted_wait(self.attempts)

    async def wait_async(self, deadline: float) -> bool:
        return self.wait(deadline)

    def close(self) -> None:
        self.backend.log.append("stop")


class ScriptedBackend(ScriptedCore):
    """The scripted backend, spec v2."""

    def waiter(self, name: str) -> Waiter:
        return ScriptedWaiter(self, name)


class ScriptedV1Backend(ScriptedCore):
    """The scripted backend as spec v1 wrote it: wait/stop_waiting on the backend."""

    def wait(self, name: str, deadline: float, attempt: int) -> bool:
        return self.scripted_wait(attempt)

    def stop_waiting(self, name: str) -> None:
        self.log.append("stop")

    async def wait_async(self, name: str, deadline: float, attempt: int) -> bool:
        return self.wait(name, deadline, attempt)

    async def stop_waiting_async(self, name: str) -> None:
        self.stop_waiting(name)


def _scripted(kind: type[ScriptedCore] = ScriptedBackend) -> ScriptedCore:
    live = LockInfo("n", "scripted", Owner.current())
    stale = LockInfo("n", "scripted", Owner.current(), expires=EXPIRED)
    # Busy; vanished (retry at once); busy and stale (break, retry at once); busy and
    # alive (wait, woken); busy again (no look: wait, polled); busy (look, wait); won.
    return kind(
        tries=[False, False, False, False, False, True],
        inspects=[None, stale, live, live],
    )


EXPECTED_LOG = [
    "try",
    "inspect",
    "try",
    "inspect",
    "break",
    "try",
    "inspect",
    "wait 3",  # the quick retries count as attempts, as they always have
    "try",
    "wait 4",  # woken by a release: the holder is alive, so no second look
    "try",
    "inspect",
    "wait 5",
    "try",
    "stop",
    "release",
]


@pytest.mark.parametrize("kind", [ScriptedBackend, ScriptedV1Backend], ids=["v2", "v1"])
def test_sync_and_async_drivers_make_the_same_requests(
    recorder: Recorder, kind: type[ScriptedCore]
) -> None:
    """Spec v2 (a waiter) and a spec v1 backend (wait/stop_waiting) are driven alike."""
    sync_backend = _scripted(kind)
    if kind is ScriptedV1Backend:
        _calls._PLANS.pop(kind, None)  # noqa: SLF001 - see the warning again
        with pytest.warns(DeprecationWarning, match=r"spec v1's wait\(\)/stop_waiting\(\)"):
            lock = lockkit.Lock("n", backend=sync_backend, timeout=10)
    else:
        lock = lockkit.Lock("n", backend=sync_backend, timeout=10)
    with lock:
        pass
    async_backend = _scripted(kind)

    async def main() -> None:
        async with lockkit.AsyncLock("n", backend=async_backend, timeout=10):
            pass

    run(main())
    assert sync_backend.log == EXPECTED_LOG
    assert async_backend.log == EXPECTED_LOG
    # Both fired the same events: one break, one contention, one acquisition each.
    assert [name for name, _ in recorder.calls] == [
        "stale_broken",
        "contended",
        "acquired",
        "released",
    ] * 2


class HeldBackend(Backend):
    """Always busy, except what the test hands out; the default async methods (threads)."""

    name: ClassVar[str] = "held"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.proceed = threading.Event()
        self.released = threading.Event()
        self.holders: set[str] = set()
        self.guard = threading.Lock()

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        self.entered.set()
        assert self.proceed.wait(10)
        with self.guard:
            self.holders.add(owner.token)
        return Lease(name, self.name, owner)

    def release(self, lease: Lease) -> bool:
        with self.guard:
            self.holders.discard(lease.token)
        self.released.set()
        return True

    def inspect(self, name: str) -> LockInfo | None:
        return None


def test_attempt_in_a_thread_that_wins_after_cancellation_is_released() -> None:
    backend = HeldBackend()

    async def main() -> None:
        lock = lockkit.AsyncLock("n", backend=backend)
        task = asyncio.create_task(lock.acquire(timeout=5))
        assert await asyncio.to_thread(backend.entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not lock.locked
        # Only now does the thread's attempt succeed: its lock must be given back.
        backend.proceed.set()
        assert await asyncio.to_thread(backend.released.wait, 10)

    run(main())
    assert backend.holders == set()


class WonThenStuckBackend(Backend):
    """Busy once, then free; leaving the wait blocks until the test says so."""

    name: ClassVar[str] = "stuck"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self) -> None:
        self.tries = 0
        self.holders: set[str] = set()
        self.stopping: asyncio.Event | None = None
        self.released: asyncio.Event | None = None

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        self.tries += 1
        if self.tries == 1:
            return None
        self.holders.add(owner.token)
        return Lease(name, self.name, owner)

    def release(self, lease: Lease) -> bool:
        self.holders.discard(lease.token)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        return LockInfo(name, self.name, Owner.current())

    async def try_acquire_async(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        return self.try_acquire(name, owner, ttl)

    async def release_async(self, lease: Lease) -> bool:
        result = self.release(lease)
        assert self.released is not None
        self.released.set()
        return result

    async def inspect_async(self, name: str) -> LockInfo | None:
        return self.inspect(name)

    def waiter(self, name: str) -> Waiter:
        return StuckWaiter(self, name)


class StuckWaiter(Waiter):
    """Woken at once; closing blocks until cancelled."""

    def __init__(self, backend: WonThenStuckBackend, name: str) -> None:
        super().__init__(name)
        self.backend = backend

    async def wait_async(self, deadline: float) -> bool:
        return True

    async def close_async(self) -> None:
        assert self.backend.stopping is not None
        self.backend.stopping.set()
        await asyncio.Event().wait()  # until cancelled


def test_cancellation_after_winning_but_before_returning_releases() -> None:
    backend = WonThenStuckBackend()

    async def main() -> None:
        backend.stopping = asyncio.Event()
        backend.released = asyncio.Event()
        lock = lockkit.AsyncLock("n", backend=backend)
        task = asyncio.create_task(lock.acquire(timeout=5))
        await backend.stopping.wait()
        assert backend.holders  # won, and now stuck leaving the wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not lock.locked
        await asyncio.wait_for(backend.released.wait(), 5)

    run(main())
    assert backend.holders == set()


def test_default_wait_async_sleeps_on_the_loop_without_threads() -> None:
    backend = ScriptedCore([], [])  # the default waiter of spec v2: polling

    async def main() -> tuple[bool, int, int]:
        before = threading.active_count()
        loop = asyncio.get_running_loop()
        start = loop.time()
        waiter = backend.waiter("n")
        waiter.attempts = 3
        woken = await waiter.wait_async(loop.time() + 0.03)
        return woken, threading.active_count() - before, round((loop.time() - start) * 1000)

    woken, new_threads, waited_ms = run(main())
    assert woken is False
    assert new_threads == 0
    assert 5 <= waited_ms <= 40  # 8 ms at attempt 3, never past the deadline


def test_import_lockkit_does_not_import_asyncio() -> None:
    code = "import sys, lockkit; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the file backends ------------------------------------------------------------------------


@pytest.fixture(params=FILE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.fs
def test_async_with_holds_and_frees(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "state.lock"

    async def main() -> None:
        lock = lockkit.AsyncLock(path, backend=backend)
        assert not lock.locked
        async with lock:
            assert lock.locked
            assert await lock.is_held()
            info = await lock.inspect()
            assert info is not None
            assert info.owner is not None
            assert info.owner.pid == os.getpid()
        assert not lock.locked
        assert await lock.inspect() is None
        assert not await lock.is_held()

    run(main())
    if backend != "filelock":
        assert os.listdir(tmp_path) == []


@pytest.mark.fs
def test_acquire_returns_a_releasing_context_manager(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "cm.lock"

    async def main() -> None:
        lock = lockkit.AsyncLock(path, backend=backend)
        async with await lock.acquire(timeout=1) as held:
            assert held is lock
            assert lock.locked
        assert not lock.locked
        result = await lock.acquire(blocking=False)
        assert lock.locked
        await lock.release()
        assert result.lock is lock

    run(main())


@pytest.mark.fs
def test_reentrant_within_a_task_and_owned_by_it(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "re.lock"

    async def main() -> None:
        lock = lockkit.AsyncLock(path, backend=backend)
        async with lock:
            async with lock:
                assert lock.locked
            assert lock.locked  # the outer level still holds it

            async def release_elsewhere() -> None:
                await lock.release()

            with pytest.raises(LockNotHeld, match="not held by this task"):
                await asyncio.create_task(release_elsewhere())
            assert lock.locked
        assert not lock.locked
        with pytest.raises(LockNotHeld):
            await lock.release()

    run(main())


@pytest.mark.fs
def test_other_task_sharing_the_object_waits_then_times_out(
    tmp_path: pathlib.Path, backend: str
) -> None:
    path = tmp_path / "shared.lock"

    async def main() -> None:
        lock = lockkit.AsyncLock(path, backend=backend)
        order: list[str] = []
        async with lock:
            with pytest.raises(LockTimeout, match=r"timed out after 0\.05 s") as caught:
                await asyncio.create_task(lock.acquire(timeout=0.05))
            assert caught.value.holder is not None
            assert caught.value.holder.owner is not None
            assert caught.value.holder.owner.pid == os.getpid()

            async def second() -> None:
                async with lock:
                    order.append("second")

            waiter = asyncio.create_task(second())
            await asyncio.sleep(0)
            order.append("first")
        await waiter
        assert order == ["first", "second"]

    run(main())


@pytest.mark.fs
def test_busy_lock_times_out_and_names_the_holder(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "busy.lock"

    async def main() -> None:
        other = lockkit.AsyncLock(path, backend=backend, timeout=0.05)
        async with lockkit.AsyncLock(path, backend=backend):
            with pytest.raises(LockTimeout, match=r"timed out after 0\.05 s"):
                await other.acquire()
            with pytest.raises(LockTimeout) as caught:
                await other.acquire(blocking=False)
            assert caught.value.timeout == 0
            assert f"pid {os.getpid()}" in str(caught.value)
        assert not other.locked

    run(main())


@pytest.mark.fs
def test_object_moves_to_a_later_event_loop(tmp_path: pathlib.Path) -> None:
    lock = lockkit.AsyncLock(tmp_path / "loops.lock", backend="excl")

    async def contend() -> None:
        # Two tasks on one object: the guard waits, which binds it to this loop.
        await asyncio.gather(hold_briefly(), hold_briefly())

    async def hold_briefly() -> None:
        async with lock:
            await asyncio.sleep(0)

    run(contend())
    run(contend())  # a fresh asyncio.run: the guard must not belong to the old loop
    assert not lock.locked


@pytest.mark.fs
def test_cancelled_waiter_leaves_no_lock_behind(
    tmp_path: pathlib.Path, backend: str, recorder: Recorder
) -> None:
    path = tmp_path / "cancel.lock"

    async def main() -> None:
        contended = signal_when_contended(recorder)
        holder = lockkit.AsyncLock(path, backend=backend)
        waiter = lockkit.AsyncLock(path, backend=backend)
        await holder.acquire()
        task = asyncio.create_task(waiter.acquire(timeout=30))
        await contended.wait()  # the waiter is waiting now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert not waiter.locked
        await holder.release()
        assert _notify_async.waiting() == 0  # its inotify registration is gone too
        # Nothing of the waiter's is left: the next attempt succeeds at once.
        fresh = lockkit.AsyncLock(path, backend=backend)
        async with await fresh.acquire(timeout=0):
            assert await fresh.is_held()

    run(main())
    if backend == "filelock":
        assert os.listdir(tmp_path) == ["cancel.lock"]  # the flock file stays, unlocked
        assert lockkit.Lock(path, backend="filelock").inspect() is None
    else:
        assert os.listdir(tmp_path) == []


@pytest.mark.fs
@pytest.mark.parametrize("backend", ["excl", "filelock"])
def test_cancellation_race_while_handing_off(tmp_path: pathlib.Path, backend: str) -> None:
    """Cancel waiters at random moments while the lock changes hands hundreds of times."""
    path = tmp_path / "race.lock"
    stats: dict[str, int] = {}

    async def main() -> None:
        stats.update(
            await cancellation_race(
                lambda: lockkit.AsyncLock(path, backend=backend),
                acquisitions=400,
                cancellations=100,
                max_pause=0.003,
            )
        )
        assert _notify_async.waiting() == 0
        async with await lockkit.AsyncLock(path, backend=backend).acquire(timeout=0):
            pass

    run(main())
    assert stats["max_holders"] == 1
    assert stats["holders"] == 0
    assert stats["acquired"] >= 400
    assert stats["cancelled"] >= 100
    expected = ["race.lock"] if backend == "filelock" else []
    assert sorted(os.listdir(tmp_path)) == expected
    if backend == "filelock":
        assert lockkit.Lock(path, backend="filelock").inspect() is None


@pytest.mark.fs
def test_waiting_neither_blocks_the_loop_nor_starts_threads(
    tmp_path: pathlib.Path, backend: str, recorder: Recorder
) -> None:
    path = tmp_path / "ticker.lock"

    async def main() -> tuple[int, set[int], int, float]:
        contended = signal_when_contended(recorder)
        holder = lockkit.AsyncLock(path, backend=backend)
        waiter = lockkit.AsyncLock(path, backend=backend)
        await holder.acquire()
        baseline = threading.active_count()
        ticks = 0
        counts: set[int] = set()
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                counts.add(threading.active_count())
                await asyncio.sleep(0.005)

        async def wait_for_lock() -> float:
            async with waiter:
                return asyncio.get_running_loop().time()

        ticking = asyncio.create_task(ticker())
        waiting = asyncio.create_task(wait_for_lock())
        await contended.wait()
        start = ticks
        await asyncio.sleep(0.5)  # the holder keeps the lock for half a second
        ticked = ticks - start
        released_at = asyncio.get_running_loop().time()
        await holder.release()
        acquired_at = await waiting
        done.set()
        await ticking
        return ticked, counts, baseline, acquired_at - released_at

    ticked, counts, baseline, handoff = run(main())
    # 100 ticks if nothing else ran; a wait that blocked the loop would allow a handful.
    assert ticked >= 30
    assert counts == {baseline}  # no thread was started while waiting
    assert handoff < 0.25  # woken by the release, not by the end of a long poll


def _inotify_descriptors() -> int:
    fds = "/proc/self/fd"
    return sum(1 for fd in os.listdir(fds) if _readlink(f"{fds}/{fd}") == "anon_inode:inotify")


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.mark.fs
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_the_loops_inotify_descriptor_is_closed_with_the_loop(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fd.lock"
    before = _inotify_descriptors()

    async def main() -> int:
        holder = lockkit.AsyncLock(path, backend="excl")
        await holder.acquire()
        waiters = [lockkit.AsyncLock(path, backend="excl") for _ in range(3)]
        with pytest.raises(LockTimeout):
            await asyncio.gather(*(waiter.acquire(timeout=0.05) for waiter in waiters))
        await holder.release()
        return _inotify_descriptors()

    during = run(main())
    if _notify.available():
        assert during == before + 1  # one for the loop, whatever the number of waiters
    assert _inotify_descriptors() == before


@pytest.mark.fs
def test_events_fire_for_asynclock(tmp_path: pathlib.Path, recorder: Recorder) -> None:
    path = tmp_path / "events.lock"
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(f'{{"pid": {dead.pid}, "token": "old"}}')

    async def main() -> Lease | None:
        lock = lockkit.AsyncLock(path, backend="excl", timeout=1)
        async with lock, lock:  # breaks the stale lock; the reentrant level fires nothing
            lease = lock.lease
            with pytest.raises(LockTimeout):
                await lockkit.AsyncLock(path, backend="excl").acquire(timeout=0.05)
        return lease

    lease = run(main())
    assert [name for name, _ in recorder.calls] == [
        "stale_broken",
        "acquired",
        "contended",
        "released",
    ]
    [broken] = recorder.named("stale_broken")
    assert broken["info"].owner.pid == dead.pid
    [acquired] = recorder.named("acquired")
    assert acquired["lease"] is lease
    [contended] = recorder.named("contended")
    assert contended["holder"].owner.pid == os.getpid()
    [released] = recorder.named("released")
    assert released["lease"] is lease
    assert released["held"] >= 0


@pytest.mark.fs
def test_lost_lock_is_reported_by_is_held(tmp_path: pathlib.Path, recorder: Recorder) -> None:
    path = tmp_path / "lost.lock"
    lost: list[lockkit.AsyncLock] = []

    async def main() -> lockkit.AsyncLock:
        lock = lockkit.AsyncLock(path, backend="excl", on_lost=lost.append)
        await lock.acquire()
        path.unlink()  # someone removed it...
        other = lockkit.Lock(path, backend="excl")
        other.acquire()  # ...and took it
        assert not await lock.is_held()
        await lock.release()  # leaves the new holder's lock alone
        assert other.is_held()
        other.release()
        return lock

    lock = run(main())
    assert lost == [lock]
    [event] = recorder.named("lost")
    # A lost lock is not reported as released; only the other holder's release is.
    [released] = recorder.named("released")
    assert released["lease"] is not event["lease"]
    assert released["lease"].token != event["lease"].token


@pytest.mark.fs
def test_sync_and_async_holders_exclude_each_other(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "mixed.lock"

    async def main() -> None:
        with lockkit.Lock(path, backend=backend), pytest.raises(LockTimeout):
            await lockkit.AsyncLock(path, backend=backend).acquire(timeout=0.02)
        async with lockkit.AsyncLock(path, backend=backend):
            with pytest.raises(LockTimeout):
                lockkit.Lock(path, backend=backend).acquire(timeout=0)

    run(main())


def test_repr_shows_no_token(tmp_path: pathlib.Path) -> None:
    lock = lockkit.AsyncLock(tmp_path / "r.lock", backend="excl")

    async def main() -> str:
        async with lock:
            return repr(lock)

    held = run(main())
    assert held.startswith("<lockkit.AsyncLock ")
    assert "locked" in held
    assert lock.lease is None
    assert "unlocked" in repr(lock)
