"""Shared fixtures: local directories of each kind, and the real-filesystem mounts."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from lockkit._autodetect import forget as forget_detections
from lockkit._registry import reset_registry

pytest_plugins = [
    "tests.mounts",
    "tests.redis_cluster_server",
    "tests.redis_server",
    "tests.shares",
]

# The PostgreSQL and etcd backends are plugins: their tests run where they are installed
# (`nox -s plugins`), and are not collected elsewhere.
collect_ignore = [
    directory
    for directory, module in (("postgres", "lockkit_postgres"), ("etcd", "lockkit_etcd"))
    if not importlib.util.find_spec(module)
]


_SELECTION_ENV = (
    "LOCKKIT_BACKEND",
    "LOCKKIT_URL",
    "LOCKKIT_SETTINGS",
    "LOCKKIT_DISABLED_PLUGINS",
    "LOCKKIT_NO_CACHE",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_SESSION_WRITE_LOCK_ACQUIRE_TIMEOUT_MS",
    "OPENCLAW_SESSION_WRITE_LOCK_STALE_MS",
)


def _session_cache(factory: pytest.TempPathFactory) -> pathlib.Path:
    path = factory.getbasetemp() / "xdg-cache"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    # Each test starts from a clean slate: no selection from the developer's environment
    # or ~/.openclaw, a fresh registry (tests change sys.path and disabled plugins) and
    # no cached auto-detection verdicts.
    for name in _SELECTION_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENCLAW_HOME", str(tmp_path_factory.mktemp("home")))
    # lockkit's caches (registry record, auto-detection verdicts) go to one directory
    # per session, never the developer's; child processes inherit it.
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache(tmp_path_factory)))
    reset_registry()
    forget_detections()
    yield
    reset_registry()
    forget_detections()


@pytest.fixture(params=["disk", "tmpfs"])
def local_dir(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A fresh directory on the disk filesystem of tmp_path, or on tmpfs (/dev/shm)."""
    if request.param == "disk":
        yield tmp_path
        return
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no tmpfs at /dev/shm")
    path = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
