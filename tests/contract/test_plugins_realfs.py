"""Installed third-party file backends work on filesystems without hard links.

Runs in the ``plugins`` nox session, where the plugins under ``plugins/`` are installed
from their wheels; elsewhere this module is skipped at collection.
"""

from __future__ import annotations

import pathlib

import pytest

from lockkit._registry import get_registry
from lockkit._stress import run_increments

pytest.importorskip("lockkit_mkdir", reason="the plugins are installed by `nox -s plugins`")

pytestmark = [pytest.mark.realfs, pytest.mark.multiprocess]

BUILTINS = {"excl", "hardlink", "filelock", "redis"}


def third_party_backends() -> list[str]:
    return sorted(e.name for e in get_registry().entries() if e.name not in BUILTINS)


@pytest.mark.parametrize("backend", ["mkdir"])
def test_plugin_backend_on_filesystems_without_hard_links(
    realfs_dir: pathlib.Path, backend: str
) -> None:
    assert backend in third_party_backends()
    result = run_increments(str(realfs_dir), backend, processes=8, increments=100, timeout=300)
    assert result.errors == ()
    assert result.lost == 0
    assert result.final == 800
