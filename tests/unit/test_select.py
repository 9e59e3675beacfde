"""Backend selection: every pair of sources, and what each source can say."""

from __future__ import annotations

import itertools
import json
import os
import pathlib

import pytest

import lockkit
from lockkit._registry import get_registry
from lockkit._select import parse_spec
from lockkit.errors import SettingsError, UnknownBackend
from tests.helpers.memory_backend import Plugin

# Highest precedence first. Each source names a backend the others do not use for it,
# and the winner is checked by its `source` as well as its backend.
SOURCES = ["argument", "LOCKKIT_BACKEND", "LOCKKIT_URL", "settings route", "settings", "auto"]
EXPECTED_BACKEND = {
    "argument": "filelock",
    "LOCKKIT_BACKEND": "excl",
    "LOCKKIT_URL": "memory",
    "settings route": "filelock",
    "settings": "excl",
    "auto": "hardlink",  # tmp_path is on a filesystem where link() works
}


@pytest.fixture(autouse=True)
def memory_plugin() -> None:
    get_registry().register(Plugin(), name="memory-plugin")


def configure(
    sources: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    home: pathlib.Path,
    locks: pathlib.Path,
) -> dict[str, str]:
    kwargs: dict[str, str] = {}
    config: dict[str, object] = {"root": str(locks.parent)}
    if "argument" in sources:
        kwargs["backend"] = "filelock"
    if "LOCKKIT_BACKEND" in sources:
        monkeypatch.setenv("LOCKKIT_BACKEND", "excl")
    if "LOCKKIT_URL" in sources:
        monkeypatch.setenv("LOCKKIT_URL", "memory://from-env")
    if "settings route" in sources:
        config["routes"] = {f"{locks.name}/**": "filelock"}
    if "settings" in sources:
        config["backend"] = "excl"
    state = home / ".openclaw"
    state.mkdir(exist_ok=True)
    openclaw = {"gateway": {"port": 1}, "plugins": {"entries": {"lockkit": {"config": config}}}}
    (state / "openclaw.json").write_text(json.dumps(openclaw))
    return kwargs


@pytest.fixture
def home() -> pathlib.Path:
    return pathlib.Path(os.environ["OPENCLAW_HOME"])


@pytest.fixture
def locks(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "locks"
    (directory / "deep").mkdir(parents=True)
    return directory


CASES = [(source,) for source in SOURCES] + list(itertools.combinations(SOURCES, 2))


@pytest.mark.parametrize("sources", CASES, ids=[" > ".join(case) for case in CASES])
def test_precedence(
    sources: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    home: pathlib.Path,
    locks: pathlib.Path,
) -> None:
    kwargs = configure(sources, monkeypatch, home, locks)
    lock = lockkit.Lock(locks / "deep" / "x.lock", **kwargs)  # type: ignore[arg-type]
    winner = sources[0]
    assert lock.selection.backend == EXPECTED_BACKEND[winner]
    expected_source = "auto-detect" if winner == "auto" else winner
    assert lock.selection.source == expected_source
    assert lock.backend.name == EXPECTED_BACKEND[winner]
    if winner == "LOCKKIT_URL":
        assert lock.selection.url == "memory://from-env"
        assert getattr(lock.backend, "url", None) == "memory://from-env"
    if winner in ("settings", "settings route"):
        assert "openclaw.json" in lock.selection.detail


def test_env_url_gives_the_url_to_the_env_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", "memory")
    monkeypatch.setenv("LOCKKIT_URL", "memory://shared")
    lock = lockkit.Lock("jobs-nightly")
    assert lock.selection.url == "memory://shared"
    assert lock.selection.source == "LOCKKIT_BACKEND"


def test_env_auto_overrides_settings(
    monkeypatch: pytest.MonkeyPatch, home: pathlib.Path, locks: pathlib.Path
) -> None:
    configure(("settings",), monkeypatch, home, locks)
    monkeypatch.setenv("LOCKKIT_BACKEND", "auto")
    lock = lockkit.Lock(locks / "x.lock")
    assert lock.selection.source == "LOCKKIT_BACKEND=auto"
    assert lock.selection.backend == "hardlink"
    assert "link() works" in lock.selection.detail


def test_explicit_auto_argument(locks: pathlib.Path) -> None:
    lock = lockkit.Lock(locks / "x.lock", backend="auto")
    assert lock.selection.backend == "hardlink"


def test_backend_instance_argument(locks: pathlib.Path) -> None:
    instance = get_registry().backend("excl")
    lock = lockkit.Lock(locks / "x.lock", backend=instance)
    assert lock.backend is instance
    assert lock.selection.source == "argument"


def test_unknown_backend_from_env_lists_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", "nonsense")
    with pytest.raises(UnknownBackend) as caught:
        lockkit.Lock("x.lock")
    assert "'nonsense'" in str(caught.value)
    assert "excl, filelock, hardlink, memory" in str(caught.value)


def test_file_backend_refuses_a_url_without_showing_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKKIT_BACKEND", "excl://admin:hunter2@nas/share")
    with pytest.raises(SettingsError) as caught:
        lockkit.Lock("x.lock")
    assert "takes no URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "admin:***@nas" in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("excl", ("excl", None)),
        (" excl ", ("excl", None)),
        ("redis://h:6379/0", ("redis", "redis://h:6379/0")),
        ("rediss://h", ("redis", "rediss://h")),
        ("unix:///run/redis.sock", ("redis", "unix:///run/redis.sock")),
        ("etcd://h", ("etcd", "etcd://h")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_spec(spec) == expected


def test_settings_timeouts_become_lock_defaults(
    monkeypatch: pytest.MonkeyPatch, home: pathlib.Path, locks: pathlib.Path
) -> None:
    state = home / ".openclaw"
    state.mkdir()
    (state / "openclaw.json").write_text(
        "{session: {writeLock: {acquireTimeoutMs: 2500, staleMs: 60000}}, "
        "plugins: {entries: {lockkit: {config: {ttl: 12}}}}}"
    )
    lock = lockkit.Lock(locks / "x.lock", backend="excl")
    assert lock.timeout == 2.5
    assert lock.stale == 60.0
    assert lock.ttl == 12.0
    monkeypatch.setenv("OPENCLAW_SESSION_WRITE_LOCK_ACQUIRE_TIMEOUT_MS", "400")
    assert lockkit.Lock(locks / "x.lock", backend="excl").timeout == 0.4
    # An explicit argument still wins.
    assert lockkit.Lock(locks / "x.lock", backend="excl", timeout=7).timeout == 7


def test_unknown_backend_from_settings_says_where(
    monkeypatch: pytest.MonkeyPatch, home: pathlib.Path, locks: pathlib.Path
) -> None:
    state = home / ".openclaw"
    state.mkdir()
    (state / "openclaw.json").write_text(
        "{\n plugins: {entries: {lockkit: {config: {\n  backend: 'reddis',\n}}}}}"
    )
    with pytest.raises(UnknownBackend) as caught:
        lockkit.Lock(locks / "x.lock")
    assert "unknown lock backend 'reddis'" in str(caught.value)
    assert f"chosen by settings: {state / 'openclaw.json'}:3" in str(caught.value)
