"""Waiting for a lock file's release with inotify (`lockkit._notify.wait_for_event`).

The waits of one acquisition keep their watch armed between them (no re-arming, no
draining, no re-check of the lock), so these tests pin what that must not break: a
release between two waits still wakes the second, and a new acquisition does not take
an earlier acquisition's events for its own.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time

import pytest

from lockkit import _notify

pytestmark = [
    pytest.mark.fs,
    pytest.mark.skipif(not _notify.available(), reason="inotify is Linux-only"),
]

REMOVED = _notify.IN_DELETE | _notify.IN_MOVED_FROM


def _wait(path: pathlib.Path, timeout: float, attempt: int) -> bool | None:
    return _notify.wait_for_event(
        str(path.parent), path.name, REMOVED, path.exists, timeout, attempt=attempt
    )


def _wait_through_release(path: pathlib.Path, attempt: int) -> bool | None:
    """Wait while another thread releases ``path`` (removes it), before or during the wait."""
    releaser = threading.Thread(target=os.unlink, args=(path,))
    releaser.start()
    try:
        return _wait(path, 10.0, attempt=attempt)
    finally:
        releaser.join(timeout=10)


def test_release_between_two_waits_wakes_the_second(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "held.lock"
    lock.write_bytes(b"holder 1")
    assert _wait(lock, 0.01, attempt=1) is False  # busy all along
    # Between the waits (while the waiter made its failed attempt): the holder releases
    # and another process takes the lock again. The waiter must still be told.
    lock.unlink()
    lock.write_bytes(b"holder 2")
    assert _wait(lock, 10.0, attempt=2) is True


def test_release_during_a_wait_wakes_it(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "held.lock"
    lock.write_bytes(b"holder")
    assert _wait(lock, 0.01, attempt=1) is False
    # The watch has stayed armed since the first wait, so the release may land before
    # or during the second: either way that wait must return for it.
    assert _wait_through_release(lock, attempt=2) is True
    assert not lock.exists()


def test_new_acquisition_ignores_earlier_events(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "held.lock"
    lock.write_bytes(b"holder 1")
    assert _wait(lock, 0.01, attempt=1) is False
    lock.unlink()
    lock.write_bytes(b"holder 2")
    # A new acquisition (attempt 1 again): the queued removal is history, and the lock
    # is held, so this wait times out instead of waking for nothing.
    assert _wait(lock, 0.05, attempt=1) is False


def test_wait_for_another_file_rearms(tmp_path: pathlib.Path) -> None:
    first = tmp_path / "a.lock"
    second = tmp_path / "b.lock"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    assert _wait(first, 0.01, attempt=1) is False
    first.unlink()  # an event for a.lock, not for b.lock
    # attempt=2 but for another file: not a continuation, so the lock is re-checked
    # (b.lock is held) and a.lock's event does not wake it.
    assert _wait(second, 0.05, attempt=2) is False


@pytest.mark.parametrize("how", ["renamed", "removed"])
def test_replaced_directory_is_watched_again(tmp_path: pathlib.Path, how: str) -> None:
    directory = tmp_path / "sessions"
    directory.mkdir()
    lock = directory / "held.lock"
    lock.write_bytes(b"holder 1")
    assert _wait(lock, 0.01, attempt=1) is False
    # The directory is replaced while the acquisition goes on (a deployment swapping
    # it, a cleanup removing it): the watch on the old one would never fire again.
    if how == "renamed":
        directory.rename(tmp_path / "sessions.old")
    else:
        lock.unlink()
        directory.rmdir()
    directory.mkdir()
    lock.write_bytes(b"holder 2")
    # The armed wait hears that its directory went away, and wakes to re-check...
    assert _wait(lock, 10.0, attempt=2) is True
    # ...and the next wait watches the new directory: its release wakes it.
    assert _wait_through_release(lock, attempt=3) is True


# -- the same rules when a Waiter, not an attempt number, tells the acquisitions apart --


def test_a_waiters_watch_stays_armed_between_its_waits(tmp_path: pathlib.Path) -> None:
    """A `WatchWaiter` keeps its watch across its failed attempts, whatever their number."""
    from lockkit.backends._file import FileWaiter

    lock = tmp_path / "held.lock"
    lock.write_bytes(b"holder 1")
    waiter = FileWaiter(str(lock))
    waiter.attempts = 1
    assert waiter.wait(time.monotonic() + 0.01) is False
    lock.unlink()  # released and taken again between the waits
    lock.write_bytes(b"holder 2")
    waiter.attempts = 5  # quick retries in between do not matter: same waiter
    assert waiter.wait(time.monotonic() + 10) is True
    # Another acquisition's waiter does not take that event for its own.
    other = FileWaiter(str(lock))
    other.attempts = 2
    assert other.wait(time.monotonic() + 0.05) is False
    waiter.close()
    other.close()


def test_a_waiter_sees_a_release_before_its_first_wait(tmp_path: pathlib.Path) -> None:
    """Released between the failed attempt and the arming: the re-check catches it."""
    from lockkit.backends._file import FileWaiter

    waiter = FileWaiter(str(tmp_path / "gone.lock"))
    waiter.attempts = 1
    started = time.monotonic()
    assert waiter.wait(started + 10) is True
    assert time.monotonic() - started < 1
