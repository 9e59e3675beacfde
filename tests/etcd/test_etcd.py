"""The etcd backend (plugin lockkit-etcd) against a real etcd server.

What the issue asks each distributed engine to show: fencing tokens strictly increasing
under contention, a killed holder's lock taken over within the TTL, and a holder told
of its loss when the server restarts or freezes, with no two holders at once by
fencing order. Plus the waiter watching (not polling), TLS with authentication, errors
without secrets, and selection by URL, environment and settings file.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from lockkit_etcd import EtcdBackend

import lockkit
from tests.helpers.fencing import run_fenced
from tests.helpers.paused import take_over_from_paused_holder

if TYPE_CHECKING:
    import pathlib

    from lockkit_etcd.server import EtcdServer

pytestmark = pytest.mark.etcd

_HOLDER = textwrap.dedent(
    """
    import signal, sys
    import lockkit

    lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2], ttl=float(sys.argv[3]), timeout=30)
    lock.acquire()
    print(lock.lease.fencing_token, flush=True)
    signal.pause()
    """
)


def _name() -> str:
    return f"t-{uuid.uuid4().hex}"


def _watchers(url: str) -> int:
    """Watchers open on the server, from its Prometheus metrics."""
    port = re.search(r":(\d+)", url.split("://", 1)[1])
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.MULTILINE)
    return int(float(found[1])) if found else 0


def _until_watching(url: str, count: int = 1) -> None:
    """Return once ``count`` watchers are open (where a waiter waits, not the outcome)."""
    deadline = time.monotonic() + 10
    while _watchers(url) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _watchers(url) >= count, "the waiter never opened its watch"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_fencing_tokens_strictly_increase_under_contention(etcd_url: str) -> None:
    # 6 processes x 1,000 acquisitions, each writing its token inside the lock.
    started = time.monotonic()
    run = run_fenced(etcd_url, processes=6, acquisitions=1000, name=_name())
    print(f"6 x 1000 fenced acquisitions: {time.monotonic() - started:.1f} s")
    assert run.escaped == ()
    assert run.errors == ()
    assert run.acquisitions == 6000
    assert len(run.tokens) == 6000
    assert run.non_increasing == 0
    assert run.lost_updates == 0
    assert run.double_holders == 0
    assert run.not_held == 0
    assert run.lost_events == 0


@pytest.mark.multiprocess
def test_killed_holder_is_replaced_within_the_ttl(etcd_url: str) -> None:
    """SIGKILL of a holder: its lease expires, the watching waiter gets the lock."""
    ttl = 3.0
    name = _name()
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, name, etcd_url, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        old_token = int(child.stdout.readline())
        waiter = lockkit.Lock(name, backend=etcd_url, timeout=30)
        got: list[float] = []
        tokens: list[int | None] = []

        def wait() -> None:
            with waiter:
                got.append(time.monotonic())
                tokens.append(waiter.lease.fencing_token if waiter.lease else None)

        before = _watchers(etcd_url)
        thread = threading.Thread(target=wait)
        thread.start()
        _until_watching(etcd_url, before + 1)  # queued while the holder lives
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        thread.join(30)
        assert got, "the waiter never got the lock"
        handoff = got[0] - killed_at
        print(f"kill -9 -> next holder: {handoff:.2f} s (ttl {ttl:g} s)")
        # The lease lasts ttl from its last renewal, before the kill; etcd's expiry
        # sweep runs every 500 ms.
        assert handoff < ttl + 1.0
        assert tokens[0] is not None
        assert tokens[0] > old_token
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_waiter_watches_instead_of_polling(etcd_url: str) -> None:
    """While the holder keeps the lock, a waiter makes no attempts: it is woken once."""
    name = _name()
    backend = EtcdBackend.from_url(etcd_url)
    attempts: list[float] = []
    original = backend.try_acquire

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(time.monotonic())
        return original(*args, **kwargs)

    backend.try_acquire = counted  # type: ignore[method-assign]
    holder = lockkit.Lock(name, backend=etcd_url, timeout=5)
    holder.acquire()
    waiter = lockkit.Lock(name, backend=backend, timeout=30)
    held: list[bool] = []

    def wait() -> None:
        with waiter:
            held.append(waiter.is_held())

    before = _watchers(etcd_url)
    thread = threading.Thread(target=wait)
    thread.start()
    try:
        _until_watching(etcd_url, before + 1)
        time.sleep(1.5)  # the window in which a polling waiter would try again and again
        during = len(attempts)
    finally:
        released_at = time.monotonic()
        holder.release()
        thread.join(30)
    assert held == [True]
    print(f"attempts while held: {during}; woken after {attempts[-1] - released_at:.3f} s")
    assert during == 1, f"{during} attempts in 1.5 s while the lock was held: polling"
    assert len(attempts) == during + 1, "the release did not wake the waiter for one attempt"


def _held_until_lost(url: str, name: str, ttl: float) -> tuple[lockkit.Lock, threading.Event]:
    lost = threading.Event()
    lock = lockkit.Lock(name, backend=url, ttl=ttl, timeout=30, on_lost=lambda _: lost.set())
    lock.acquire()
    return lock, lost


def _take_after(url: str, name: str, old: lockkit.Lock) -> None:
    """Another holder gets the lock, with a higher fencing token than ``old``'s."""
    assert old.lease is not None
    old_token = old.lease.fencing_token
    assert old_token is not None
    with lockkit.Lock(name, backend=url, timeout=30) as new:
        assert new.lease is not None
        assert new.lease.fencing_token is not None
        assert new.lease.fencing_token > old_token
        assert not old.is_held()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_server_restart_during_a_hold_is_a_loss(etcd_server: EtcdServer, how: str) -> None:
    """The server goes down (cleanly or crashing) during a hold, and comes back."""
    url = etcd_server.url
    name = _name()
    lock, lost = _held_until_lost(url, name, ttl=1.5)
    if how == "stop":
        etcd_server.stop()
    else:
        etcd_server.kill()
    try:
        started = time.monotonic()
        assert lost.wait(10), "on_lost did not fire while the server was down"
        print(f"{how} -> on_lost: {time.monotonic() - started:.2f} s")
        assert not lock.is_held()
    finally:
        etcd_server.start()
    # etcd keeps leases across a restart: the old key lives until its lease runs out
    # (nobody renews it), then the next holder gets a higher token.
    _take_after(url, name, lock)
    lock.release()  # lost: answers False, raises nothing


