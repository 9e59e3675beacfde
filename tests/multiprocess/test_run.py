"""`lockkit run` with real processes: Node, sh and Python users of one lock lose nothing.

The counter is updated with a plain read-modify-write (no atomic append) by Node
scripts and ``sh`` loops that go through ``lockkit run``, and by Python processes that
use ``lockkit.Lock`` directly, all at once on the same lock file; only the lock keeps
the count exact. Workers start together: each says ``ready`` on stdout and waits for a
line on stdin, which the test writes once every worker is ready.

The rest checks the command-line contract: exit statuses, signal forwarding, the busy
status 75 naming the holder, ``LOCKKIT_LOCK``, TTL renewal, and what happens when
``lockkit run`` itself is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import lockkit
from lockkit import _info
from lockkit._registry import get_registry
from lockkit.spec import hookimpl
from tests.helpers.processes import free_now
from tests.mounts import skip_or_fail

pytestmark = [pytest.mark.multiprocess, pytest.mark.fs]

LOCKKIT = [sys.executable, "-m", "lockkit"]
BACKENDS = ["excl", "hardlink", "filelock"]
WAIT = 120.0  # s: generous bound for any process of these tests to finish


def _node() -> str:
    found = shutil.which("node")
    if found is None:
        skip_or_fail("node not found on PATH (install nodejs)")
    return found


@contextlib.contextmanager
def _reaped(*processes: subprocess.Popen[str]) -> Iterator[None]:
    """Kill and reap whatever is still running when the block ends, even on failure.

    Every process here starts in its own session (`_popen`), so killing its group also
    kills the command `lockkit run` started, which would otherwise outlive the test.
    """
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


# Runs argv[2:] with every signal at its default and unblocked, except those named
# (comma-separated) in argv[1], which are ignored. The suite may run under ``nohup``
# (SIGHUP ignored) or from a shell's background job (SIGINT and SIGQUIT ignored), and
# ignored signals are inherited across exec: tests about signals must not depend on
# that. A launcher rather than ``preexec_fn``, which is unsafe in a threaded process.
LAUNCH = """
import os, signal, sys
for sig in signal.valid_signals():
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
for name in filter(None, sys.argv[1].split(",")):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, set())
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _launched(argv: list[str], *, ignoring: str = "") -> list[str]:
    return [sys.executable, "-c", LAUNCH, ignoring, *argv]


def _popen(argv: list[str], *, ignoring: str = "", **kwargs: Any) -> subprocess.Popen[str]:
    """Start a process in its own session with default signal dispositions."""
    kwargs.setdefault("text", True)
    return subprocess.Popen(_launched(argv, ignoring=ignoring), start_new_session=True, **kwargs)


def _argv(path: pathlib.Path, *options: str, command: list[str]) -> list[str]:
    return [*LOCKKIT, "run", str(path), *options, "--", *command]


def _run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        _launched([*LOCKKIT, "run", *args]),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        **kwargs,
    )


# -- the counter, shared by Node, sh and Python ----------------------------------------------

NODE_WORKER = """
const { spawnSync } = require("child_process");
const fs = require("fs");
const [python, lock, backend, increment, counter, times] = process.argv.slice(2);
process.stdout.write("ready\\n");
fs.readSync(0, Buffer.alloc(16), 0, 16, null); // blocks until the test says go
for (let i = 0; i < Number(times); i++) {
  const result = spawnSync(
    python,
    ["-m", "lockkit", "run", lock, "--backend", backend, "--",
     process.execPath, increment, counter],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  if (result.status !== 0) {
    process.stderr.write(`lockkit run exited with ${result.status} (${result.signal})\\n`);
    process.exit(1);
  }
}
"""

# Run by `lockkit run` for the Node workers: the read-modify-write under the lock.
NODE_INCREMENT = """
const fs = require("fs");
const counter = process.argv[2];
if (!process.env.LOCKKIT_LOCK) {
  process.stderr.write("LOCKKIT_LOCK is not set\\n");
  process.exit(2);
}
const value = Number.parseInt(fs.readFileSync(counter, "utf8"), 10);
fs.writeFileSync(counter, String(value + 1));
"""

