"""Whatever a backend raises, a CLI command prints one line and exits with a status.

A plugin backend may raise its store's own exceptions (``sqlite3.OperationalError``,
``RuntimeError``) from any call; the command line names the backend and the error and
never shows a traceback.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
from typing import ClassVar

import pytest

from lockkit._info import Lease, LockInfo, Owner
from lockkit._registry import get_registry
from lockkit._value import evolve
from lockkit.cli import EXIT_SOFTWARE, EXIT_UNAVAILABLE, main
from lockkit.spec import Backend, Support, hookimpl
from tests.helpers.memory_backend import MemoryBackend

ERRORS = {
    "sqlite3": sqlite3.OperationalError("database is locked"),
    "RuntimeError": RuntimeError("the store is on fire"),
}


def dead_owner() -> Owner:
    child = subprocess.Popen(["true"])
    child.wait()
    return evolve(Owner.current(), pid=child.pid, start_time=None)


class Broken(MemoryBackend):
    """A plugin backend whose calls raise ``error`` where ``failing`` says."""

    name: ClassVar[str] = "broken"
    error: ClassVar[Exception] = RuntimeError()
    failing: ClassVar[frozenset[str]] = frozenset()
    held: ClassVar[dict[str, Owner]] = {}

    def _maybe_fail(self, call: str) -> None:
        if call in self.failing:
            raise self.error

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        self._maybe_fail("try_acquire")
        return super().try_acquire(name, owner, ttl, shared=shared)

    def inspect(self, name: str) -> LockInfo | None:
        self._maybe_fail("inspect")
        owner = self.held.get(name)
        return None if owner is None else LockInfo(name, self.name, owner)

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        self._maybe_fail("break_lock")
        return self.held.pop(name, None) is not None

    @classmethod
    def probe(cls, location: str) -> Support:
        if "probe" in cls.failing:
            raise cls.error
        return Support(ok=True, reason="always")


class Plugin:
    @hookimpl
    def lockkit_register_backends(self) -> list[type[Backend]]:
        return [Broken]


@pytest.fixture(params=list(ERRORS), ids=list(ERRORS))
def error(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Exception:
    get_registry().register(Plugin(), name="broken-plugin")
    raised = ERRORS[request.param]
    monkeypatch.setattr(Broken, "error", raised)
    monkeypatch.setattr(Broken, "held", {})
    return raised


def fail(monkeypatch: pytest.MonkeyPatch, *calls: str) -> None:
    monkeypatch.setattr(Broken, "failing", frozenset(calls))


def one_clear_line(capsys: pytest.CaptureFixture[str], error: Exception) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    [line] = lines
    assert line.startswith("lockkit: error: ")
    assert "backend 'broken'" in line  # names the backend
    assert f"{type(error).__name__}: {error}" in line
    return line


@pytest.mark.parametrize("selected_by", ["--backend", "LOCKKIT_BACKEND"])
def test_status_when_inspect_raises(
    error: Exception,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    selected_by: str,
) -> None:
    fail(monkeypatch, "inspect")
    argv = ["status", "jobs/x"]
    if selected_by == "--backend":
        argv += ["--backend", "broken"]
    else:
        monkeypatch.setenv("LOCKKIT_BACKEND", "broken")
    assert main(argv) == EXIT_UNAVAILABLE
    line = one_clear_line(capsys, error)
    assert "reading lock 'jobs/x' failed in backend 'broken'" in line


def test_break_when_inspect_raises(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fail(monkeypatch, "inspect")
    assert main(["break", "x", "--backend", "broken"]) == EXIT_UNAVAILABLE
    one_clear_line(capsys, error)


def test_break_when_break_lock_raises(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Broken.held["x"] = dead_owner()
    fail(monkeypatch, "break_lock")
    assert main(["break", "x", "--backend", "broken"]) == EXIT_UNAVAILABLE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "breaking lock 'x' failed in backend 'broken'" in captured.err
    assert f"{type(error).__name__}: {error}" in captured.err


def test_break_of_a_stale_plugin_lock_works(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    Broken.held["x"] = dead_owner()
    assert main(["break", "x", "--backend", "broken"]) == 0
    out = capsys.readouterr().out
    assert "chosen   broken (from --backend)" in out
    assert "STALE (rule pid-dead)" in out
    assert out.rstrip().endswith("removed")
    assert "x" not in Broken.held


@pytest.mark.parametrize("call", ["try_acquire", "probe"])
def test_doctor_reports_a_raising_backend_as_its_failed_check(
    error: Exception,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    call: str,
) -> None:
    fail(monkeypatch, call)
    argv = ["doctor", str(tmp_path), "--backend", "broken", "--processes", "1"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert f"{type(error).__name__}: {error}" in captured.out
    assert "verdict: locks do NOT work here" in captured.out


def test_backends_reports_a_raising_probe(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fail(monkeypatch, "probe")
    assert main(["backends", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["broken"]["available"] is False
    assert rows["broken"]["reason"] == f"the probe raised {type(error).__name__}: {error}"


def test_an_unexpected_error_is_one_line_and_status_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(args: object) -> int:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("lockkit.cli._backends.run_backends", explode)
    assert main(["backends"]) == EXIT_SOFTWARE
    captured = capsys.readouterr()
    assert captured.err == (
        "lockkit: error: unexpected error (a bug in lockkit, please report it): "
        "ZeroDivisionError: oops\n"
    )