@pytest.mark.slow
def test_frozen_server_during_a_hold_is_a_loss(etcd_server: EtcdServer) -> None:
    """SIGSTOP of the server: the renewal gets no answer before the lease ends."""
    url = etcd_server.url
    name = _name()
    lock, lost = _held_until_lost(url, name, ttl=1.5)
    etcd_server.pause()
    try:
        started = time.monotonic()
        assert lost.wait(10), "on_lost did not fire while the server was frozen"
        print(f"SIGSTOP -> on_lost: {time.monotonic() - started:.2f} s")
    finally:
        etcd_server.resume()
    assert not lock.is_held()
    _take_after(url, name, lock)
    lock.release()


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["restart", "freeze"])
def test_no_two_holders_across_a_server_fault(etcd_server: EtcdServer, fault: str) -> None:
    """6 contending processes; the server restarts or freezes for 3 s midway."""

    def inject() -> None:
        if fault == "restart":
            etcd_server.restart()
        else:
            etcd_server.pause()
            time.sleep(3)  # the fault's duration, not synchronisation
            etcd_server.resume()

    run = run_fenced(
        etcd_server.url,
        processes=6,
        acquisitions=150,
        name=_name(),
        milestone_at=50,
        during=inject,
    )
    print(
        f"{fault}: acquisitions={run.acquisitions} non_increasing={run.non_increasing} "
        f"double_holders={run.double_holders} lost_updates={run.lost_updates} "
        f"errors={len(run.errors)} on_lost={run.lost_events}"
    )
    assert run.escaped == ()
    assert run.acquisitions == 900
    # A holder whose renewal fails gives the lock up (on_lost) while its lease may still
    # run on the server, so the next holder waits for that lease: the only overlap
    # possible is a holder that learns of its loss late, and fencing orders it. Tokens
    # never repeat, and a token behind the highest seen is always an overlap.
    behind, highest = 0, 0
    for token in run.tokens:
        behind += token <= highest
        highest = max(highest, token)
    assert behind <= run.double_holders, (behind, run.double_holders)
    assert len(set(run.tokens)) == len(run.tokens)
    assert run.lost_updates <= run.double_holders, (run.lost_updates, run.double_holders)
    if run.double_holders:
        assert run.lost_events >= 1  # the holder that overlapped was told


@pytest.mark.multiprocess
@pytest.mark.slow
def test_paused_holder_loses_to_a_higher_fencing_token(etcd_url: str) -> None:
    """A holder frozen past its TTL: etcd expires its lease; it is told when it wakes."""
    name = _name()
    waiter, before = take_over_from_paused_holder(name, etcd_url)
    try:
        assert before is not None
        assert waiter.lease is not None
        assert before.fencing_token is not None
        assert waiter.lease.fencing_token is not None
        assert waiter.lease.fencing_token > before.fencing_token
    finally:
        waiter.release()


