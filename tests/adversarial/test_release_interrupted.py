"""A release that does not complete leaves the lock object truthful and usable.

Seen by an attacker before the fix: a FIFO planted at ``<lock>.break`` made a TTL
release raise `InvalidLockName`; the object kept its guard and holder but dropped the
lease, so its next ``with lock:`` returned at once *without the lock* (40 of 190 updates
lost). And a cancelled `AsyncLock.release` left the object's guard taken: every later
task on it timed out although the lock file was gone.
"""

from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

import lockkit


def test_a_release_stopped_by_a_fifo_keeps_the_lock_and_can_be_retried(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "state.lock"
    breaker = tmp_path / "state.lock.break"
    lock = lockkit.Lock(path, backend="excl", ttl=30)
    lock.acquire()
    os.mkfifo(breaker)
    with pytest.raises(lockkit.InvalidLockName):
        lock.release()
    assert lock.locked  # the lease was kept: it is still ours
    assert lock.is_held()
    breaker.unlink()
    lock.release()  # the retry frees it
    assert not lock.locked
    assert not path.exists()
    # The object works normally afterwards: it really takes the lock again.
    with lock:
        assert lock.is_held()
        other = lockkit.Lock(path, backend="excl")
        with pytest.raises(lockkit.LockTimeout):
            other.acquire(timeout=0)


def test_a_cancelled_async_release_completes_and_frees_the_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.lock"
    breaker = tmp_path / "state.lock.break"

    async def scenario() -> None:
        lock = lockkit.AsyncLock(path, backend="excl", ttl=30)
        releasing = asyncio.Event()

        async def holder() -> None:
            await lock.acquire()
            breaker.write_text("{}")  # young, not provably held: the release waits for it
            releasing.set()  # set without yielding: the release starts before main resumes
            await lock.release()

        task = asyncio.create_task(holder())
        await releasing.wait()
        assert not task.done()  # suspended inside release(), waiting for the breaker
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        breaker.unlink()  # the release going on in the background can now finish
        # Another task of the same object gets the lock: the guard was given back.
        async with asyncio.timeout(15):
            await lock.acquire(timeout=10)
        assert await lock.is_held()
        await lock.release()
        assert not path.exists()

    asyncio.run(scenario())
