"""The backend contract suite: what every lockkit backend must do, as pytest tests.

A plugin runs it against its own backend with a few lines::

    # tests/test_contract.py of your plugin
    from lockkit.testing import BackendContract


    class TestMyBackend(BackendContract):
        backend = "mine"  # the entry-point name, or a URL such as "mine://host"

Every built-in backend passes the same suite. It checks: exclusion across threads and
across real processes (counting lost updates, which must be 0), timeouts and
non-blocking attempts, that a lease of someone else cannot release the lock, that
``inspect`` names the holder, that ``break_lock`` never removes anyone but the holder
it was given, recovery after the holder is killed with SIGKILL, TTL refresh where the
backend has the ``ttl`` capability, shared (read) locks and `lockkit.ReadWriteLock`'s
writer preference where it has the ``shared`` capability, and that bad names are
refused.

The processes are started with ``spawn``, so the backend must be installed (its entry
point visible) in the environment that runs the tests. Requires pytest.

Override the ``contract_backend`` fixture instead of the ``backend`` attribute when the
spec is only known at run time (a server URL from a fixture), and ``contract_name``
when lock names are not file paths.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING, ClassVar

import pytest

from lockkit._info import Owner
from lockkit._lock import Lock
from lockkit._rwlock import ReadWriteLock
from lockkit._stress import run_increments
from lockkit.errors import InvalidLockName, LockTimeout

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

__all__ = ["BackendContract"]

_HOLDER = textwrap.dedent(
    """
    import signal, sys
    from lockkit import Lock

    lock = Lock(sys.argv[1], backend=sys.argv[2], timeout=30)
    lock.acquire()
    print("held", flush=True)
    signal.pause()
    """
)


class BackendContract:
    """Subclass this (as ``Test...``) and set ``backend`` to run the contract suite."""

    backend: ClassVar[str] = ""
    """The backend spec under test: an entry-point name or a URL."""
    processes: ClassVar[int] = 4
    """Processes in the cross-process exclusion test."""
    increments: ClassVar[int] = 100
    """Increments per process in the cross-process exclusion test."""

    @pytest.fixture
    def contract_backend(self) -> str:
        """The backend spec; defaults to the ``backend`` class attribute."""
        if not self.backend:
            pytest.fail("set `backend` on the contract test class, or override contract_backend")
        return self.backend

    @pytest.fixture
    def contract_name(self, tmp_path: pathlib.Path) -> str:
        """A fresh lock name for one test (a path in a fresh directory)."""
        return str(tmp_path / "contract.lock")

    def lock(self, name: str, backend: str, **kwargs: object) -> Lock:
        """Build a lock for the backend under test."""
        return Lock(name, backend=backend, **kwargs)  # type: ignore[arg-type]

    def test_exclusive_across_threads(self, contract_backend: str, contract_name: str) -> None:
        """Eight threads, each with its own Lock object, lose no update."""
        counter = {"value": 0}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                lock = self.lock(contract_name, contract_backend, timeout=60)
                for _ in range(50):
                    with lock:
                        value = counter["value"]
                        # Not synchronisation: a deliberate window inside the critical
                        # section, releasing the GIL so a broken lock loses updates.
                        time.sleep(0.0001)
                        counter["value"] = value + 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert counter["value"] == 8 * 50

    def test_exclusive_across_processes(
        self, contract_backend: str, tmp_path: pathlib.Path
    ) -> None:
        """Real processes doing read-modify-write under the lock lose no update."""
        result = run_increments(
            str(tmp_path),
            contract_backend,
            processes=self.processes,
            increments=self.increments,
            timeout=300,
        )
        assert result.errors == ()
        assert result.lost == 0
        assert result.final == self.processes * self.increments

    def test_nonblocking_and_timeout(self, contract_backend: str, contract_name: str) -> None:
        """A busy lock refuses a non-blocking attempt and times out a blocking one."""
        with self.lock(contract_name, contract_backend):
            other = self.lock(contract_name, contract_backend)
            with pytest.raises(LockTimeout) as caught:
                other.acquire(blocking=False)
            assert caught.value.timeout == 0
            with pytest.raises(LockTimeout):
                other.acquire(timeout=0.1)
            assert not other.locked
        with self.lock(contract_name, contract_backend).acquire(timeout=5) as again:
            assert again.locked

    def test_release_by_non_owner_is_refused(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """A forged lease (another token) releases nothing."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            lease = lock.lease
            assert lease is not None
            forged = type(lease)(
                lease.name,
                lease.backend,
                Owner.current(),
                expires=lease.expires,
                ttl=lease.ttl,
                handle=lease.handle if lease.handle is None else _forge(lease.handle),
            )
            if forged.handle is not None and forged.handle is lease.handle:
                pytest.skip("the backend keeps its ownership proof in an opaque handle")
            assert lock.backend.release(forged) is False
            assert lock.is_held()

    def test_inspect_names_the_holder(self, contract_backend: str, contract_name: str) -> None:
        """While held, inspect reports this process; once released, nothing."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            info = lock.inspect()
            assert info is not None
            assert info.owner is not None
            assert info.owner.pid == os.getpid()
        assert lock.inspect() is None

    def test_break_lock_only_breaks_the_expected_holder(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """break_lock refuses a holder it was not given; for the right one it is consistent."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            info = lock.inspect()
            assert info is not None
            assert info.owner is not None
            stranger = type(info)(
                info.name,
                info.backend,
                Owner.current(),
                expires=info.expires,
                identity=info.identity,
                age=info.age,
            )
            assert lock.backend.break_lock(lock.name, stranger) is False
            assert lock.is_held()
            broken = lock.backend.break_lock(lock.name, info)
            assert lock.is_held() is (not broken)

    def test_recovers_after_the_holder_is_killed(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """A real holder process killed with SIGKILL: the next acquirer gets the lock."""
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _HOLDER, contract_name, contract_backend],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "held"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            with self.lock(contract_name, contract_backend).acquire(timeout=10) as lock:
                assert lock.is_held()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()

    def test_ttl_refresh(self, contract_backend: str, contract_name: str) -> None:
        """With the ttl capability: the lock records an expiry and refresh extends it."""
        ttl = 30.0
        lock = self.lock(contract_name, contract_backend, ttl=ttl)
        if not lock.backend.capabilities.ttl:
            pytest.skip("backend has no ttl capability")
        with lock:
            before = lock.inspect()
            assert before is not None
            assert before.expires is not None
            assert lock.lease is not None
            # The lease carries its ttl: that is what makes the core renew it.
            assert lock.lease.ttl == ttl
            assert lock.backend.refresh(lock.lease, 60) is True
            after = lock.inspect()
            assert after is not None
            assert after.expires is not None
            assert after.expires > before.expires

    @pytest.mark.parametrize("bad", ["", "with\0nul"])
    def test_bad_names_are_refused(self, contract_backend: str, bad: str) -> None:
        """Empty names and names with NUL are refused with InvalidLockName."""
        with pytest.raises(InvalidLockName):
            self.lock(bad, contract_backend)

    def test_shared_leases(self, contract_backend: str, contract_name: str) -> None:
        """With the shared capability: readers coexist and exclude writers, and back."""
        lock = self.lock(contract_name, contract_backend)
        backend, name = lock.backend, lock.name
        if not backend.capabilities.shared:
            pytest.skip("backend has no shared capability")
        ttl = 30.0 if backend.capabilities.ttl else None
        first = backend.try_acquire(name, Owner.current(), ttl, shared=True)
        assert first is not None
        second = backend.try_acquire(name, Owner.current(), ttl, shared=True)
        try:
            assert second is not None
            assert backend.try_acquire(name, Owner.current(), ttl) is None
            info = backend.inspect(name)
            assert info is not None
            assert info.shared
            # Releasing one reader leaves the other holding.
            assert backend.release(first) is True
            assert backend.try_acquire(name, Owner.current(), ttl) is None
        finally:
            if second is not None:
                assert backend.release(second) is True
        writer = backend.try_acquire(name, Owner.current(), ttl)
        assert writer is not None
        try:
            assert backend.try_acquire(name, Owner.current(), ttl, shared=True) is None
            info = backend.inspect(name)
            assert info is not None
            assert not info.shared
            assert info.owner is not None
            assert info.owner.token == writer.token
        finally:
            assert backend.release(writer) is True
        assert backend.inspect(name) is None

    def test_read_write_lock_prefers_writers(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """With shared: readers overlap; a waiting writer goes before readers that come later."""
        if not self.lock(contract_name, contract_backend).backend.capabilities.shared:
            pytest.skip("backend has no shared capability")
        rw = ReadWriteLock(contract_name, backend=contract_backend, timeout=30)
        inside = threading.Barrier(2, timeout=30)
        leave = threading.Event()
        refused = threading.Event()
        order: list[str] = []
        errors: list[BaseException] = []

        def run(action: Callable[[], None]) -> threading.Thread:
            def target() -> None:
                try:
                    action()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            thread = threading.Thread(target=target)
            thread.start()
            return thread

        def second_reader() -> None:
            with rw.read():
                inside.wait()  # both readers inside at once, or this breaks
                leave.wait(30)

        def writer() -> None:
            with rw.write():
                order.append("write")

        def late_reader() -> None:
            try:
                with pytest.raises(LockTimeout):
                    rw.read(timeout=0)  # only readers hold the lock, but a writer waits
            finally:
                refused.set()
            with rw.read():
                order.append("late read")

        threads = []
        with rw.read():
            threads.append(run(second_reader))
            inside.wait()
            threads.append(run(writer))
            deadline = time.monotonic() + 30
            while rw.backend.inspect(rw.gate_name) is None and time.monotonic() < deadline:
                time.sleep(0.002)  # the writer holds the gate once it waits
            threads.append(run(late_reader))
            assert refused.wait(30)
        leave.set()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert order == ["write", "late read"]


def _forge(handle: object) -> object:
    # Backends that keep the payload or token in the handle (redis) get a different one.
    if isinstance(handle, str):
        return handle.replace('"token":"', '"token":"forged-', 1)
    from lockkit.backends._file import HeldFile  # noqa: PLC0415 - only for file backends

    if isinstance(handle, HeldFile):
        return None  # a forger has the token at best, never our open descriptor
    return handle
