"""Shared fixtures: local directories of each kind, and the real-filesystem mounts."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from lockkit._registry import reset_registry

pytest_plugins = ["tests.mounts"]


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    # Tests change LOCKKIT_DISABLED_PLUGINS and sys.path; each starts from a clean slate.
    reset_registry()
    yield
    reset_registry()


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
