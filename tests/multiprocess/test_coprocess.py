"""`lockkit coprocess` with real processes: the protocol, Node callers, and cleanup.

The co-process is driven through pipes, from Python (the protocol's answers, errors
and malformed input) and from Node through ``tests/helpers/coprocess_client.js`` (a
shared counter with Python ``lockkit.Lock`` users; a caller killed with SIGKILL). Its
locks must be released when its caller goes away, and reclaimed within 2 s when the
co-process itself is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import queue
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import lockkit
from lockkit import _info
from lockkit._registry import get_registry
from lockkit.spec import hookimpl
from tests.helpers.processes import ROOT, free_now
from tests.mounts import skip_or_fail

pytestmark = [pytest.mark.multiprocess, pytest.mark.fs]

BACKENDS = ["excl", "hardlink", "filelock"]
WAIT = 60.0  # s: generous bound for any answer or exit in these tests
CLIENT = ROOT / "tests" / "helpers" / "coprocess_client.js"


def _env(*extra: pathlib.Path) -> dict[str, str]:
    """This checkout's lockkit first on the path, for the co-process and Node's children."""
    path = os.environ.get("PYTHONPATH", "")
    paths = [str(ROOT), *map(str, extra), path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def _not_json_constant(text: str) -> object:
    raise ValueError(f"{text} in an answer: not JSON (Node's JSON.parse refuses it)")


def _node() -> str:
    found = shutil.which("node")
    if found is None:
        skip_or_fail("node not found on PATH (install nodejs)")
    return found


class CoProcess:
    """A ``lockkit coprocess`` on pipes: send requests, wait for the answer to an id."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lockkit", "coprocess", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or _env(),
            start_new_session=True,  # signals sent to it reach it alone
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.early: dict[object, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._next()
        self.pid = self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:  # every line must be JSON, as Node reads it: fails the test if not
                self.lines.put(json.loads(line, parse_constant=_not_json_constant))
            except ValueError as exc:
                self.lines.put({"invalid": str(exc), "line": line.decode(errors="replace")})
        self.lines.put(None)

    def _next(self, timeout: float = WAIT) -> dict[str, Any]:
        message = self.lines.get(timeout=timeout)
        assert message is not None, "the co-process closed its output"
        assert "invalid" not in message, message
        return message

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, **request: object) -> None:
        self.send_raw(json.dumps(request).encode() + b"\n")

    def answer(self, rid: object, timeout: float = WAIT) -> dict[str, Any]:
        """The answer to request ``rid``, keeping answers to others for later."""
        deadline = time.monotonic() + timeout
        while rid not in self.early:
            message = self._next(max(0.0, deadline - time.monotonic()))
            if "event" in message:
                self.events.append(message)
            else:
                self.early[message["id"]] = message
        return self.early.pop(rid)

    def call(self, rid: object, **request: object) -> dict[str, Any]:
        self.send(id=rid, **request)
        return self.answer(rid)

    def close(self) -> int:
        """End of input; the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=WAIT)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def coprocess(*args: str, env: dict[str, str] | None = None) -> Iterator[CoProcess]:
    started = CoProcess(*args, env=env)
    try:
        yield started
    finally:
        started.reap()


class _StaleRecorder:
    """Records stale locks broken in this process: a released lock is never one."""

    def __init__(self) -> None:
        self.broken: list[tuple[lockkit.LockInfo, str]] = []

    @hookimpl
    def lockkit_stale_broken(
        self, name: str, backend: str, info: lockkit.LockInfo, reason: str
    ) -> None:
        self.broken.append((info, reason))


@pytest.fixture
def stale_recorder() -> Iterator[_StaleRecorder]:
    recorder = _StaleRecorder()
    registry = get_registry()
    registry.register(recorder, name="coprocess-stale-recorder")
    try:
        yield recorder
    finally:
        registry.unregister(recorder)


# -- the protocol, from Python ---------------------------------------------------------------


def test_hello_announces_protocol_and_pid() -> None:
    with coprocess("--backend", "excl") as co:
        assert co.hello["event"] == "hello"
        assert co.hello["protocol"] == 1
        assert co.hello["pid"] == co.pid
        assert co.hello["lockkit"] == lockkit.__version__
        answer = co.call("h", op="hello")
        assert answer == {
            "id": "h",
            "ok": True,
            "protocol": 1,
            "lockkit": lockkit.__version__,
            "pid": co.pid,
        }
        assert co.close() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_acquire_status_release(tmp_path: pathlib.Path, backend: str) -> None:
    path = tmp_path / "a.lock"
    with coprocess("--backend", backend) as co:
        got = co.call(1, op="acquire", name=str(path), timeout=5)
        assert got["ok"] is True
        assert got["name"] == str(path)
        assert got["backend"] == backend
        assert got["handle"]
        assert "fencing_token" in got  # null: file backends have no fencing
        assert not free_now(path, backend)
        status = co.call(2, op="status", name=str(path))
        assert status["held"] is True
        assert status["handles"] == [got["handle"]]
        assert status["holder"]["pid"] == co.pid
        assert status["holder"]["host"] == _info.process_identity().host
        assert "token" not in json.dumps(status["holder"]).replace("fencing_token", "")
        released = co.call(3, op="release", handle=got["handle"])
        assert released == {
            "id": 3,
            "ok": True,
            "handle": got["handle"],
            "name": str(path),
            "lost": False,
        }
        assert free_now(path, backend)
        again = co.call(4, op="release", handle=got["handle"])
        assert again["ok"] is False
        assert again["error"]["type"] == "LockNotHeld"
        status = co.call(5, op="status", name=str(path))
        assert (status["held"], status["handles"], status["holder"]) == (False, [], None)
        # By name, as the caller wrote it; the lock object is reused.
        co.call(6, op="acquire", name=str(path), timeout=5)
        assert co.call(7, op="release", name=str(path))["ok"] is True
        assert co.close() == 0
        assert co.stderr() == ""


def _bad_requests(tmp_path: pathlib.Path) -> list[tuple[bytes, object, str, str]]:
    """(line, the id answered, error type, a piece of the message)."""
    lock = str(tmp_path / "bad.lock")

    def acquire(**fields: object) -> bytes:
        return json.dumps({"id": 1, "op": "acquire", "name": lock, **fields}).encode()

    return [
        (b"not json", None, "BadRequest", "not a JSON object"),
        (b"[1, 2]", None, "BadRequest", "must be a JSON object"),
        (b'{"op": "hello"}', None, "BadRequest", '"id" must be'),
        (b'{"id": true, "op": "hello"}', None, "BadRequest", '"id" must be'),
        (b'{"id": {"a": 1}, "op": "hello"}', None, "BadRequest", '"id" must be'),
        # Read as a float infinity: echoed, it would be `Infinity`, which is not JSON.
        (b'{"id": 1e400, "op": "hello"}', None, "BadRequest", '"id" must be a string or a fin'),
        (b'{"id": -1e400, "op": "hello"}', None, "BadRequest", '"id" must be a string or a fin'),
        (b'{"id": 1}', 1, "BadRequest", '"op" must be a string'),
        (b'{"id": 1, "op": "unlock"}', 1, "BadRequest", "unknown op 'unlock'"),
        (b'{"id": 1, "op": "acquire"}', 1, "BadRequest", '"name" must be'),
        (b'{"id": 1, "op": "acquire", "name": ""}', 1, "BadRequest", '"name" must be'),
        (b'{"id": 1, "op": "acquire", "name": 5}', 1, "BadRequest", '"name" must be'),
        (acquire(timeout=-1), 1, "BadRequest", '"timeout" must be a number of seconds >= 0'),
        (acquire(timeout="5"), 1, "BadRequest", '"timeout" must be'),
        (acquire(timeout=True), 1, "BadRequest", '"timeout" must be'),
        (acquire()[:-1] + b', "timeout": NaN}', None, "BadRequest", "NaN is not a JSON number"),
        (acquire()[:-1] + b', "timeout": 1e400}', 1, "BadRequest", '"timeout" must be'),
        # An integer too large for a float: refused as ttl and stale are, not InternalError.
        (acquire(timeout=10**400), 1, "BadRequest", '"timeout" must be a number of seconds'),
        (acquire(ttl=0), 1, "BadRequest", '"ttl" must be a number of seconds >= 0.1'),
        (acquire(ttl=1e12), 1, "BadRequest", "<= 31536000 (one year), got 1000000000000.0"),
        (acquire(ttl=10**400), 1, "BadRequest", '"ttl" must be'),
        (acquire(ttl="30"), 1, "BadRequest", '"ttl" must be'),
        (acquire(stale=0.5), 1, "BadRequest", '"stale" must be'),
        (acquire(shared="yes"), 1, "BadRequest", '"shared" must be true or false'),
        (acquire(backend=5), 1, "BadRequest", '"backend" must be'),
        (acquire(backend="nosuch"), 1, "UnknownBackend", "unknown lock backend 'nosuch'"),
        (acquire(backend="nosuch://u:hunter2@host"), 1, "UnknownBackend", "'nosuch'"),
        (acquire(shared=True, backend="excl"), 1, "SharedLocksUnsupported", "'excl' cannot"),
        (acquire(name="a\x00b"), 1, "InvalidLockName", "contains a NUL character"),
        (acquire(name=str(tmp_path)), 1, "InvalidLockName", "is a directory"),
        (acquire(name=str(tmp_path / "no" / "x")), 1, "InvalidLockName", "does not exist"),
        (b'{"id": 1, "op": "release"}', 1, "BadRequest", 'release needs "handle"'),
        (b'{"id": 1, "op": "release", "handle": 5}', 1, "BadRequest", '"handle" must be'),
        (b'{"id": 1, "op": "release", "handle": "h99"}', 1, "LockNotHeld", "handle 'h99'"),
        (b'{"id": 1, "op": "release", "name": "x.lock"}', 1, "LockNotHeld", "'x.lock' is not"),
        (b'{"id": 1, "op": "cancel"}', 1, "BadRequest", 'cancel needs "target"'),
        (b'{"id": 1, "op": "status"}', 1, "BadRequest", '"name" must be'),
        (b"\xff\xfe{}", None, "BadRequest", "not a JSON object"),
        (b"x" * (1 << 17), None, "BadRequest", "longer than 65536 bytes"),
    ]


def test_bad_requests_get_an_error_answer_and_nothing_breaks(tmp_path: pathlib.Path) -> None:
    with coprocess("--backend", "excl") as co:
        wrong = []
        for line, rid, kind, fragment in _bad_requests(tmp_path):
            co.send_raw(line + b"\n")
            answer = co.answer(rid)
            error = answer.get("error", {})
            if answer["ok"] or error.get("type") != kind or fragment not in error["message"]:
                wrong.append((line[:80], answer))
            assert set(answer) == {"id", "ok", "error"}
            assert "hunter2" not in json.dumps(answer)  # never a password
        assert wrong == []
        co.send_raw(b"\n  \n")  # blank lines are skipped, not answered
        assert co.call("alive", op="hello")["ok"] is True  # still serving
        assert not (tmp_path / "bad.lock").exists()
        assert co.close() == 0
        err = co.stderr()
        assert "Traceback" not in err
        assert "hunter2" not in err


def test_same_name_twice_waits_for_the_first(tmp_path: pathlib.Path) -> None:
    """A second acquire of a held name is a contender like any other: it waits."""
    path = str(tmp_path / "twice.lock")
    with coprocess("--backend", "excl") as co:
        first = co.call(1, op="acquire", name=path)
        busy = co.call(2, op="acquire", name=path, timeout=0.2)
        assert busy["error"]["type"] == "LockTimeout"
        assert busy["error"]["holder"]["pid"] == co.pid
        co.send(id=3, op="acquire", name=path, timeout=None)  # waits
        co.call(4, op="release", handle=first["handle"])
        second = co.answer(3)
        assert second["ok"] is True
        assert second["handle"] != first["handle"]
        assert co.close() == 0
    assert free_now(path, "excl")


def test_a_waiting_acquire_blocks_nothing_else(tmp_path: pathlib.Path) -> None:
    """Waiting for lock B, the co-process still releases A and answers the rest."""
    a, b = str(tmp_path / "a.lock"), str(tmp_path / "b.lock")
    other = lockkit.Lock(b, backend="excl")
    with other, coprocess("--backend", "excl") as co:
        got_a = co.call("a", op="acquire", name=a)
        co.send(id="b", op="acquire", name=b, timeout=None)  # waits for this test's lock
        assert co.call("release-a", op="release", handle=got_a["handle"])["ok"] is True
        assert free_now(a, "excl")
        busy = co.call("b-now", op="acquire", name=b, timeout=0.2)
        assert busy["error"]["type"] == "LockTimeout"
        # The holder is named, as `lockkit run` names it.
        host = _info.process_identity().host
        assert f"held by pid {os.getpid()} on host {host}" in busy["error"]["message"]
        assert busy["error"]["holder"]["pid"] == os.getpid()
        assert "b" not in co.early  # still waiting
        assert co.call("c", op="cancel", target="b") == {"id": "c", "ok": True, "cancelled": True}
        cancelled = co.answer("b")
        assert cancelled["error"]["type"] == "Cancelled"
        assert co.call("c2", op="cancel", target="b")["cancelled"] is False
        assert co.close() == 0
    assert free_now(b, "excl")


def test_an_acquire_id_used_again_once_answered(tmp_path: pathlib.Path) -> None:
    """Id 1 granted, then id 1 again for an acquire that waits: cancel finds the second.

    The first acquisition's end (its release) must not forget the second one, which
    would then wait unseen: not cancellable, and never cancelled at shutdown.
    """
    x, y = str(tmp_path / "x.lock"), str(tmp_path / "y.lock")
    with lockkit.Lock(y, backend="excl"), coprocess("--backend", "excl") as co:
        got_x = co.call(1, op="acquire", name=x, timeout=0)
        assert got_x["ok"] is True
        co.send(id=1, op="acquire", name=y, timeout=None)  # waits for this test's lock
        assert co.call("s", op="status", name=y)["held"] is False  # read: now waiting
        assert co.call(2, op="release", handle=got_x["handle"])["ok"] is True
        assert co.call(3, op="cancel", target=1) == {"id": 3, "ok": True, "cancelled": True}
        assert co.answer(1)["error"]["type"] == "Cancelled"
        assert co.call(4, op="cancel", target=1)["cancelled"] is False
        # Two acquires waiting with one id: the second is refused, the first waits on.
        co.send(id=5, op="acquire", name=y, timeout=None)
        refused = co.call(5, op="acquire", name=y, timeout=None)
        assert refused["error"]["type"] == "BadRequest"
        assert "already in use by a waiting acquire" in refused["error"]["message"]
        assert co.call(6, op="cancel", target=5)["cancelled"] is True
        assert co.answer(5)["error"]["type"] == "Cancelled"
        assert co.close() == 0
        assert co.stderr() == ""


@pytest.mark.parametrize("stop", ["end of input", "SIGTERM"])
def test_stopping_cancels_a_wait_whose_id_was_used_before(
    tmp_path: pathlib.Path, stop: str
) -> None:
    """Shutdown reaches every acquisition, whatever ids the caller reused."""
    x, y = str(tmp_path / "x.lock"), str(tmp_path / "y.lock")
    with lockkit.Lock(y, backend="excl"), coprocess("--backend", "excl") as co:
        got_x = co.call(1, op="acquire", name=x, timeout=0)
        co.send(id=1, op="acquire", name=y, timeout=None)
        assert co.call(2, op="release", handle=got_x["handle"])["ok"] is True
        assert co.call("x", op="acquire", name=x, timeout=0)["ok"] is True  # held at the stop
        if stop == "SIGTERM":
            os.kill(co.pid, signal.SIGTERM)
            assert co.answer(1)["error"]["type"] == "Cancelled"
            assert co.process.wait(timeout=WAIT) == 128 + signal.SIGTERM
        else:
            assert co.close() == 0
            assert co.answer(1)["error"]["type"] == "Cancelled"
        assert co.stderr() == ""
    assert free_now(x, "excl")
    assert free_now(y, "excl")  # the cancelled wait did not take it after this test let go


def test_a_stop_signal_is_not_lost_while_answers_go_unread(tmp_path: pathlib.Path) -> None:
    """Thousands of requests, no answer read, SIGTERM: once read, it exits and releases.

    The co-process blocks writing answers nobody reads; the lines it has read meanwhile
    are bounded (`IN_FLIGHT`), so the signal's wake-up byte is never dropped.
    """
    path = tmp_path / "held.lock"
    process = subprocess.Popen(
        [sys.executable, "-m", "lockkit", "coprocess", "--backend", "excl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        start_new_session=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    drained: list[bytes] = []
    drainer = threading.Thread(target=lambda: drained.extend(process.stdout or []))
    try:
        assert json.loads(process.stdout.readline())["event"] == "hello"
        acquire = {"id": "a", "op": "acquire", "name": str(path), "timeout": 0}
        process.stdin.write(json.dumps(acquire).encode() + b"\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["ok"] is True
        # Write without reading until both pipes are full: the co-process is stuck on
        # its output, its input no longer drains (or it has taken all 3000 lines).
        stdin_fd, stdout_fd = process.stdin.fileno(), process.stdout.fileno()
        os.set_blocking(stdin_fd, False)
        pending = b"".join(b'{"id": %d, "op": "hello"}\n' % i for i in range(3000))
        while pending:
            try:
                pending = pending[os.write(stdin_fd, pending) :]
                continue
            except BlockingIOError:
                pass
            if _unread(stdout_fd) >= 60_000:
                break  # answers stuck (a pipe holds 64 KiB), requests stuck
            select.select([], [stdin_fd], [], WAIT)
        while _unread(stdout_fd) < 60_000:
            select.select([], [], [], 0.01)  # until the co-process is stuck writing
        os.kill(process.pid, signal.SIGTERM)
        drainer.start()
        assert process.wait(timeout=WAIT) == 128 + signal.SIGTERM
        drainer.join(WAIT)
        assert all(json.loads(line) for line in drained)
        assert free_now(path, "excl")
        assert b"wakeup fd" not in (process.stderr.read() if process.stderr else b"")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _unread(fd: int) -> int:
    """Bytes waiting in the pipe ``fd`` reads."""
    waiting: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    return waiting


EXITING_PLUGIN = """
from lockkit.backends.excl import ExclBackend
from lockkit.spec import hookimpl


