"""`lockkit doctor` on real directories: the main job of the command line."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest

from lockkit.cli import main

pytestmark = [pytest.mark.fs, pytest.mark.multiprocess]


def _doctor_json(directory: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["doctor", str(directory), "--json", "--processes", "3", "--increments", "20"])
    report = json.loads(capsys.readouterr().out)
    report["exit"] = code
    assert isinstance(report, dict)
    return report


def test_doctor_local_directory(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _doctor_json(tmp_path, capsys)
    assert report["exit"] == 0
    assert report["ok"] is True
    assert report["filesystem"]["type"] not in ("", "unknown")
    rows = {row["name"]: row for row in report["backends"]}
    assert {"excl", "hardlink", "filelock"} <= set(rows)
    for name in ("excl", "hardlink", "filelock"):
        row = rows[name]
        assert row["works"] is True
        assert row["stress"]["count"] == 60
        assert row["stress"]["lost"] == 0
    assert "link() works" in rows["hardlink"]["probe"]["reason"]
    # Probes and checks leave nothing behind.
    assert os.listdir(tmp_path) == []


def test_doctor_text_output(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", str(tmp_path), "--backend", "excl", "--increments", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "filesystem" in out
    assert "0 lost" in out
    assert "verdict: locks work here" in out


@pytest.mark.realfs
def test_doctor_explains_why_link_was_ruled_out(
    realfs_dir: pathlib.Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _doctor_json(realfs_dir, capsys)
    assert report["exit"] == 0
    assert report["ok"] is True
    rows = {row["name"]: row for row in report["backends"]}
    # ENOTSUP and EOPNOTSUPP are one number on Linux; errno names it ENOTSUP.
    expected = "EPERM" if "exfat" in request.node.callspec.id else "ENOTSUP"
    reason = rows["hardlink"]["probe"]["reason"]
    assert f"link() failed: {expected}" in reason
    assert "falls back to O_EXCL" in reason
    for name in ("excl", "hardlink", "filelock"):
        assert rows[name]["stress"]["lost"] == 0
    assert any("falls back" in w for w in rows["hardlink"]["stress"]["warnings"])
    assert os.listdir(realfs_dir) == []
