"""The same clear answer on every path: a missing directory, a file where a directory
should be, and a reader that went away (``lockkit doctor | head -1``)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys

import pytest

import lockkit
from lockkit.cli import main

LOCKKIT = [sys.executable, "-m", "lockkit"]
SELECTIONS = ["auto", "excl", "hardlink", "filelock"]


def bad_paths(tmp_path: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    (tmp_path / "plain-file").write_text("not a directory")
    return {
        "missing": (tmp_path / "missing" / "a.lock", "does not exist; create it first"),
        "under a file": (tmp_path / "plain-file" / "a.lock", "is not a directory"),
    }


@pytest.mark.parametrize("where", ["missing", "under a file"])
@pytest.mark.parametrize("backend", SELECTIONS)
def test_lock_in_a_bad_directory_says_so(tmp_path: pathlib.Path, backend: str, where: str) -> None:
    path, words = bad_paths(tmp_path)[where]
    with pytest.raises(lockkit.InvalidLockName) as caught:
        lockkit.Lock(path, backend=backend).acquire(timeout=0)
    assert words in str(caught.value)
    assert str(path) in str(caught.value)
    assert "redis" not in str(caught.value).lower()  # no advice to switch to a server

    async def attempt() -> None:
        await lockkit.AsyncLock(path, backend=backend).acquire(timeout=0)

    with pytest.raises(lockkit.InvalidLockName):
        asyncio.run(attempt())


@pytest.mark.parametrize("where", ["missing", "under a file"])
@pytest.mark.parametrize("backend", SELECTIONS)
def test_run_in_a_bad_directory_exits_like_a_named_backend(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], backend: str, where: str
) -> None:
    path, words = bad_paths(tmp_path)[where]
    assert main(["run", str(path), "--backend", backend, "--", "true"]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["backends"], ["doctor", "{dir}", "--increments", "1"], ["status", "{dir}/x.lock"]],
    ids=["backends", "doctor", "status"],
)
def test_a_reader_that_went_away_ends_lockkit_quietly(
    tmp_path: pathlib.Path, argv: list[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before lockkit writes a byte
    try:
        result = subprocess.run(
            [*LOCKKIT, *(word.format(dir=tmp_path) for word in argv)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 128 + 13  # as a tool killed by SIGPIPE


@pytest.mark.parametrize("command", ["status", "break"])
def test_a_lock_name_that_is_not_utf8_is_shown_not_a_traceback(
    tmp_path: pathlib.Path, command: str
) -> None:
    name = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.lock")
    with open(name, "w") as handle:
        handle.write('{"pid": 1}')
    result = subprocess.run(
        [*LOCKKIT, command, os.fsdecode(name)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # strict, as in a UTF-8 locale
    )
    assert "Traceback" not in result.stderr
    assert "\\udcff\\udcfe.lock" in result.stdout  # escaped, not dropped
    assert result.returncode in {0, 1}  # 1: break refuses a live lock (pid 1)


@pytest.mark.parametrize("option", ["--processes", "--increments"])
@pytest.mark.parametrize("value", ["0", "1000000", "-3", "1e3", "\u0665"])
def test_doctor_counts_have_bounds(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["doctor", ".", f"{option}={value}"])
    assert caught.value.code == 2
    assert option in capsys.readouterr().err
