"""The plugin is found the way users find it: through its installed entry point."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import lockkit


def test_lockkit_backends_lists_the_plugin() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lockkit", "backends", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {row["name"]: row for row in json.loads(out)["backends"]}
    assert rows["mkdir"]["distribution"] == "lockkit-mkdir 0.2.0"
    assert rows["mkdir"]["description"].startswith("a directory made with")


def test_env_var_selects_the_plugin(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "LOCKKIT_BACKEND": "mkdir"}
    code = (
        "import lockkit, sys\n"
        "lock = lockkit.Lock(sys.argv[1])\n"
        "print(lock.selection.backend, lock.selection.source)\n"
        "with lock:\n"
        "    import os; print(os.path.isdir(sys.argv[1]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.lock")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    assert out == ["mkdir", "LOCKKIT_BACKEND", "True"]


def test_stale_directory_left_by_a_dead_holder_is_reclaimed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dead.lock"
    path.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (path / "owner.json").write_text(json.dumps({"pid": dead.pid, "token": "t"}))
    with lockkit.Lock(path, backend="mkdir", timeout=5) as lock:
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
    assert not path.exists()
