"""The command line, driven through cli.main(argv)."""

from __future__ import annotations

import json
import pathlib

import pytest

from lockkit.cli import main


def test_backends_json_lists_builtins_with_distribution(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["backends"]}
    assert {"excl", "hardlink", "filelock"} <= set(rows)
    assert rows["excl"]["distribution"].startswith("lockkit ")
    assert rows["filelock"]["capabilities"] == ["released_on_crash", "notify"]
    assert data["problems"] == []


def test_backends_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "excl" in out
    assert "capabilities:" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("lockkit ")


def test_doctor_on_missing_directory_is_a_clear_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err
    assert "Traceback" not in err


def test_doctor_unknown_backend_lists_available(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", str(tmp_path), "--backend", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "unknown lock backend 'nonsense'" in err
    assert "excl, filelock, hardlink" in err


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_doctor_rejects_bad_counts(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["doctor", "--processes", value])
    assert caught.value.code == 2
    assert "--processes" in capsys.readouterr().err
