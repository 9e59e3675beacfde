"""The contract suite is able to fail: a backend that does not exclude is caught."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.multiprocess]

LEAKY = '''
from typing import ClassVar
from lockkit._info import Lease
from lockkit.backends.excl import ExclBackend
from lockkit.spec import hookimpl


class LeakyBackend(ExclBackend):
    """Grants every attempt: no exclusion at all."""

    name: ClassVar[str] = "leaky"

    def try_acquire(self, name, owner, ttl, *, shared=False):
        return Lease(name, self.name, owner)

    def release(self, lease):
        return True


@hookimpl
def lockkit_register_backends():
    return [LeakyBackend]
'''

SUITE = """
from lockkit.testing import BackendContract


class TestLeaky(BackendContract):
    backend = "leaky"
    processes = 4
    increments = 200
"""


def test_a_non_exclusive_backend_fails_the_suite(tmp_path: pathlib.Path) -> None:
    site = tmp_path / "site"
    info = site / "leaky_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leaky-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lockkit]\nleaky = leaky_plugin\n")
    (site / "leaky_plugin.py").write_text(textwrap.dedent(LEAKY))
    suite = tmp_path / "test_leaky.py"
    suite.write_text(textwrap.dedent(SUITE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", str(suite)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FAILED test_leaky.py::TestLeaky::test_exclusive_across_threads" in out
    assert "FAILED test_leaky.py::TestLeaky::test_exclusive_across_processes" in out
    assert "FAILED test_leaky.py::TestLeaky::test_nonblocking_and_timeout" in out


MISNAMED_SUITE = """
from lockkit.testing import BackendContract


class TestMisnamed(BackendContract):
    backend = "sound"
"""


def test_a_plugin_with_a_misnamed_entry_point_fails_registration(tmp_path: pathlib.Path) -> None:
    """The suite fails, not only warns, for what ``lockkit backends`` reports."""
    site = tmp_path / "site"
    info = site / "misnamed_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: misnamed-plugin\nVersion: 0.1\n")
    # The entry point is "sond", the backend "sound" (an excl subclass, which works).
    (info / "entry_points.txt").write_text("[lockkit]\nsond = misnamed_plugin\n")
    (site / "misnamed_plugin.py").write_text(
        textwrap.dedent(LEAKY)
        .replace('"leaky"', '"sound"')
        .replace("def try_acquire(self, name, owner, ttl, *, shared=False):", "def _x(self):")
        .replace("def release(self, lease):", "def _y(self, lease):")
    )
    suite = tmp_path / "test_misnamed.py"
    suite.write_text(textwrap.dedent(MISNAMED_SUITE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rf",
            "-k",
            "registers_cleanly or inspect_names",
            str(suite),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FAILED test_misnamed.py::TestMisnamed::test_the_plugin_registers_cleanly" in out
    assert "its entry point is named 'sond' but provides 'sound'" in out
    assert "1 failed, 1 passed" in out  # the backend itself works
