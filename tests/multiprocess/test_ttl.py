"""TTL locks: renewal keeps a live holder's lock; a paused holder loses it, safely."""

from __future__ import annotations

import pathlib
import threading

import pytest

import lockkit
from tests.helpers.paused import take_over_from_paused_holder

pytestmark = [pytest.mark.multiprocess]

TTL_BACKENDS = ["excl", "hardlink"]


@pytest.mark.parametrize("backend", TTL_BACKENDS)
def test_paused_holder_loses_lock_and_leaves_new_holder_alone(
    tmp_path: pathlib.Path, backend: str
) -> None:
    path = tmp_path / "ttl.lock"
    waiter, _ = take_over_from_paused_holder(str(path), backend)
    waiter.release()
    assert not path.exists()


@pytest.mark.parametrize("backend", TTL_BACKENDS)
def test_renewal_keeps_a_live_holder(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "renewed.lock"
    holder = lockkit.Lock(path, backend=backend, ttl=0.3)
    holder.acquire()
    first = holder.inspect()
    assert first is not None
    assert first.expires is not None
    with pytest.raises(lockkit.LockTimeout):
        # Five ttl periods: without renewal this waiter would break the lock.
        lockkit.Lock(path, backend=backend).acquire(timeout=1.5)
    later = holder.inspect()
    assert later is not None
    assert later.expires is not None
    assert later.expires > first.expires
    assert holder.is_held()
    holder.release()


def test_is_held_detects_a_broken_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.lock"
    fired = threading.Event()
    lock = lockkit.Lock(path, on_lost=lambda _lock: fired.set())
    lock.acquire()
    path.unlink()  # e.g. `lockkit break --force` by an operator
    other = lockkit.Lock(path)
    other.acquire()
    assert not lock.is_held()
    assert fired.is_set()
    lock.release()  # must not remove the other holder's lock
    assert other.is_held()
    other.release()


def test_ttl_must_be_positive(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"ttl must be a number of seconds >= 0\.1"):
        lockkit.Lock(tmp_path / "x.lock", ttl=0)
