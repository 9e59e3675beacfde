"""lockkit._breaking: the one function that judges, breaks, logs and fires the event."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from typing import ClassVar

import pytest

from lockkit._breaking import break_stale
from lockkit._calls import failure
from lockkit._info import LockInfo, Owner
from lockkit._registry import get_registry
from lockkit._value import evolve
from lockkit.errors import BackendUnavailable
from lockkit.spec import hookimpl
from tests.helpers.memory_backend import MemoryBackend


def dead_owner() -> Owner:
    """This machine view, a pid that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return evolve(Owner.current(), pid=child.pid, start_time=None)


class BreakableBackend(MemoryBackend):
    """MemoryBackend that can break locks, counting how often it was asked."""

    name: ClassVar[str] = "breakable"

    def __init__(self, url: str | None = None) -> None:
        super().__init__(url)
        self.declines = 0  # how many break_lock calls answer False first
        self.calls: list[LockInfo] = []
        self.declined = 0

    def hold(self, owner: Owner) -> LockInfo:
        self._held["x"] = owner
        info = self.inspect("x")
        assert info is not None
        return info

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        self.calls.append(expected)
        if self.declined < self.declines:
            self.declined += 1
            return False
        if self._held.get(name) is not expected.owner:
            return False
        del self._held[name]
        return True


class Recorder:
    def __init__(self) -> None:
        self.broken: list[tuple[str, str, LockInfo, str]] = []

    @hookimpl
    def lockkit_stale_broken(self, name: str, backend: str, info: LockInfo, reason: str) -> None:
        self.broken.append((name, backend, info, reason))


@pytest.fixture
def recorder() -> Recorder:
    plugin = Recorder()
    get_registry().register(plugin, name="recorder")
    return plugin


def test_a_dead_holder_is_broken_logged_and_reported_once(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    backend = BreakableBackend()
    info = backend.hold(dead_owner())
    caplog.set_level(logging.INFO, logger="lockkit")
    outcome = break_stale(backend, "x", info, registry=get_registry())
    assert outcome.broken
    assert not outcome.forced
    assert outcome.verdict is not None
    assert outcome.verdict.rule == "pid-dead"
    assert backend.inspect("x") is None
    assert [(n, b, r) for n, b, _, r in recorder.broken] == [
        ("x", "breakable", outcome.verdict.reason)
    ]
    assert "broke stale lock x" in caplog.text


def test_a_live_holder_is_refused_without_asking_the_backend(recorder: Recorder) -> None:
    backend = BreakableBackend()
    info = backend.hold(Owner.current())
    outcome = break_stale(backend, "x", info, registry=get_registry())
    assert not outcome.broken
    assert outcome.verdict is not None
    assert not outcome.verdict.stale
    assert backend.calls == []
    assert recorder.broken == []


def test_force_breaks_a_live_holder_and_says_so(recorder: Recorder) -> None:
    backend = BreakableBackend()
    info = backend.hold(Owner.current())
    outcome = break_stale(backend, "x", info, registry=get_registry(), force=True)
    assert outcome.broken
    assert outcome.forced
    [(_, _, _, reason)] = recorder.broken
    assert reason.startswith("broken by force although holder pid")


def test_a_free_lock_is_not_broken(recorder: Recorder) -> None:
    outcome = break_stale(BreakableBackend(), "x", None, registry=get_registry())
    assert outcome.free
    assert not outcome.broken
    assert recorder.broken == []


def test_declined_then_unchanged_is_not_broken_and_fires_nothing(recorder: Recorder) -> None:
    backend = BreakableBackend()
    backend.declines = 5
    info = backend.hold(dead_owner())
    outcome = break_stale(backend, "x", info, registry=get_registry())
    assert not outcome.broken
    assert outcome.info == info
    assert len(backend.calls) == 1  # same identity on the re-read: no second attempt
    assert recorder.broken == []


@pytest.mark.parametrize(
    "error",
    [RuntimeError("store is on fire"), sqlite3.OperationalError("database is locked")],
    ids=["RuntimeError", "sqlite3"],
)
def test_whatever_the_backend_raises_becomes_backend_unavailable(error: Exception) -> None:
    class Failing(BreakableBackend):
        def break_lock(self, name: str, expected: LockInfo) -> bool:
            raise error

    backend = Failing()
    info = backend.hold(dead_owner())
    with pytest.raises(BackendUnavailable) as caught:
        break_stale(backend, "x", info)
    message = str(caught.value)
    assert message.startswith("breaking lock 'x' failed in backend 'breakable' (from module ")
    assert type(error).__name__ in message
    assert str(error) in message
    assert caught.value.__cause__ is error


def test_an_os_error_keeps_its_errno() -> None:
    exc = failure(
        PermissionError(13, "Permission denied", "/x/a.lock"), "reading", "n", BreakableBackend()
    )
    assert isinstance(exc, BackendUnavailable)
    assert exc.errno == 13
    # A plugin's backend is named with where it comes from; lockkit's own only by name.
    assert str(exc).startswith("[Errno 13] reading lock 'n' (breakable from module tests.")
    assert str(exc).endswith(") failed: Permission denied (/x/a.lock)")