SH_WORKER = """
set -u
echo ready
read -r go
i=0
while [ "$i" -lt "$TIMES" ]; do
  "$PYTHON" -m lockkit run "$LOCK" --backend "$BACKEND" -- \
    sh -c 'n=$(cat "$1"); echo $((n + 1)) > "$1"' sh "$COUNTER" || exit 1
  i=$((i + 1))
done
"""

# Increments until its stdin is closed, then prints how many times it did.
PYTHON_WORKER = """
import sys, threading
import lockkit

lock_path, backend, counter = sys.argv[1:]
lock = lockkit.Lock(lock_path, backend=backend)
print("ready", flush=True)
sys.stdin.readline()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
done = 0
while not stop.is_set():
    with lock:
        with open(counter) as handle:
            value = int(handle.read())
        with open(counter, "w") as handle:
            handle.write(str(value + 1))
    done += 1
    # Pacing, not synchronisation: a Python user re-takes the lock within microseconds
    # and would starve the slower `lockkit run` users.
    stop.wait(0.01)
print(done, flush=True)
"""

NODE_WORKERS, NODE_TIMES = 2, 5
SH_WORKERS, SH_TIMES = 2, 5
PYTHON_WORKERS = 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_node_sh_and_python_users_lose_no_update(tmp_path: pathlib.Path, backend: str) -> None:
    node = _node()
    lock = tmp_path / "counter.lock"
    counter = tmp_path / "counter"
    counter.write_text("0")
    (tmp_path / "worker.js").write_text(NODE_WORKER)
    (tmp_path / "increment.js").write_text(NODE_INCREMENT)
    node_args = [sys.executable, str(lock), backend, str(tmp_path / "increment.js")]
    sh_env = {
        **os.environ,
        "PYTHON": sys.executable,
        "LOCK": str(lock),
        "BACKEND": backend,
        "COUNTER": str(counter),
        "TIMES": str(SH_TIMES),
    }
    python_args = [str(lock), backend, str(counter)]
    commands: list[tuple[list[str], dict[str, str] | None]] = [
        *[
            ([node, str(tmp_path / "worker.js"), *node_args, str(counter), str(NODE_TIMES)], None)
            for _ in range(NODE_WORKERS)
        ],
        *[(["sh", "-c", SH_WORKER], sh_env) for _ in range(SH_WORKERS)],
        *[
            ([sys.executable, "-c", PYTHON_WORKER, *python_args], None)
            for _ in range(PYTHON_WORKERS)
        ],
    ]
    workers = [
        _popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv, env in commands
    ]
    with _reaped(*workers):
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n", worker.args
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        failures = []
        python_done = 0
        # Node and sh workers first; the Python workers keep contending until then.
        for (argv, _), worker in zip(commands, workers, strict=True):
            out, err = worker.communicate(timeout=WAIT)
            if worker.returncode != 0:
                failures.append(f"{argv[:2]} exited with {worker.returncode}: {err}")
            elif argv[1] == "-c" and argv[2] == PYTHON_WORKER:
                python_done += int(out)
        assert failures == []
    expected = NODE_WORKERS * NODE_TIMES + SH_WORKERS * SH_TIMES + python_done
    assert int(counter.read_text()) == expected  # 0 lost updates
    assert free_now(lock, backend)


# -- SIGKILL of lockkit run --------------------------------------------------------------------


