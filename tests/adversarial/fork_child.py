"""Run by test_fork.py in a fresh interpreter: hold a lock, fork, let the child leave.

Usage: ``python fork_child.py KIND BACKEND NAME MODE``. Prints one JSON line with what
the parent saw after the child was gone. A child that leaves must leave the parent's
lock alone, however it leaves (the interpreter's own exit path included, so this must
be a real process, not a fork of the test runner).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Callable

import lockkit
from tests.helpers.processes import free_now

KIND, BACKEND, NAME, MODE = sys.argv[1:5]


def child_leaves(leave_block: Callable[[], None]) -> None:
    """In the child: leave the way MODE says. Never returns to the parent's checks."""
    if MODE == "os._exit":
        os._exit(0)
    if MODE == "sys.exit":
        sys.exit(0)  # unwinds the `with`, then the interpreter's exit path
    # "with": leave the block, then exit normally (finalizers and atexit run)
    # "finalizer": the lock is not in a block; drop it so __del__ runs
    leave_block()


def someone_else_can_take() -> bool:
    return free_now(NAME, BACKEND)


def report(pid: int, *, held: bool) -> None:
    _, status = os.waitpid(pid, 0)
    result = {
        "child_status": status,
        "held_after_child": held,
        "taken_by_another": someone_else_can_take(),
    }
    print(json.dumps(result), flush=True)


class _Leave(Exception):
    pass


def raise_leave() -> None:
    raise _Leave


def sync_lock() -> None:
    lock = lockkit.Lock(NAME, backend=BACKEND, ttl=5)
    if MODE == "finalizer":
        lock.acquire()
        pid = os.fork()
        if pid == 0:
            del lock
            gc.collect()
            return  # normal interpreter exit in the child
        report(pid, held=lock.is_held())
        lock.release()
        return
    try:
        with lock:
            pid = os.fork()
            if pid == 0:
                child_leaves(raise_leave)
            report(pid, held=lock.is_held())
    except _Leave:
        assert os.getpid() != PARENT
        assert not lock.locked
        return


def rw_lock() -> None:
    rw = lockkit.ReadWriteLock(NAME, backend=BACKEND, ttl=5)
    try:
        with rw.write():
            pid = os.fork()
            if pid == 0:
                child_leaves(raise_leave)
            probe = lockkit.ReadWriteLock(NAME, backend=BACKEND)
            _, status = os.waitpid(pid, 0)
            try:
                probe.read(timeout=0).release()
                taken = True
            except lockkit.LockTimeout:
                taken = False
            print(
                json.dumps(
                    {"child_status": status, "held_after_child": True, "taken_by_another": taken}
                ),
                flush=True,
            )
    except _Leave:
        return


async def async_lock() -> None:
    lock = lockkit.AsyncLock(NAME, backend=BACKEND, ttl=5)
    try:
        async with lock:
            pid = os.fork()
            if pid == 0:
                child_leaves(raise_leave)
            _, status = os.waitpid(pid, 0)  # noqa: ASYNC222 - nothing else runs meanwhile
            held = await lock.is_held()
            print(
                json.dumps(
                    {
                        "child_status": status,
                        "held_after_child": held,
                        "taken_by_another": someone_else_can_take(),
                    }
                ),
                flush=True,
            )
    except (_Leave, SystemExit):
        assert not lock.locked
        # The child has left the block through lockkit (the point of the test). It must
        # not go on to close the event loop it shares with its parent: asyncio does not
        # support that (the loop's epoll instance is shared across fork, and closing it
        # here unregisters the parent's wake-up pipe, hanging the parent's shutdown).
        sys.stdout.flush()
        os._exit(0)


PARENT = os.getpid()
if KIND == "Lock":
    sync_lock()
elif KIND == "ReadWriteLock":
    rw_lock()
else:
    asyncio.run(async_lock())