class ExitingBackend(ExclBackend):
    name = "exiting"

    def attempt(self, name, directory, owner, ttl):
        if name.endswith("exit.lock"):
            raise SystemExit(3)
        if name.endswith("interrupt.lock"):
            raise KeyboardInterrupt
        return super().attempt(name, directory, owner, ttl)


@hookimpl
def lockkit_register_backends():
    return [ExitingBackend]
"""


def test_a_plugin_calling_sys_exit_gets_an_error_answer(tmp_path: pathlib.Path) -> None:
    """SystemExit or KeyboardInterrupt from a backend: an error answer, serving goes on."""
    site = tmp_path / "site"
    (site / "exiting_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "exiting_plugin.py").write_text(EXITING_PLUGIN)
    (site / "exiting_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: exiting-plugin\nVersion: 1.0\n"
    )
    (site / "exiting_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[lockkit]\nexiting = exiting_plugin\n"
    )
    held = tmp_path / "held.lock"
    with coprocess("--backend", "exiting", env=_env(site)) as co:
        assert co.call(1, op="acquire", name=str(held), timeout=0)["ok"] is True
        for rid, name in [(2, "exit.lock"), (3, "interrupt.lock")]:
            failed = co.call(rid, op="acquire", name=str(tmp_path / name), timeout=0)
            assert failed["error"]["type"] == "BackendError", failed
        assert co.call(4, op="status", name=str(held))["held"] is True  # still serving
        assert co.close() == 0
        assert "Traceback" not in co.stderr()
    assert not held.exists()  # released at end of input


@pytest.mark.parametrize("backend", BACKENDS)
def test_end_of_input_releases_everything(
    tmp_path: pathlib.Path, backend: str, stale_recorder: _StaleRecorder
) -> None:
    paths = [tmp_path / "one.lock", tmp_path / "two.lock"]
    with coprocess("--backend", backend) as co:
        for rid, path in enumerate(paths):
            assert co.call(rid, op="acquire", name=str(path))["ok"] is True
        assert not free_now(paths[0], backend)
        assert co.close() == 0
        assert co.stderr() == ""
    if backend != "filelock":
        assert not any(path.exists() for path in paths)  # released, not left to go stale
    assert all(free_now(path, backend) for path in paths)
    assert stale_recorder.broken == []


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name
)
def test_stop_signals_release_and_exit(
    tmp_path: pathlib.Path, sig: signal.Signals, stale_recorder: _StaleRecorder
) -> None:
    path = tmp_path / "signal.lock"
    held = tmp_path / "held.lock"
    with lockkit.Lock(held, backend="excl"), coprocess("--backend", "excl") as co:
        assert co.call(1, op="acquire", name=str(path))["ok"] is True
        co.send(id=2, op="acquire", name=str(held), timeout=None)  # waiting when it stops
        # Requests are read in order: once this is answered, the acquire above waits.
        assert co.call(3, op="status", name=str(held))["held"] is False
        os.kill(co.pid, sig)
        assert co.answer(2)["error"]["type"] == "Cancelled"
        assert co.process.wait(timeout=WAIT) == 128 + sig
        assert co.stderr() == ""
    assert not path.exists()
    assert free_now(path, "excl")
    assert stale_recorder.broken == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_of_the_coprocess_frees_its_lock_within_2s(
    tmp_path: pathlib.Path, backend: str
) -> None:
    """The next user, already waiting, gets the lock within 2 s of the SIGKILL."""
    path = tmp_path / "killed.lock"
    lock = lockkit.Lock(path, backend=backend)
    got = threading.Event()
    with coprocess("--backend", backend) as co:
        assert co.call(1, op="acquire", name=str(path))["ok"] is True
        waiting = threading.Event()

        def next_user() -> None:
            waiting.set()
            with lock.acquire(timeout=WAIT):
                got.set()

        user = threading.Thread(target=next_user)
        user.start()
        try:
            waiting.wait(WAIT)
            assert not got.wait(0.2)  # it waits while the co-process holds the lock
            os.kill(co.pid, signal.SIGKILL)
            co.process.wait(timeout=WAIT)
            assert got.wait(2.0), "the next user did not get the lock within 2 s"
        finally:
            user.join(WAIT)
    assert free_now(path, backend)


# -- from Node -------------------------------------------------------------------------------

NODE_WORKER = """
const fs = require("fs");
const { CoProcess } = require(process.argv[2]);
const [python, lock, backend, counter, marker, times] = process.argv.slice(3);
(async () => {
  const lockkit = await CoProcess.start({ python, args: ["--backend", backend] });
  process.stdout.write("ready\\n");
  await new Promise((resolve) => process.stdin.once("data", resolve)); // the test says go
  const rounds = [];
  for (let i = 0; i < Number(times); i++) {
    const start = process.hrtime.bigint();
    const { handle } = await lockkit.acquire(lock, { timeout: 60 });
    // The holder marker: a second holder inside the critical section fails to create it.
    fs.closeSync(fs.openSync(marker, "wx"));
    const value = Number.parseInt(fs.readFileSync(counter, "utf8"), 10);
    fs.writeFileSync(counter, String(value + 1));
    fs.unlinkSync(marker);
    await lockkit.release(handle);
    rounds.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const { code } = await lockkit.close();
  process.stdout.write(JSON.stringify({ code, rounds }) + "\\n");
  process.exit(0);
})().catch((error) => {
  process.stderr.write(`${error.stack}\\n`);
  process.exit(1);
});
"""

PYTHON_WORKER = """
import os, sys
import lockkit

lock_path, backend, counter, marker, times = sys.argv[1:]
lock = lockkit.Lock(lock_path, backend=backend)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(times)):
    with lock:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # a second holder fails
        with open(counter) as handle:
            value = int(handle.read())
        with open(counter, "w") as handle:
            handle.write(str(value + 1))
        os.unlink(marker)
