"""Every numeric setting x every way in x nonsense values: one rule, one clear error.

A number reaches lockkit as an argument, in a settings file (JSON5, so NaN and Infinity
are writable), through OpenClaw's milliseconds (file and env), on the command line and
in a Redis URL. Each row says what the value must do at every entry: be accepted (and
mean what), or be refused with an error naming the setting and its valid range. No
server is needed: a Redis URL is parsed when the backend is built, before any connect.
"""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
from typing import Any

import pytest

import lockkit
from lockkit._settings import load_settings, parse_settings
from lockkit.backends.redis import RedisBackend
from lockkit.cli import main
from lockkit.errors import SettingsError

FOREVER = math.inf
REFUSED = "refused"

# value -> what each kind makes of it (a number it becomes, or REFUSED)
VALUES: dict[str, tuple[Any, dict[str, Any]]] = {
    "-1": (-1, {"timeout": FOREVER, "ttl": REFUSED, "stale": REFUSED}),
    "0": (0, {"timeout": 0.0, "ttl": REFUSED, "stale": REFUSED}),
    "nan": (math.nan, {"timeout": REFUSED, "ttl": REFUSED, "stale": REFUSED}),
    "inf": (math.inf, {"timeout": FOREVER, "ttl": REFUSED, "stale": REFUSED}),
    "1e308": (1e308, {"timeout": FOREVER, "ttl": REFUSED, "stale": REFUSED}),
    "10**400": (10**400, {"timeout": FOREVER, "ttl": REFUSED, "stale": REFUSED}),
    "1e-6": (1e-6, {"timeout": 1e-6, "ttl": REFUSED, "stale": REFUSED}),
    "0.5": (0.5, {"timeout": 0.5, "ttl": 0.5, "stale": REFUSED}),
    "2.5": (2.5, {"timeout": 2.5, "ttl": 2.5, "stale": 2.5}),
}
NOT_NUMBERS: dict[str, Any] = {"'5'": "5", "True": True, "None-like []": []}
KINDS = ("timeout", "ttl", "stale")
RANGE_WORDS = {"timeout": "a number of seconds", "ttl": ">= 0.1", "stale": ">= 1"}


def cases() -> list[Any]:
    return [
        pytest.param(kind, value, expected[kind], id=f"{kind}={label}")
        for label, (value, expected) in VALUES.items()
        for kind in KINDS
    ]


def _assert_names(error: BaseException, kind: str) -> None:
    text = str(error)
    assert kind in text, text
    assert RANGE_WORDS[kind] in text, text


@pytest.mark.parametrize(("kind", "value", "expected"), cases())
@pytest.mark.parametrize("cls", [lockkit.Lock, lockkit.AsyncLock, lockkit.ReadWriteLock])
def test_constructor_arguments(
    tmp_path: pathlib.Path, cls: type, kind: str, value: object, expected: object
) -> None:
    name = tmp_path / "a.lock"
    backend = "filelock" if cls is lockkit.ReadWriteLock else "excl"  # one that can share
    if expected is REFUSED:
        with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked
            cls(name, backend=backend, **{kind: value})
        _assert_names(caught.value, kind)
        return
    lock = cls(name, backend=backend, **{kind: value})
    assert getattr(lock, kind) == expected


@pytest.mark.parametrize(("kind", "value", "expected"), cases())
def test_settings_file(kind: str, value: object, expected: object) -> None:
    written = {"nan": "NaN", "inf": "Infinity", "10**400": "1e400"}.get(
        next(label for label, (v, _) in VALUES.items() if v is value), json.dumps(value)
    )
    text = f"{{plugins: {{entries: {{lockkit: {{config: {{\n {kind}: {written}}}}}}}}}}}"
    if expected is REFUSED:
        with pytest.raises(SettingsError) as caught:
            parse_settings(text, "/etc/openclaw.json", {})
        assert str(caught.value).startswith("/etc/openclaw.json:2: "), caught.value
        _assert_names(caught.value, kind)
        return
    settings = parse_settings(text, "/etc/openclaw.json", {})
    assert getattr(settings, kind) == expected


@pytest.mark.parametrize("shown", NOT_NUMBERS)
@pytest.mark.parametrize("kind", KINDS)
def test_non_numbers_are_type_errors_as_arguments(
    tmp_path: pathlib.Path, kind: str, shown: str
) -> None:
    with pytest.raises(TypeError) as caught:
        lockkit.Lock(tmp_path / "a.lock", backend="excl", **{kind: NOT_NUMBERS[shown]})
    _assert_names(caught.value, kind)


@pytest.mark.parametrize("shown", NOT_NUMBERS)
@pytest.mark.parametrize("kind", KINDS)
def test_non_numbers_in_settings_name_file_and_line(kind: str, shown: str) -> None:
    value = json.dumps(NOT_NUMBERS[shown])
    text = f"{{plugins: {{entries: {{lockkit: {{config: {{\n {kind}: {value}}}}}}}}}}}"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, "/etc/openclaw.json", {})
    assert str(caught.value).startswith("/etc/openclaw.json:2: "), caught.value
    _assert_names(caught.value, kind)


