"""lockkit's modules import each other without cycles (`tests.helpers.import_cycles`)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import lockkit
from tests.helpers import import_cycles

PACKAGE = pathlib.Path(lockkit.__file__).parent

# The file side of lockkit (issue 16): its modules must be in no cycle at all.
FILE_SIDE = {
    "lockkit.files",
    "lockkit._notify",
    "lockkit._notify_async",
    *(f"lockkit.backends.{name}" for name in ("excl", "hardlink", "filelock")),
    *(
        f"lockkit.backends.{path.stem}"
        for path in (PACKAGE / "backends").glob("_*.py")
        if not path.stem.startswith("_redis") and path.stem != "__init__"
    ),
}


def _cycles() -> list[list[str]]:
    return import_cycles.cycles(import_cycles.edges(import_cycles.modules(PACKAGE)))


def test_no_file_side_module_is_in_an_import_cycle() -> None:
    assert not [c for c in _cycles() if FILE_SIDE & set(c)]


def test_lockkit_has_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_checker_reports_cycles_and_their_kind(tmp_path: pathlib.Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import c\n"
        "def f():\n    from pkg.a import x\n"
    )
    (package / "c.py").write_text("import pkg.b\n")
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.import_cycles", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "cycle 1 (function-level + module-level): pkg.a <-> pkg.b" in result.stdout
    assert "pkg.c" not in result.stdout.split("\n")[0]  # TYPE_CHECKING imports never run
    assert "1 import cycle(s)" in result.stdout
    (package / "b.py").write_text("")
    clean = subprocess.run(
        [sys.executable, "-m", "tests.helpers.import_cycles", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert clean.returncode == 0
    assert "0 import cycle(s) among 4 modules of pkg" in clean.stdout