print("done", flush=True)
"""

NODE_WORKERS, PYTHON_WORKERS, TIMES = 2, 2, 40


@contextlib.contextmanager
def _reaped(*processes: subprocess.Popen[str]) -> Iterator[None]:
    """Kill (with their process group: a Node worker's co-process) and reap, even on failure."""
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_and_python_users_lose_no_update(tmp_path: pathlib.Path, backend: str) -> None:
    node = _node()
    lock, counter, marker = tmp_path / "counter.lock", tmp_path / "counter", tmp_path / "holder"
    counter.write_text("0")
    (tmp_path / "worker.js").write_text(NODE_WORKER)
    shared = [str(lock), backend, str(counter), str(marker), str(TIMES)]
    commands = [
        *[[node, str(tmp_path / "worker.js"), str(CLIENT), sys.executable, *shared]] * NODE_WORKERS,
        *[[sys.executable, "-c", PYTHON_WORKER, *shared]] * PYTHON_WORKERS,
    ]
    workers = [
        subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            start_new_session=True,
        )
        for argv in commands
    ]
    with _reaped(*workers):
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n", worker.stderr
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        rounds: list[float] = []
        failures = []
        for argv, worker in zip(commands, workers, strict=True):
            out, err = worker.communicate(timeout=WAIT * 2)
            if worker.returncode != 0:
                failures.append(f"{argv[:2]} exited with {worker.returncode}: {err}")
            elif argv[0] == node:
                report = json.loads(out)
                assert report["code"] == 0  # the co-process exited 0 at end of input
                rounds.extend(report["rounds"])
        assert failures == []  # includes EEXIST on the holder marker: 0 double holders
    assert int(counter.read_text()) == (NODE_WORKERS + PYTHON_WORKERS) * TIMES  # 0 lost
    assert not marker.exists()
    assert free_now(lock, backend)
    rounds.sort()
    print(
        f"\n{backend}: contended Node lock+unlock round trip p50 {rounds[len(rounds) // 2]:.3f} ms"
    )