class _StaleRecorder:
    def __init__(self) -> None:
        self.broken: list[tuple[lockkit.LockInfo, str]] = []

    @hookimpl
    def lockkit_stale_broken(
        self, name: str, backend: str, info: lockkit.LockInfo, reason: str
    ) -> None:
        self.broken.append((info, reason))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_of_lockkit_run_leaves_a_lock_the_next_user_reclaims(
    tmp_path: pathlib.Path, backend: str
) -> None:
    recorder = _StaleRecorder()
    get_registry().register(recorder, name="stale-recorder")
    path = tmp_path / "killed.lock"
    run = _popen(
        _argv(path, "--backend", backend, command=["sh", "-c", "echo $$; exec sleep 60"]),
        stdout=subprocess.PIPE,
    )
    try:
        assert run.stdout is not None
        command = int(run.stdout.readline())  # the command runs: the lock is held
        lock = lockkit.Lock(path, backend=backend)
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == run.pid  # the owner is lockkit run, not the command
        os.kill(run.pid, signal.SIGKILL)
        assert run.wait(timeout=WAIT) == -signal.SIGKILL
        assert _info.pid_alive(command)  # the command outlives it, unlocked
        with lock.acquire(timeout=5):
            held = lock.inspect()
            assert held is not None
            assert held.owner is not None
            assert held.owner.pid == os.getpid()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        if run.stdout is not None:
            run.stdout.close()
    if backend == "filelock":
        assert recorder.broken == []  # the kernel freed it when lockkit run died
    else:
        [(broken, reason)] = recorder.broken  # broken by the stale rules, once
        assert broken.owner is not None
        assert broken.owner.pid == run.pid
        assert reason == f"holder pid {run.pid} is not running"


# -- exit status, signals, busy locks --------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
        (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL),
    ],
    ids=["0", "3", "sigterm", "sigkill"],
)
def test_exit_status_is_the_commands(
    tmp_path: pathlib.Path, command: list[str], status: int
) -> None:
    path = tmp_path / "status.lock"
    result = _run(str(path), "--backend", "excl", "--", *command)
    assert result.returncode == status
    assert result.stderr == ""
    assert free_now(path, "excl")  # released once the command is gone
    assert not path.exists()


SIGNALLED = """
import signal, sys

def handler(signum, frame):
    with open(sys.argv[1], "w") as handle:
        handle.write(signal.Signals(signum).name)
    sys.exit(7)

for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
    signal.signal(getattr(signal, name), handler)
print("ready", flush=True)
while True:
    signal.pause()
"""


