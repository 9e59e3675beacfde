"""`lockkit status` and `lockkit break` against a real Redis, selected as Lock(NAME) selects.

The holder is another process that took the lock with plain ``lockkit.Lock(NAME)``; the
command line is run as ``python -m lockkit`` with the same environment and no
``--backend``, so both must arrive at the same server by the same route.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.redis

HOLDER = """
import sys, lockkit
lock = lockkit.Lock(sys.argv[1], ttl=60)
lock.acquire(timeout=10)
print(lock.selection.describe(), flush=True)
sys.stdin.read()
lock.release()
"""


@contextlib.contextmanager
def holder(name: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``name`` through ``lockkit.Lock(name)``; reaped at the end."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("redis at ")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def lockkit_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockkit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=["LOCKKIT_URL", "settings"])
def route(
    request: pytest.FixtureRequest,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> str:
    """Point the environment at the server one way or the other; return the source shown."""
    if request.param == "LOCKKIT_URL":
        monkeypatch.setenv("LOCKKIT_URL", redis_url)
        return "(from LOCKKIT_URL)"
    settings = tmp_path / "lockkit.json"
    settings.write_text(json.dumps({"backend": "redis", "url": redis_url}, indent=2))
    monkeypatch.setenv("LOCKKIT_SETTINGS", str(settings))
    return f"(from settings: {settings}:"


def test_status_and_break_find_a_live_holder_on_the_server(route: str) -> None:
    name = f"jobs/{uuid.uuid4().hex}"
    with holder(name) as process:
        status = lockkit_cli("status", name)
        assert status.returncode == 0, status.stderr
        assert "state    held" in status.stdout
        assert f"holder   pid {process.pid} " in status.stdout
        assert "backend  redis" in status.stdout
        chosen = next(line for line in status.stdout.splitlines() if line.startswith("chosen"))
        assert chosen.startswith("chosen   redis at redis://127.0.0.1:")
        assert route in chosen
        assert "verdict  live (rule alive)" in status.stdout

        report = json.loads(lockkit_cli("status", name, "--json").stdout)
        assert report["held"] is True
        assert report["backend"] == "redis"
        assert report["holder"]["pid"] == process.pid
        assert report["stale"] is False

        refused = lockkit_cli("break", name)
        assert refused.returncode == 1
        assert "error: refusing to break a live lock" in refused.stdout
        assert f"holder pid {process.pid} is running" in refused.stdout
        assert "Traceback" not in refused.stderr
        assert json.loads(lockkit_cli("status", name, "--json").stdout)["held"] is True


def test_break_removes_the_lock_of_a_dead_holder(route: str) -> None:
    name = f"jobs/{uuid.uuid4().hex}"
    with holder(name) as process:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        status = json.loads(lockkit_cli("status", name, "--json").stdout)
        assert status["held"] is True  # the key outlives its holder until the ttl
        assert status["stale"] is True
        assert status["rule"] == "pid-dead"

        broken = lockkit_cli("break", name, "--json")
        assert broken.returncode == 0, broken.stdout + broken.stderr
        report = json.loads(broken.stdout)
        assert report["removed"] is True
        assert report["rule"] == "pid-dead"
        assert json.loads(lockkit_cli("status", name, "--json").stdout) == {
            "lock": name,
            "held": False,
        }
        again = lockkit_cli("break", name)
        assert again.returncode == 0
        assert "not locked: nothing to remove" in again.stdout


def test_an_unreachable_server_is_one_line_and_status_69(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKKIT_URL", "redis://127.0.0.1:1/0?socket_connect_timeout=0.5")
    for command in ("status", "break"):
        result = lockkit_cli(command, "jobs/x")
        assert result.returncode == 69
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("lockkit: error: ")
        assert "Redis" in line or "redis" in line
