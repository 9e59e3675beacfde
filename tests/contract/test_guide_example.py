"""The guide's complete plugin passes the contract suite, exactly as printed."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import lockkit
from tests.helpers.guide import install_guide_plugin, python_blocks, tabs

pytestmark = [pytest.mark.multiprocess]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_guide_has_the_three_files() -> None:
    blocks = tabs(ROOT)
    assert {"lockkit_sqlite.py", "pyproject.toml", "tests/test_contract.py"} <= set(blocks), (
        f"tabs found in the guide: {sorted(blocks)}"
    )


def test_the_guides_plugin_passes_the_contract_suite(tmp_path: pathlib.Path) -> None:
    plugin = install_guide_plugin(ROOT, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin.site), str(ROOT)])}
    env.pop("LOCKKIT_BACKEND", None)
    env.pop("LOCKKIT_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(plugin.test),
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "--rootdir",
            str(plugin.test.parent.parent),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, (
        f"the guide's plugin failed the suite:\n{done.stdout}\n{done.stderr}"
    )
    assert " passed" in summary
    assert "failed" not in summary, summary


def test_the_guides_observer_example_observes(tmp_path: pathlib.Path) -> None:
    """The in-process observer block of the guide, run as printed, sees a contention."""
    [block] = [b for b in python_blocks(ROOT) if "register_plugin" in b]
    namespace: dict[str, object] = {}
    exec(compile(block, "writing-a-backend.md", "exec"), namespace)  # noqa: S102 - the guide
    watcher = namespace["watcher"]
    path = str(tmp_path / "observed.lock")
    with lockkit.Lock(path, backend="excl"), pytest.raises(lockkit.LockTimeout):
        lockkit.Lock(path, backend="excl").acquire(timeout=0.05)
    assert watcher.waits == [path]  # type: ignore[attr-defined]