@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2],
    ids=lambda sig: sig.name,
)
def test_signals_are_forwarded_to_the_command(tmp_path: pathlib.Path, sig: signal.Signals) -> None:
    path = tmp_path / "signal.lock"
    seen = tmp_path / "seen"
    run = _popen(  # its own session: no controlling terminal, every signal is forwarded
        _argv(path, "--backend", "excl", command=[sys.executable, "-c", SIGNALLED, str(seen)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with _reaped(run):
        assert run.stdout is not None
        assert run.stdout.readline() == "ready\n"
        os.kill(run.pid, sig)
        _, err = run.communicate(timeout=WAIT)
        assert run.returncode == 7  # the command's own status: it handled the signal
        assert err == ""
    assert seen.read_text() == sig.name
    assert free_now(path, "excl")


def test_signal_tests_hold_under_nohup(tmp_path: pathlib.Path) -> None:
    """The suite run under ``nohup`` (SIGHUP ignored, inherited): still forwarded.

    Before `_popen` reset dispositions, this case hung for 120 s and left the command
    running.
    """
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        test_signals_are_forwarded_to_the_command(tmp_path, signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_signal_ignored_by_the_caller_stays_ignored(tmp_path: pathlib.Path) -> None:
    """``nohup lockkit run ...``: lockkit run does not pass on SIGHUP the caller ignores."""
    path = tmp_path / "nohup.lock"
    seen = tmp_path / "seen"
    run = _popen(
        _argv(path, "--backend", "excl", command=[sys.executable, "-c", SIGNALLED, str(seen)]),
        ignoring="SIGHUP",
        stdout=subprocess.PIPE,
    )
    with _reaped(run):
        assert run.stdout is not None
        assert run.stdout.readline() == "ready\n"
        os.kill(run.pid, signal.SIGHUP)  # ignored by lockkit run: not forwarded
        os.kill(run.pid, signal.SIGUSR1)  # forwarded after it; the command exits on it
        run.communicate(timeout=WAIT)
        assert run.returncode == 7
    assert seen.read_text() == "SIGUSR1"


# Exits on SIGUSR1, saying how many SIGINTs came first.
COUNTS_INTERRUPTS = """
import signal, sys

count = 0

def on_int(signum, frame):
    global count
    count += 1
    print(f"INT {count}", flush=True)

def on_usr1(signum, frame):
    print(f"USR1 after {count} INT", flush=True)
    sys.exit(9)

signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGUSR1, on_usr1)
print("ready", flush=True)
while True:
    signal.pause()
"""

# Runs argv on a new pseudo-terminal as its foreground job, types Ctrl-C once the
# command is ready, then sends SIGUSR1 to lockkit run.
TERMINAL = """
import json, os, pty, signal, sys

argv = json.loads(sys.argv[1])
pid, master = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
output = b""

def read_until(token):
    global output
    while token not in output:
        try:
            chunk = os.read(master, 1024)
        except OSError:  # EIO: every process left the terminal
            return False
        if not chunk:
            return False
        output += chunk
    return True

if read_until(b"ready"):
    os.write(master, b"\\x03")  # Ctrl-C: the kernel signals the whole foreground group
    if read_until(b"INT 1"):
        os.kill(pid, signal.SIGUSR1)
read_until(b"not printed: read to the end")
_, status = os.waitpid(pid, 0)
print(json.dumps({"output": output.decode(errors="replace"),
                  "status": os.waitstatus_to_exitcode(status)}))
"""


def test_ctrl_c_at_a_terminal_reaches_the_command_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "terminal.lock"
    argv = _argv(path, "--backend", "excl", command=[sys.executable, "-c", COUNTS_INTERRUPTS])
    result = subprocess.run(
        _launched([sys.executable, "-c", TERMINAL, json.dumps(argv)]),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # lockkit run got the same SIGINT from the terminal and did not pass on a second
    # copy: forwarding happens in signal-number order, so a copy would have arrived
    # before the (forwarded) SIGUSR1.
    assert "USR1 after 1 INT" in report["output"]
    assert report["status"] == 9
    assert free_now(path, "excl")


@pytest.mark.parametrize("backend", ["excl", "filelock"])
@pytest.mark.parametrize("options", [["--nonblock"], ["-n"], ["--timeout", "0"]])
def test_busy_lock_exits_75_naming_the_holder(
    tmp_path: pathlib.Path, backend: str, options: list[str]
) -> None:
    path = tmp_path / "busy.lock"
    with lockkit.Lock(path, backend=backend):
        result = _run(str(path), "--backend", backend, *options, "--", "sh", "-c", "echo ran")
    assert result.returncode == 75
    assert result.stdout == ""  # the command did not run
    [line] = result.stderr.splitlines()
    host = _info.process_identity().host
    assert f"held by pid {os.getpid()} on host {host}" in line
    assert "did not run 'sh'" in line


def test_timeout_that_runs_out_exits_75(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "busy.lock"
    with lockkit.Lock(path, backend="excl"):
        start = time.monotonic()
        result = _run(str(path), "--backend", "excl", "--timeout", "0.5", "--", "true")
        elapsed = time.monotonic() - start
    assert result.returncode == 75
    assert elapsed >= 0.5
    assert "timed out after 0.5 s" in result.stderr
    assert f"held by pid {os.getpid()}" in result.stderr


@pytest.mark.parametrize(
    ("program", "status", "message"),
    [
        ("lockkit-no-such-command", 127, "lockkit-no-such-command: command not found"),
        ("./missing-script", 127, "./missing-script: no such file"),
        ("./not-executable", 126, "./not-executable: cannot execute: Permission denied"),
    ],
)
def test_command_that_cannot_run(
    tmp_path: pathlib.Path, program: str, status: int, message: str
) -> None:
    (tmp_path / "not-executable").write_text("#!/bin/sh\necho ran\n")  # mode 0644
    path = tmp_path / "exec.lock"
    result = _run(str(path), "--backend", "excl", "--", program, cwd=tmp_path)
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr.strip() == f"lockkit run: {message}"
    assert free_now(path, "excl")


def test_missing_command_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "usage.lock"
    result = _run(str(path), "--backend", "excl")
    assert result.returncode == 2
    assert "no command to run" in result.stderr
    assert not path.exists()  # nothing was locked


def test_command_learns_the_lock_name(tmp_path: pathlib.Path) -> None:
    result = _run(
        "relative.lock",
        "--backend",
        "excl",
        "--",
        "sh",
        "-c",
        'printf %s "$LOCKKIT_LOCK"',
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert result.stdout == str(tmp_path / "relative.lock")  # canonical: absolute


def test_command_starts_with_default_sigpipe_and_sigxfsz(tmp_path: pathlib.Path) -> None:
    """Python ignores SIGPIPE (and SIGXFSZ); the command must not inherit that.

    Otherwise ``lockkit run L -- sh -c 'yes | head -1'`` would never end its ``yes`` by
    SIGPIPE. The command's ignored set is read from the kernel.
    """
    result = _run(
        str(tmp_path / "sig.lock"),
        "--backend",
        "excl",
        "--",
        "sh",
        "-c",
        "grep '^SigIgn:' /proc/$$/status",
    )
    assert result.returncode == 0, result.stderr
    ignored = int(result.stdout.split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (sig - 1)), sig.name


def test_descriptors_lockkit_run_inherited_are_closed_in_the_command(
    tmp_path: pathlib.Path,
) -> None:
    """What ``close_fds`` did: the command gets stdin, stdout and stderr, nothing else."""
    read_end, write_end = os.pipe()
    try:
        result = _run(
            str(tmp_path / "fd.lock"),
            "--backend",
            "excl",
            "--",
            "sh",
            "-c",
            f"test -e /proc/$$/fd/{write_end} && echo open || echo closed",
            pass_fds=(write_end,),
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "closed\n"


WAITS = "import sys; print('ready', flush=True); sys.stdin.readline()"


def test_ttl_is_renewed_while_the_command_runs(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ttl.lock"
    run = _popen(
        _argv(path, "--backend", "excl", "--ttl", "0.6", command=[sys.executable, "-c", WAITS]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    with _reaped(run):
        assert run.stdout is not None
        assert run.stdin is not None
        assert run.stdout.readline() == "ready\n"
        lock = lockkit.Lock(path, backend="excl")
        first = lock.inspect()
        assert first is not None
        assert first.expires is not None
        # Unrenewed, the lock would expire after 0.6 s and be broken as stale.
        with pytest.raises(lockkit.LockTimeout):
            lock.acquire(timeout=2.0)
        later = lock.inspect()
        assert later is not None
        assert later.owner is not None
        assert later.owner.pid == run.pid
        assert later.expires is not None
        assert later.expires > first.expires
        run.stdin.write("done\n")
        run.stdin.flush()
        assert run.wait(timeout=WAIT) == 0
    assert free_now(path, "excl")


def test_run_from_another_thread_leaves_signal_handlers_alone(tmp_path: pathlib.Path) -> None:
    # An embedding program may call run_locked from a worker thread, where handlers
    # cannot be set: the command still runs under the lock, and the process's own
    # handlers are untouched.
    import threading

    from lockkit._run import run_locked

    marker = tmp_path / "ran"
    before = signal.getsignal(signal.SIGTERM)
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(
            run_locked(str(tmp_path / "t.lock"), ["sh", "-c", f"touch {marker}"], backend="excl")
        )
    )
    worker.start()
    worker.join(timeout=60)
    assert result == [0]
    assert marker.exists()
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "t.lock").exists()