NODE_ROUND_TRIPS = """
const { CoProcess } = require(process.argv[2]);
const [python, lock, backend] = process.argv.slice(3);
(async () => {
  const lockkit = await CoProcess.start({ python, args: ["--backend", backend] });
  const rounds = [];
  for (let i = 0; i < 300; i++) {
    const start = process.hrtime.bigint();
    const { handle } = await lockkit.acquire(lock, { timeout: 10 });
    await lockkit.release(handle);
    rounds.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  await lockkit.close();
  rounds.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ p50: rounds[150], p90: rounds[270] }) + "\\n");
})().catch((error) => {
  process.stderr.write(`${error.stack}\\n`);
  process.exit(1);
});
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_round_trip_sanity(tmp_path: pathlib.Path, backend: str) -> None:
    """Prints the uncontended lock+unlock round trip from Node; asserts no timing.

    Timing belongs in the benchmarks; on a shared machine only a gross bound would hold.
    """
    node = _node()
    (tmp_path / "rounds.js").write_text(NODE_ROUND_TRIPS)
    lock = tmp_path / "rounds.lock"
    argv = [node, str(tmp_path / "rounds.js"), str(CLIENT), sys.executable, str(lock), backend]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=_env(), timeout=WAIT * 2, check=False
    )
    assert result.returncode == 0, result.stderr
    times = json.loads(result.stdout)
    print(
        f"\n{backend}: Node lock+unlock round trip "
        f"p50 {times['p50']:.3f} ms, p90 {times['p90']:.3f} ms"
    )
    assert free_now(lock, backend)


NODE_HOLDS = """
const { CoProcess } = require(process.argv[2]);
const [python, lock, backend] = process.argv.slice(3);
(async () => {
  const lockkit = await CoProcess.start({ python, args: ["--backend", backend] });
  await lockkit.acquire(lock, { timeout: 10 });
  process.stdout.write(`${lockkit.pid}\\n`); // held; now wait to be killed
  setInterval(() => {}, 1 << 30);
})().catch((error) => {
  process.stderr.write(`${error.stack}\\n`);
  process.exit(1);
});
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_caller_killed_coprocess_releases_and_exits(
    tmp_path: pathlib.Path, backend: str, stale_recorder: _StaleRecorder
) -> None:
    node = _node()
    (tmp_path / "holds.js").write_text(NODE_HOLDS)
    lock = tmp_path / "caller.lock"
    argv = [node, str(tmp_path / "holds.js"), str(CLIENT), sys.executable, str(lock), backend]
    caller = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    co_pid = None
    try:
        with _reaped(caller):
            assert caller.stdout is not None
            co_pid = int(caller.stdout.readline())
            assert not free_now(lock, backend)
            os.kill(caller.pid, signal.SIGKILL)
            caller.wait(timeout=WAIT)
        # Not our child: poll until it is gone (it sees end of input, releases, exits).
        deadline = time.monotonic() + WAIT
        while _info.pid_alive(co_pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _info.pid_alive(co_pid)
    finally:
        if co_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(co_pid, signal.SIGKILL)
    if backend != "filelock":
        assert not lock.exists()  # released by the co-process, not left for the stale rules
    assert free_now(lock, backend)
    assert stale_recorder.broken == []
