"""A password in a URL never appears in CLI output, log records, errors or repr."""

from __future__ import annotations

import json
import logging
import os
import pathlib

import pytest

import lockkit
from lockkit._settings import load_settings
from lockkit.cli import main

pytestmark = pytest.mark.fs

SECRET = "hunter2-s3cret"  # noqa: S105 - a fake password the test hunts for


@pytest.fixture
def configured(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("REDIS_URL", f"redis://admin:{SECRET}@cache.internal:6379/0")
    # LOCKKIT_BACKEND wins; the URL meant for another backend is ignored but still shown.
    monkeypatch.setenv("LOCKKIT_BACKEND", "excl")
    monkeypatch.setenv("LOCKKIT_URL", f"rediss://:{SECRET}@other:6380")
    state = pathlib.Path(os.environ["OPENCLAW_HOME"]) / ".openclaw"
    state.mkdir()
    (state / "openclaw.json").write_text(
        "{plugins: {entries: {lockkit: {config: {"
        "backend: 'excl', url: '${REDIS_URL}', "
        f"routes: {{'never/**': 'redis://u:{SECRET}@h/1?password={SECRET}'}}"
        "}}}}}"
    )
    return tmp_path


def test_cli_and_logs_never_show_the_password(
    configured: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = configured / "app.lock"
    outputs = []
    for argv in (
        ["doctor", str(configured), "--increments", "2", "--processes", "2"],
        ["doctor", str(configured), "--json", "--increments", "2", "--processes", "2"],
        ["backends"],
        ["backends", "--json"],
        ["status", str(path)],
        ["status", str(path), "--json"],
        ["break", str(path), "--json"],
    ):
        main(argv)
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    text = "\n".join(outputs)
    assert SECRET not in text
    assert "admin:***@cache.internal" in text  # the URL is shown, redacted
    doctor = json.loads(outputs[1])
    assert doctor["config"]["settings"]["values"]["url"].startswith("redis://admin:***@")
    assert doctor["config"]["environment"]["LOCKKIT_URL"] == "rediss://:***@other:6380"
    records = "\n".join(record.getMessage() for record in caplog.records)
    assert SECRET not in records


def test_repr_and_errors_never_show_the_password(
    configured: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings()
    assert settings is not None
    assert SECRET in (settings.url or "")  # the value itself is intact...
    assert SECRET not in repr(settings)  # ...but never shown
    lock = lockkit.Lock(configured / "a.lock")
    assert SECRET not in repr(lock.selection)
    assert SECRET not in lock.selection.describe()
    monkeypatch.setenv("LOCKKIT_BACKEND", f"excl://admin:{SECRET}@nas/share")
    with pytest.raises(lockkit.SettingsError) as caught:
        lockkit.Lock(configured / "a.lock")
    assert SECRET not in str(caught.value)
    assert main(["status", str(configured / "a.lock")]) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "takes no URL" in captured.err
