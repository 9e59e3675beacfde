"""``lockkit run`` imports no more than it uses: what a fresh ``lockkit run`` has loaded.

A cron job, a git hook or a Node program starts ``lockkit run`` anew each time and pays
for every module it imports (issue 19). The child below starts as pip's ``lockkit``
script does (``re`` and ``sys``, then `lockkit.cli.main`), runs ``true`` under a lock,
and writes ``sys.modules`` out at the end.

The modules the command line itself would bring are checked plainly. Those that come
from the library core are marked ``xfail(strict=True)`` with the module that still
imports them: when the core stops importing one, its case passes, strict xfail fails,
and the mark is to be removed so the gain is kept.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.fs]

# As pip's console script: `import re, sys` then `from lockkit.cli import main`.
CHILD = """
import re, sys
from lockkit.cli import main
status = main(sys.argv[2:])
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("\\n".join(sorted(sys.modules)))
sys.exit(status)
"""

# Never on `lockkit run`'s path, whichever backend: the command line's own business.
CLI_NEVER = [
    "argparse",
    "gettext",
    "lockkit.cli._args",
    "lockkit.cli._backends",
    "lockkit.cli._doctor",
    "lockkit.cli._report",
    "lockkit.cli._status",
]


def _core(module: str, importer: str) -> object:
    return pytest.param(
        module,
        marks=pytest.mark.xfail(strict=True, reason=f"still imported by {importer}"),
        id=module,
    )


# Not on the path of a named file backend either, once the core is lean (issue 19).
NAMED_NEVER = [
    "redis",
    "asyncio",
    "subprocess",
    "logging",
    "ctypes",
    # With the registry's record in the user's cache (the child runs twice: the first
    # run scans and writes it), no entry-point scan and no pluggy.
    "inspect",
    "importlib.metadata",
    "pluggy",
    "attrs",
    "attr",
    "typing",
    "contextlib",
]


def _loaded(directory: pathlib.Path, *options: str) -> set[str]:
    out = directory / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKKIT_")}
    lock = directory / "imports.lock"
    argv = ["run", str(lock), *options, "--", "true"]
    for _ in range(2):  # the first run fills lockkit's caches (XDG_CACHE_HOME of the session)
        subprocess.run(
            [sys.executable, "-c", CHILD, str(out), *argv],
            env=env,
            cwd=directory,
            check=True,
            timeout=60,
        )
    return set(out.read_text(encoding="utf-8").split("\n"))


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The modules of a ``lockkit run --backend excl`` that ran its command."""
    return _loaded(tmp_path_factory.mktemp("named"), "--backend", "excl", "--timeout", "5")


@pytest.fixture(scope="module")
def automatic(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The modules of a ``lockkit run`` that chose its backend itself."""
    return _loaded(tmp_path_factory.mktemp("auto"))


def test_the_child_ran_the_command_through_the_cli(named: set[str]) -> None:
    assert {"lockkit.cli", "lockkit.cli._runargs", "lockkit._run", "lockkit._lock"} <= named


@pytest.mark.parametrize("module", CLI_NEVER)
def test_run_with_a_named_backend_does_not_import(named: set[str], module: str) -> None:
    assert module not in named


@pytest.mark.parametrize("module", CLI_NEVER)
def test_run_with_the_automatic_backend_does_not_import(automatic: set[str], module: str) -> None:
    assert module not in automatic


@pytest.mark.parametrize("module", NAMED_NEVER)
def test_run_with_a_named_file_backend_leaves_out(named: set[str], module: str) -> None:
    assert not {name for name in named if name == module or name.startswith(f"{module}.")}