@pytest.mark.parametrize(
    "value", ["nan", "-5", "0", "1e308", "abc", "true", "1_000", "\u0665\u0660", "0x10", "1e-300"]
)
def test_acquire_timeouts_and_stale_ms_from_openclaw(value: str) -> None:
    """OpenClaw's milliseconds in env vars: plain ASCII numbers only, as Node reads them.

    Only the timeout takes -5, 0 and 1e308 (forever, one attempt, forever) and 1e-300.
    """
    for variable, kind in (
        ("OPENCLAW_SESSION_WRITE_LOCK_ACQUIRE_TIMEOUT_MS", "timeout"),
        ("OPENCLAW_SESSION_WRITE_LOCK_STALE_MS", "stale"),
    ):
        env = {variable: value}
        accepted = kind == "timeout" and value in {"-5", "0", "1e308", "1e-300"}
        if accepted:
            settings = parse_settings("{}", "/etc/openclaw.json", env)
            assert settings is not None
            assert getattr(settings, kind) in {FOREVER, 0.0, 1e-300 / 1000}
            continue
        with pytest.raises(SettingsError) as caught:
            parse_settings("{}", "/etc/openclaw.json", env)
        assert variable in str(caught.value)
        assert value in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"), [("-1", FOREVER), ("0", 0.0), ("inf", FOREVER), ("2.5", 2.5)]
)
def test_acquire_timeout_argument(tmp_path: pathlib.Path, value: str, expected: float) -> None:
    lock = lockkit.Lock(tmp_path / "a.lock", backend="excl")
    with lock.acquire(timeout=float(value)):
        assert lock.locked
    assert lockkit._lock.effective_timeout(float(value), None, blocking=True) == expected  # noqa: SLF001


@pytest.mark.parametrize("value", [math.nan, "5", True])
def test_acquire_refuses_nonsense_before_touching_the_lock(
    tmp_path: pathlib.Path, value: object
) -> None:
    holder = lockkit.Lock(tmp_path / "a.lock", backend="excl")
    lock = lockkit.Lock(tmp_path / "a.lock", backend="excl")
    rw = lockkit.ReadWriteLock(tmp_path / "b.lock", backend="filelock")
    with holder, pytest.raises((TypeError, ValueError)) as caught:
        # On a busy lock `timeout=nan` used to wait forever.
        lock.acquire(timeout=value)  # type: ignore[arg-type]
    _assert_names(caught.value, "timeout")
    with pytest.raises((TypeError, ValueError)):
        rw.write(timeout=value)  # type: ignore[arg-type]

    async def attempt() -> None:
        alock = lockkit.AsyncLock(tmp_path / "a.lock", backend="excl")
        await alock.acquire(timeout=value)  # type: ignore[arg-type]

    with holder, pytest.raises((TypeError, ValueError)):
        asyncio.run(attempt())


@pytest.mark.parametrize("option", ["--timeout", "--ttl"])
@pytest.mark.parametrize("value", ["nan", "abc", "1e308", "0", "-1", "inf"])
def test_command_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    kind = option[2:]
    label = {"1e308": "1e308", "abc": None}.get(value, value)
    expected = VALUES[label][1][kind] if label in VALUES else REFUSED
    argv = ["run", str(tmp_path / "a.lock"), "--backend", "excl", f"{option}={value}", "--", "true"]
    if expected is REFUSED:
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert option in err
        assert RANGE_WORDS[kind] in err
        return
    assert main(argv) == 0


@pytest.mark.parametrize("option", ["ttl", "poll"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "1e12", "abc", "", "1e-6", "1_0"])
def test_redis_url_options(option: str, value: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:1/0?{option}={value}"
    with pytest.raises(SettingsError) as caught:
        RedisBackend.from_url(url)
    text = str(caught.value)
    assert f"{option}=" in text
    assert ">= " in text
    assert "s3cret" not in text


def test_openclaw_file_numbers_must_be_numbers() -> None:
    """``acquireTimeoutMs: "5000"`` in the file is a string: refused, with file and line."""
    text = '{session: {writeLock: {\n acquireTimeoutMs: "5000"}}}'
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, "/etc/openclaw.json", {})
    assert str(caught.value).startswith("/etc/openclaw.json:2: ")


@pytest.mark.redis
def test_redis_url_accepts_a_sane_ttl() -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:1/0?ttl=2.5&poll=0.1")
    assert backend.default_ttl == 2.5
    assert backend.poll == 0.1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"ttl": 5} // \xff\xfe', "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["not utf-8", "deep nesting"],
)
def test_a_settings_file_that_cannot_be_read_is_a_settings_error(
    tmp_path: pathlib.Path, content: bytes, words: str
) -> None:
    path = tmp_path / "lockkit.json"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        load_settings({"LOCKKIT_SETTINGS": str(path)})
    assert words in str(caught.value)
    assert str(path) in str(caught.value)
