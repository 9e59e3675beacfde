"""Issue 15 findings that need no second user: breakers, long names, absurd pids.

The hostile-user versions (a real unprivileged user plants the files) live in
``tests/adversarial``.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import pytest

import lockkit
from lockkit import cli
from lockkit._info import process_identity, read_start_time
from lockkit.backends import _breaker, _file, _paths, _turn
from lockkit.backends._file import BREAKER_MAX_AGE, aux_path, breaker_path
from lockkit.errors import InvalidLockName, LockTimeout
from tests.fs.test_stale import dead_pid, me, plant

pytestmark = pytest.mark.fs

FILE_BACKENDS = ["excl", "hardlink"]
ALL_BACKENDS = ["excl", "hardlink", "filelock"]
FUTURE_BREAKER = {"pid": 1, "createdAt": "2999-01-01T00:00:00Z"}


@pytest.fixture(params=FILE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- item 7: breakers expire by their own observed age -------------------------------


def test_a_breaker_from_the_future_delays_recovery_only_by_its_observed_age(
    tmp_path: pathlib.Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_breaker, "BREAKER_MAX_AGE", 0.5)
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    plant(pathlib.Path(breaker_path(str(path))), FUTURE_BREAKER)
    start = time.monotonic()
    lock = lockkit.Lock(path, backend=backend)
    lock.acquire(timeout=10)
    elapsed = time.monotonic() - start
    lock.release()
    assert 0.5 <= elapsed < 5
    assert os.listdir(tmp_path) == []


def test_lockkit_break_clears_a_breaker_from_the_future_once_it_is_old(
    tmp_path: pathlib.Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.lock"
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    plant(pathlib.Path(breaker_path(str(path))), FUTURE_BREAKER)
    assert cli.main(["break", str(path), "--backend", backend]) == 1  # young: it waits
    monkeypatch.setattr(_breaker, "BREAKER_MAX_AGE", 0.0)  # as if 30 s had passed
    assert cli.main(["break", str(path), "--backend", backend]) == 0
    assert os.listdir(tmp_path) == []


def test_observed_age_ignores_the_payload_and_a_future_ctime(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.lock.break"
    plant(path, FUTURE_BREAKER)
    st = os.stat(path)
    assert _file.observed_age(str(path), st) < 1
    future = os.stat_result((*st[:9], st.st_ctime + 10**9))  # ctime from the future
    assert _file.observed_age(str(path), future) < 1
    old = os.stat_result((*st[:9], st.st_ctime - 2 * BREAKER_MAX_AGE))
    assert _file.observed_age(str(path), old) >= BREAKER_MAX_AGE


def test_a_provably_held_breaker_is_never_cleared_by_age(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A release paused inside the breaker (this process, alive, same user): breaking
    # past it would let the paused release remove the next holder's lock.
    monkeypatch.setattr(_breaker, "BREAKER_MAX_AGE", 0.0)
    path = tmp_path / "a.lock.break"
    ident = process_identity()
    payload = {"pid": os.getpid(), **me(), "startTime": read_start_time(os.getpid())}
    plant(path, {**payload, "backend": "breaker", "token": "b", "host": ident.host})
    found = _file.read_lock_file(str(path))
    assert found is not None
    assert not _file.breaker_clearable(str(path), _file.decode_payload(found[0]), found[1])
    # The same breaker naming a dead pid is cleared at once.
    plant(path, {**payload, "pid": dead_pid(), "backend": "breaker", "token": "b"})
    found = _file.read_lock_file(str(path))
    assert found is not None
    assert _file.breaker_clearable(str(path), _file.decode_payload(found[0]), found[1])


# -- item 8: long names ----------------------------------------------------------------


@pytest.mark.parametrize("size", [250, 254, 255])
def test_a_stale_lock_with_a_long_name_is_recovered(
    tmp_path: pathlib.Path, backend: str, size: int
) -> None:
    path = tmp_path / ("x" * (size - 5) + ".lock")
    plant(path, {"pid": dead_pid(), **me(), "token": "t"})
    lock = lockkit.Lock(path, backend=backend)
    lock.acquire(timeout=5)
    lock.release()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
@pytest.mark.parametrize("size", [250, 255])
def test_long_names_lock_on_every_backend(
    tmp_path: pathlib.Path, backend_name: str, size: int
) -> None:
    path = tmp_path / ("é" * ((size - 5) // 2) + "x" * ((size - 5) % 2) + ".lock")
    assert len(os.fsencode(path.name)) == size
    with lockkit.Lock(path, backend=backend_name, timeout=5):
        pass


def test_auxiliary_names_fit_and_are_the_same_for_every_process(tmp_path: pathlib.Path) -> None:
    for size in range(240, 256):
        name = str(tmp_path / ("é" * (size // 2) + "y" * (size % 2)))
        for path in (breaker_path(name), _turn.turn_path(name), aux_path(name, ".x" * 20)):
            assert len(os.fsencode(os.path.basename(path))) <= 255
            os.fsencode(os.path.basename(path)).decode("utf-8")  # cut on a character
        assert breaker_path(name) == breaker_path(name)
        assert breaker_path(name) != _turn.turn_path(name)
    assert breaker_path(str(tmp_path / "short.lock")) == str(tmp_path / "short.lock.break")


def test_a_smaller_name_limit_is_respected(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "pathconf", lambda *_: 143)  # eCryptfs
    monkeypatch.setattr(_paths, "_NAME_MAX_OF", {})
    name = str(tmp_path / ("z" * 140))
    assert len(os.path.basename(breaker_path(name))) <= 143
    with pytest.raises(InvalidLockName, match="limit there is 143 bytes"):
        lockkit.Lock(tmp_path / ("z" * 144), backend="excl")


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
@pytest.mark.parametrize("shape", ["one-name", "deep", "name-256"])
def test_too_long_paths_are_refused_with_invalid_lock_name(
    tmp_path: pathlib.Path, backend_name: str, shape: str
) -> None:
    path = {
        "one-name": str(tmp_path / ("n" * 10_000)),
        "deep": str(tmp_path.joinpath(*["d" * 200] * 50, "a.lock")),
        "name-256": str(tmp_path / ("n" * 256)),
    }[shape]
    with pytest.raises(InvalidLockName, match="too long"):
        lockkit.Lock(path, backend=backend_name).acquire(timeout=0)


# -- item 9: pids no process can have -------------------------------------------------

ABSURD_PIDS = [2**63, 2**31, 99999999999999999999, -5, 0]


@pytest.mark.parametrize("pid", ABSURD_PIDS)
def test_an_absurd_pid_is_a_malformed_payload(
    tmp_path: pathlib.Path, backend: str, pid: int
) -> None:
    path = tmp_path / "a.lock"
    plant(path, f'{{"pid": {pid}, "token": "t"}}')
    info = lockkit.Lock(path, backend=backend).inspect()
    assert info is not None
    assert info.owner is None
    assert info.problem == "lock file has no valid pid"
    with pytest.raises(LockTimeout, match="unreadable lock"):  # young: may be a write
        lockkit.Lock(path, backend=backend).acquire(timeout=0)
    plant(path, f'{{"pid": {pid}, "token": "t"}}', age=60)
    lock = lockkit.Lock(path, backend=backend)
    lock.acquire(timeout=0)  # old: the malformed-payload rule breaks it
    lock.release()


@pytest.mark.parametrize("command", ["status", "break"])
def test_the_cli_reports_an_absurd_pid_without_a_traceback(
    tmp_path: pathlib.Path,
    backend: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "a.lock"
    plant(path, '{"pid": 99999999999999999999}', age=60)
    code = cli.main([command, str(path), "--backend", backend, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["stale"] is True
    assert report["rule"] == "malformed"
    assert report.get("removed", True) is True
