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
    assert rows["filelock"]["capabilities"] == ["released_on_crash", "shared", "notify"]
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


# -- run: argument handling ----------------------------------------------------------------


def test_run_without_a_command_is_a_usage_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["run", str(tmp_path / "a.lock")], ["run", str(tmp_path / "a.lock"), "--"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no command to run" in err
        assert "-- CMD" in err
    assert not (tmp_path / "a.lock").exists()


def test_run_command_without_dashdash_says_where_it_goes(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path / "a.lock"), "true"]) == 2
    assert "put the command after --" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--nonblock", "--timeout", "1"], "not allowed with"),
        (["--timeout", "nan"], "--timeout"),
        (["--ttl", "1e308"], "--ttl"),
        (["--timeout", "soon"], "--timeout"),
        (["--ttl", "0"], "--ttl"),
    ],
)
def test_run_rejects_bad_options(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    complaint: str,
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", str(tmp_path / "a.lock"), *options, "--", "true"])
    assert caught.value.code == 2
    assert complaint in capsys.readouterr().err


def test_run_returns_the_status_and_restores_signal_handlers(tmp_path: pathlib.Path) -> None:
    import signal
    import sys

    from lockkit._run import FORWARDED_SIGNALS

    before = {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS}
    path = tmp_path / "a.lock"
    code = "raise SystemExit(4)"
    assert main(["run", str(path), "--backend", "excl", "--", sys.executable, "-c", code]) == 4
    assert {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS} == before
    assert not path.exists()  # released


def test_run_passes_everything_after_the_first_dashdash(
    tmp_path: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import sys

    code = "import json, sys; print(json.dumps(sys.argv[1:]))"
    argv = ["run", str(tmp_path / "a.lock"), "--backend", "excl", "--"]
    assert main([*argv, sys.executable, "-c", code, "--timeout", "--", "-n"]) == 0
    assert json.loads(capfd.readouterr().out) == ["--timeout", "--", "-n"]


def test_dashdash_keeps_its_meaning_for_other_commands(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--backend", "excl", "--", str(tmp_path / "run")]) == 0
    assert "state    free" in capsys.readouterr().out


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_run_exit_status_of_a_signalled_command_is_128_plus_n(returncode: int, status: int) -> None:
    from lockkit._run import exit_status

    assert exit_status(returncode) == status
