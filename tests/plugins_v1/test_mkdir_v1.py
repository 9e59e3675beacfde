"""lockkit-mkdir 0.1.0, written for backend spec v1, works unchanged on today's core.

``lockkit-mkdir-0.1.0/`` is ``plugins/lockkit-mkdir`` exactly as it was at commit
3a4946e, the last main before spec v2 (the plugin overrides ``Backend.wait``). The
first two tests prove the copy byte for byte, with git or without it. ``nox -s
plugins_v1`` installs the copy from its wheel in an environment of its own, runs its
own tests unchanged (``lockkit.testing``'s contract suite among them) and then the
rest of this module, which is skipped wherever that copy is not what is installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pathlib
import shutil
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from lockkit import Lock, _calls

if TYPE_CHECKING:
    import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
COPY = pathlib.Path(__file__).resolve().parent / "lockkit-mkdir-0.1.0"
SOURCE = "plugins/lockkit-mkdir"
V1_COMMIT = "3a4946e4bd2f909b602011b1f8b68eff3cef8075"

# `git ls-tree -r 3a4946e -- plugins/lockkit-mkdir`: the git blob id of every file.
V1_BLOBS = {
    "CHANGELOG.md": "3e5cc67dac14868735119f8d4121a16ba183f39a",
    "README.md": "8bf1e57c1df50f7dcfacd3649732479736e40463",
    "lockkit_mkdir/__init__.py": "a279797b93494415e07edcbdad1235b24f2e62a8",
    "lockkit_mkdir/py.typed": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
    "pyproject.toml": "2b274f2b6ff4b006c7017f82023ed32433663a23",
    "tests/test_contract.py": "55c43a525035de02ade1082342bab8c3bd1d35a1",
    "tests/test_installed.py": "cf9a076ec5a2cdf70e0547dbbb57450573c208b2",
}

V1_WARNING = r"lockkit backend 'mkdir' \(lockkit_mkdir\) waits through spec v1's wait\(\)"
"""The start of the core's DeprecationWarning for this plugin (a regular expression)."""


def _blob_id(data: bytes) -> str:
    """The id git gives a file with content ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _copied_files() -> dict[str, bytes]:
    return {
        path.relative_to(COPY).as_posix(): path.read_bytes()
        for path in sorted(COPY.rglob("*"))
        if path.is_file() and not {"__pycache__", ".pytest_cache"} & set(path.parts)
    }


def test_the_copy_has_the_v1_plugins_files_byte_for_byte() -> None:
    """Needs no git: each copied file hashes to the blob id it had at 3a4946e."""
    copied = {rel: _blob_id(data) for rel, data in _copied_files().items()}
    assert copied == V1_BLOBS


def test_the_pinned_blob_ids_are_those_of_commit_3a4946e() -> None:
    """Where the history is here, ``V1_BLOBS`` is checked against git itself."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: V1_BLOBS not compared with commit 3a4946e")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([git, *args], cwd=ROOT, capture_output=True, text=True, check=False)

    if run("cat-file", "-e", f"{V1_COMMIT}^{{commit}}").returncode != 0:
        pytest.skip(
            f"commit {V1_COMMIT[:7]} is not in this repository (not a git checkout, or a "
            "shallow clone: `git fetch --unshallow` brings it): V1_BLOBS not compared with it"
        )
    listing = run("ls-tree", "-r", "--full-tree", V1_COMMIT, "--", SOURCE)
    assert listing.returncode == 0, listing.stderr
    blobs = {}
    for line in listing.stdout.splitlines():
        meta, path = line.split("\t", 1)
        blobs[path.removeprefix(f"{SOURCE}/")] = meta.split()[2]
    assert blobs == V1_BLOBS


def _installed_v1() -> types.ModuleType:
    """The installed lockkit-mkdir 0.1.0, or a skip where another one (or none) is."""
    try:
        version = importlib.metadata.version("lockkit-mkdir")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != "0.1.0":
        pytest.skip(f"needs lockkit-mkdir 0.1.0 installed (found {version}): nox -s plugins_v1")
    import lockkit_mkdir

    return lockkit_mkdir


def test_the_installed_plugin_is_the_copy() -> None:
    plugin = _installed_v1()
    installed = pathlib.Path(plugin.__file__ or "")
    assert "site-packages" in installed.parts, f"{installed} is not an installed wheel's file"
    assert installed.read_bytes() == (COPY / "lockkit_mkdir" / "__init__.py").read_bytes()


def test_spec_v1_waiting_is_driven_by_the_core_with_one_warning(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = _installed_v1()
    backend_class: Any = plugin.MkdirBackend
    monkeypatch.setattr(_calls, "_PLANS", {})  # as in a fresh process
    waits: list[tuple[object, ...]] = []
    v1_wait = backend_class.wait

    def counted_wait(self: object, *args: object) -> bool:
        waits.append(args)
        return bool(v1_wait(self, *args))

    monkeypatch.setattr(backend_class, "wait", counted_wait)

    with pytest.warns(DeprecationWarning, match=V1_WARNING) as warned:
        holder = Lock(tmp_path / "a.lock", backend="mkdir")
    contender = Lock(tmp_path / "a.lock", backend="mkdir", timeout=10)
    assert len(warned) == 1, [str(w.message) for w in warned]
    assert isinstance(
        _calls.make_waiter(contender.backend, _calls.plan(contender.backend), contender.name),
        _calls.LegacyWaiter,
    )

    acquired = threading.Event()

    def contend() -> None:
        with contender:
            acquired.set()

    with holder:
        thread = threading.Thread(target=contend)
        thread.start()
        deadline = time.monotonic() + 10
        while not waits and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a test-only counter: the contender has to wait first
    thread.join(10)
    assert acquired.is_set(), "the contender never got the lock after the holder released"
    assert waits, "the core never called the v1 plugin's wait()"