@pytest.mark.parametrize("extra", ["", ",127.0.0.1:{port2}"])
def test_unreachable_server_is_unavailable_without_the_password(extra: str) -> None:
    port, port2 = _closed_port(), _closed_port()
    url = f"etcd://app:s3cr3t-pw@127.0.0.1:{port}{extra.format(port2=port2)}?timeout=2"
    lock = lockkit.Lock(_name(), backend=url, timeout=5)
    started = time.monotonic()
    with pytest.raises(lockkit.BackendUnavailable) as caught:
        lock.acquire()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "s3cr3t" not in message
    assert "s3cr3t" not in repr(lock.backend)
    assert f"127.0.0.1:{port}" in message
    assert "app:***@" in message


def test_a_second_endpoint_answers_when_the_first_is_down(etcd_url: str) -> None:
    host_port = etcd_url.split("://", 1)[1]
    url = f"etcd://127.0.0.1:{_closed_port()},{host_port}"
    with lockkit.Lock(_name(), backend=url, timeout=5) as lock:
        assert lock.is_held()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tls_and_authentication(etcd_tls_auth_server: EtcdServer) -> None:
    server = etcd_tls_auth_server
    url = server.url
    assert url.startswith("etcds://root:")
    name = _name()
    with lockkit.Lock(name, backend=url, timeout=5, ttl=5) as lock:
        assert lock.lease is not None
        assert lock.lease.fencing_token is not None
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()
        assert lock.backend.refresh(lock.lease, 5)
        # Another waiter watches through TLS and authentication too.
        other = lockkit.Lock(name, backend=url, timeout=0.5)
        with pytest.raises(lockkit.LockTimeout):
            other.acquire()
    assert server.password is not None
    wrong = url.replace(server.password, "not-the-password")
    with pytest.raises(lockkit.BackendUnavailable) as caught:
        lockkit.Lock(name, backend=wrong, timeout=5).acquire()
    assert "not-the-password" not in str(caught.value)
    assert "authentication failed" in str(caught.value)
    anonymous = url.replace(f"root:{server.password}@", "")
    with pytest.raises(lockkit.BackendUnavailable):
        lockkit.Lock(name, backend=anonymous, timeout=5).acquire()
    plain = url.replace("etcds://", "etcd://").split("?")[0]
    with pytest.raises(lockkit.BackendUnavailable) as caught:
        lockkit.Lock(name, backend=plain, timeout=5).acquire()
    assert server.password not in str(caught.value)


def test_forked_child_leaves_the_parents_lease_alone(etcd_url: str) -> None:
    name = _name()
    with lockkit.Lock(name, backend=etcd_url, timeout=5) as lock:
        assert lock.inspect() is not None  # an idle pooled connection, inherited too
        pid = os.fork()
        if pid == 0:  # the child: use the backend, drop the parent's lease
            code = 1
            try:
                with lockkit.Lock(_name(), backend=etcd_url, timeout=5):
                    pass
                lock.release()  # the parent's: forgotten here, never sent to the server
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock.is_held()
        info = lock.inspect()
        assert info is not None
        assert info.owner is not None
        assert info.owner.pid == os.getpid()


@pytest.mark.multiprocess
def test_doctor_checks_the_server(etcd_url: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lockkit",
            "doctor",
            "--backend",
            etcd_url,
            "--processes",
            "8",
            "--increments",
            "300",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    (check,) = [b for b in report["backends"] if b["name"] == "etcd"]
    assert check["works"] is True
    assert check["stress"]["expected"] == 2400
    assert check["stress"]["lost"] == 0
    print(f"doctor: {check['stress']}")


def test_selected_by_url_env_and_settings(
    etcd_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    for url in (etcd_url, etcd_url.replace("etcd://", "etcds://", 1)):
        assert lockkit.Lock(_name(), backend=url).backend.name == "etcd"
    monkeypatch.setenv("LOCKKIT_URL", etcd_url)
    with lockkit.Lock(_name(), timeout=5) as lock:
        assert lock.backend.name == "etcd"
    monkeypatch.delenv("LOCKKIT_URL")
    config = tmp_path / "openclaw.json"
    config.write_text(
        json.dumps({"plugins": {"entries": {"lockkit": {"config": {"url": etcd_url}}}}})
    )
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(config))
    with lockkit.Lock(_name(), timeout=5) as lock:
        assert lock.backend.name == "etcd"
