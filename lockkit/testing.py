"""The backend contract suite: what every lockkit backend must do, as pytest tests.

A plugin runs it against its own backend with a few lines::

    # tests/test_contract.py of your plugin
    from lockkit.testing import BackendContract


    class TestMyBackend(BackendContract):
        backend = "mine"  # the entry-point name, or a URL such as "mine://host"

Every built-in backend passes the same suite. It checks each clause of the
`lockkit.spec.Backend` docstrings:

- exclusion across threads and across real processes (counting lost updates, which
  must be 0), timeouts, and recovery after the holder is killed with SIGKILL;
- ``try_acquire`` refuses a held lock and never blocks;
- ``release`` frees the lock, refuses a forged lease, and answers ``False`` for a lease
  already released or taken over, without touching the new holder;
- ``inspect`` names the holder (pid and token), and nothing once the lock is free;
- ``break_lock`` removes only the exact holding it was given: not another holder, not
  a lock released and taken again, not a renewed version of it;
- with ``ttl``: an expiry is recorded and ``refresh`` extends it, gives the lock a new
  ``LockInfo.identity`` (version), and answers ``False`` once the lock was taken over;
- with ``fencing``: fencing tokens strictly increase from holder to holder;
- with ``shared``: readers coexist and exclude writers, and `lockkit.ReadWriteLock`
  prefers writers;
- ``normalize_name`` refuses bad names and returns a canonical form.

Tests of a capability the backend does not declare are skipped. Every failure message
carries the values it compared, since an installed module is not assert-rewritten by
pytest.

The processes are started with ``spawn``, so the backend must be installed (its entry
point visible) in the environment that runs the tests. Requires pytest: install
``lockkit[testing]``.

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
from itertools import pairwise
from typing import TYPE_CHECKING, ClassVar

try:
    import pytest
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without pytest
    raise ImportError(
        "lockkit.testing (the backend contract suite) needs pytest, which lockkit does not "
        "install by itself: pip install 'lockkit[testing]'"
    ) from exc

from lockkit._info import Owner
from lockkit._lock import Lock
from lockkit._rwlock import ReadWriteLock
from lockkit._stress import run_increments
from lockkit.errors import InvalidLockName, LockTimeout

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from lockkit._info import Lease, LockInfo
    from lockkit.spec import Backend

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

NEVER_BLOCKS = 0.5
"""Seconds a refused ``try_acquire`` may take at most: one attempt, never a wait."""

_STOLEN = 60.0
"""Seconds of extra expiry that show a stale lease's refresh extended the new holder."""


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

    def subject(self, name: str, backend: str) -> tuple[Backend, str]:
        """The backend under test and ``name`` in its canonical form, for direct calls."""
        lock = self.lock(name, backend)
        return lock.backend, lock.name

    # -- exclusion ---------------------------------------------------------------------

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
        assert errors == [], f"{len(errors)} of 8 threads failed: {errors!r}"
        assert counter["value"] == 8 * 50, (
            f"8 threads x 50 increments under the lock gave {counter['value']}, not 400: "
            f"{400 - counter['value']} updates lost"
        )

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
        expected = self.processes * self.increments
        assert result.errors == (), f"worker processes failed: {result.errors!r}"
        assert result.lost == 0, (
            f"{result.lost} of {expected} updates lost ({self.processes} processes x "
            f"{self.increments} increments; final count {result.final})"
        )
        assert result.final == expected, f"final count {result.final}, expected {expected}"

    def test_nonblocking_and_timeout(self, contract_backend: str, contract_name: str) -> None:
        """A busy lock refuses a non-blocking attempt and times out a blocking one."""
        with self.lock(contract_name, contract_backend):
            other = self.lock(contract_name, contract_backend)
            with pytest.raises(LockTimeout) as caught:
                other.acquire(blocking=False)
            timeout = caught.value.timeout
            assert timeout == 0, f"a non-blocking attempt's LockTimeout says timeout={timeout}"
            with pytest.raises(LockTimeout):
                other.acquire(timeout=0.1)
            assert not other.locked, "a timed-out Lock says it is locked"
        with self.lock(contract_name, contract_backend).acquire(timeout=5) as again:
            assert again.locked, "the lock could not be taken again after its release"

    # -- try_acquire -------------------------------------------------------------------

    def test_try_acquire_refuses_a_held_lock(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """``try_acquire`` returns ``None`` while another owner holds the lock."""
        backend, name = self.subject(contract_name, contract_backend)
        ttl = 30.0 if backend.capabilities.ttl else None
        owner = Owner.current()
        first = backend.try_acquire(name, owner, ttl)
        assert first is not None, f"try_acquire of the free lock {name!r} returned None"
        try:
            assert first.token == owner.token, (
                f"the lease carries token {first.token!r}, not its owner's {owner.token!r}"
            )
            second = backend.try_acquire(name, Owner.current(), ttl)
            if second is not None:
                backend.release(second)
                pytest.fail(
                    f"try_acquire granted {name!r} (lease token {second.token!r}) "
                    f"while token {first.token!r} held it"
                )
        finally:
            backend.release(first)

    def test_try_acquire_never_blocks(self, contract_backend: str, contract_name: str) -> None:
        """A refused ``try_acquire`` returns at once: one attempt, never a wait."""
        backend, name = self.subject(contract_name, contract_backend)
        first = backend.try_acquire(name, Owner.current(), None)
        assert first is not None, f"try_acquire of the free lock {name!r} returned None"
        try:
            start = time.monotonic()
            second = backend.try_acquire(name, Owner.current(), None)
            took = time.monotonic() - start
            if second is not None:
                backend.release(second)
            assert took < NEVER_BLOCKS, (
                f"try_acquire of a held lock took {took:.3f} s (limit {NEVER_BLOCKS} s): "
                "it must make one attempt and return; Lock does the waiting"
            )
        finally:
            backend.release(first)

    # -- release -----------------------------------------------------------------------

    def test_release_frees_the_lock(self, contract_backend: str, contract_name: str) -> None:
        """After ``release`` returns ``True`` the lock is free: inspect and others agree."""
        backend, name = self.subject(contract_name, contract_backend)
        lease = backend.try_acquire(name, Owner.current(), None)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        released = backend.release(lease)
        assert released is True, f"release of a held lease returned {released!r}, not True"
        info = backend.inspect(name)
        assert info is None, f"inspect after release reports {info!r}, not None (free)"
        other = backend.try_acquire(name, Owner.current(), None)
        assert other is not None, f"{name!r} could not be taken again after its release"
        backend.release(other)

    def test_release_by_non_owner_is_refused(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """A forged lease (another token) releases nothing."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            lease = lock.lease
            assert lease is not None, "a held Lock has no lease"
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
            released = lock.backend.release(forged)
            assert released is False, (
                f"release of a forged lease (token {forged.token!r}) returned {released!r} "
                f"while token {lease.token!r} held the lock"
            )
            info = lock.inspect()
            assert lock.is_held(), f"a forged lease released the lock; inspect now: {info!r}"

    def test_release_of_a_released_lease_is_refused(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """A lease released once is lost: ``False`` again, and never the next holder's."""
        backend, name = self.subject(contract_name, contract_backend)
        lease = backend.try_acquire(name, Owner.current(), None)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        assert backend.release(lease) is True, "release of a held lease did not return True"
        again = backend.release(lease)
        assert again is False, f"a second release of the same lease returned {again!r}"
        successor = backend.try_acquire(name, Owner.current(), None)
        assert successor is not None, f"{name!r} could not be taken after its release"
        try:
            late = backend.release(lease)
            assert late is False, (
                f"release of the old lease (token {lease.token!r}) returned {late!r} while "
                f"token {successor.token!r} held the lock"
            )
            _assert_held_by(backend, name, successor, "after a stale lease was released")
        finally:
            backend.release(successor)

    # -- inspect -----------------------------------------------------------------------

    def test_inspect_names_the_holder(self, contract_backend: str, contract_name: str) -> None:
        """While held, inspect reports this process; once released, nothing."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            info = lock.inspect()
            assert info is not None, "inspect of a held lock returned None"
            assert info.owner is not None, f"inspect of a held lock has no owner: {info!r}"
            assert info.owner.pid == os.getpid(), (
                f"inspect names pid {info.owner.pid}, the holder is pid {os.getpid()}"
            )
        after = lock.inspect()
        assert after is None, f"inspect after release reports {after!r}, not None (free)"

    def test_inspect_reports_token_expiry_and_fence(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """Inspect gives the holder's token, its expiry when taken with a ttl, its fence."""
        backend, name = self.subject(contract_name, contract_backend)
        caps = backend.capabilities
        ttl = 30.0 if caps.ttl else None
        lease = backend.try_acquire(name, Owner.current(), ttl)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        try:
            info = _assert_held_by(backend, name, lease, "while held")
            assert not info.shared, f"an exclusive holding is reported shared: {info!r}"
            if caps.ttl:
                assert lease.expires is not None, f"a lease taken with ttl={ttl} has no expiry"
                assert info.expires is not None, (
                    f"inspect of a lock taken with ttl={ttl} reports no expiry: {info!r}"
                )
            if caps.fencing:
                assert info.fencing_token == lease.fencing_token, (
                    f"inspect reports fencing token {info.fencing_token}, the lease has "
                    f"{lease.fencing_token}"
                )
        finally:
            backend.release(lease)

    # -- break_lock ----------------------------------------------------------------------

    def test_break_lock_only_breaks_the_expected_holder(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """break_lock refuses a holder it was not given; for the right one it is consistent."""
        lock = self.lock(contract_name, contract_backend)
        with lock:
            info = lock.inspect()
            assert info is not None, "inspect of a held lock returned None"
            assert info.owner is not None, f"inspect of a held lock has no owner: {info!r}"
            stranger = type(info)(
                info.name,
                info.backend,
                Owner.current(),
                expires=info.expires,
                identity=info.identity,
                age=info.age,
            )
            broken = lock.backend.break_lock(lock.name, stranger)
            assert broken is False, (
                f"break_lock for a stranger (token {stranger.owner and stranger.owner.token!r})"
                f" returned {broken!r} while token {info.owner.token!r} held the lock"
            )
            assert lock.is_held(), f"break_lock for a stranger removed the lock: {info!r}"
            broken = lock.backend.break_lock(lock.name, info)
            held = lock.is_held()
            assert held is (not broken), (
                f"break_lock for the holder returned {broken!r}, yet the lock is "
                f"{'still held' if held else 'gone'}"
            )

    def test_break_lock_refuses_a_retaken_lock(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """Breaking a holding that was released (and taken again) removes nothing."""
        backend, name = self.subject(contract_name, contract_backend)
        first = backend.try_acquire(name, Owner.current(), None)
        assert first is not None, f"try_acquire of the free lock {name!r} returned None"
        old = _assert_held_by(backend, name, first, "while held")
        assert backend.release(first) is True, "release of a held lease did not return True"
        broken = backend.break_lock(name, old)
        assert broken is False, f"break_lock of a lock already released returned {broken!r}"
        successor = backend.try_acquire(name, Owner.current(), None)
        assert successor is not None, f"{name!r} could not be taken after its release"
        try:
            broken = backend.break_lock(name, old)
            assert broken is False, (
                f"break_lock with the released holding (token {first.token!r}, identity "
                f"{old.identity}) returned {broken!r}; token {successor.token!r} holds it now"
            )
            _assert_held_by(backend, name, successor, "after break_lock of an old holding")
        finally:
            backend.release(successor)

    # -- recovery ------------------------------------------------------------------------

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
            line = child.stdout.readline().strip()
            assert line == "held", f"the holder process printed {line!r}, not 'held'"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            lock = self.lock(contract_name, contract_backend)
            try:
                lock.acquire(timeout=10)
            except LockTimeout as exc:
                pytest.fail(f"no acquire within 10 s after the holder was killed: {exc}")
            try:
                assert lock.is_held(), "the lock taken after the holder died is not held"
            finally:
                lock.release()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()

    # -- ttl -----------------------------------------------------------------------------

    def test_ttl_refresh(self, contract_backend: str, contract_name: str) -> None:
        """With the ttl capability: the lock records an expiry and refresh extends it."""
        ttl = 30.0
        lock = self.lock(contract_name, contract_backend, ttl=ttl)
        if not lock.backend.capabilities.ttl:
            pytest.skip("backend has no ttl capability")
        with lock:
            before = lock.inspect()
            assert before is not None, "inspect of a held lock returned None"
            assert before.expires is not None, (
                f"inspect of a lock taken with ttl={ttl} reports no expiry: {before!r}"
            )
            assert lock.lease is not None, "a held Lock has no lease"
            # The lease carries its ttl: that is what makes the core renew it.
            assert lock.lease.ttl == ttl, f"the lease has ttl={lock.lease.ttl}, taken with {ttl}"
            refreshed = lock.backend.refresh(lock.lease, 60)
            assert refreshed is True, f"refresh of the held lease returned {refreshed!r}"
            after = lock.inspect()
            assert after is not None, "inspect after refresh returned None"
            assert after.expires is not None, f"inspect after refresh has no expiry: {after!r}"
            assert after.expires > before.expires, (
                f"refresh(ttl=60) moved the expiry from {before.expires.isoformat()} to "
                f"{after.expires.isoformat()}, not later"
            )

    def test_refresh_changes_the_version(self, contract_backend: str, contract_name: str) -> None:
        """With ttl: a refreshed lock has a new ``LockInfo.identity``, its version."""
        backend, name = self.subject(contract_name, contract_backend)
        if not backend.capabilities.ttl:
            pytest.skip("backend has no ttl capability")
        lease = backend.try_acquire(name, Owner.current(), 30.0)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        try:
            before = _assert_held_by(backend, name, lease, "before refresh")
            if before.identity is None:
                pytest.skip("backend reports no LockInfo.identity (versions)")
            after = _refresh_and_inspect(backend, lease, name)
            if after.identity == before.identity:
                # A filesystem with a coarse clock may stamp both writes alike: let it
                # tick (not synchronisation: nothing else runs), then refresh again.
                time.sleep(0.05)
                after = _refresh_and_inspect(backend, lease, name)
            assert after.identity != before.identity, (
                f"identity {before.identity} unchanged after two refreshes 50 ms apart: "
                "break_lock cannot tell the renewed lock from the version it judged"
            )
        finally:
            backend.release(lease)

    def test_break_lock_refuses_a_renewed_lock(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """With ttl: ``break_lock`` with the holding seen before a refresh removes nothing."""
        backend, name = self.subject(contract_name, contract_backend)
        if not backend.capabilities.ttl:
            pytest.skip("backend has no ttl capability")
        lease = backend.try_acquire(name, Owner.current(), 30.0)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        try:
            old = _assert_held_by(backend, name, lease, "before refresh")
            if old.identity is None:
                pytest.skip("backend reports no LockInfo.identity (versions)")
            new = _refresh_and_inspect(backend, lease, name)
            if new.identity == old.identity:
                time.sleep(0.05)  # a coarse filesystem clock: see test_refresh_changes_the_version
                new = _refresh_and_inspect(backend, lease, name)
            broken = backend.break_lock(name, old)
            assert broken is False, (
                f"break_lock with the version before refresh (identity {old.identity}) "
                f"returned {broken!r}; the renewed lock has identity {new.identity}"
            )
            _assert_held_by(backend, name, lease, "after break_lock of an old version")
        finally:
            backend.release(lease)

    def test_refresh_after_takeover_is_refused(
        self, contract_backend: str, contract_name: str
    ) -> None:
        """With ttl: once broken and taken by another owner, refresh is ``False``, no steal."""
        backend, name = self.subject(contract_name, contract_backend)
        if not backend.capabilities.ttl:
            pytest.skip("backend has no ttl capability")
        lease = backend.try_acquire(name, Owner.current(), 30.0)
        assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
        info = _assert_held_by(backend, name, lease, "while held")
        if not backend.break_lock(name, info):
            backend.release(lease)
            pytest.skip("backend does not break locks; a takeover cannot be staged")
        successor = backend.try_acquire(name, Owner.current(), 30.0)
        assert successor is not None, f"{name!r} could not be taken after break_lock"
        try:
            before = _assert_held_by(backend, name, successor, "after the takeover")
            refreshed = backend.refresh(lease, 3600.0)
            assert refreshed is False, (
                f"refresh of the broken lease (token {lease.token!r}) returned {refreshed!r} "
                f"while token {successor.token!r} held the lock"
            )
            after = _assert_held_by(backend, name, successor, "after the old lease's refresh")
            if before.expires is not None and after.expires is not None:
                moved = (after.expires - before.expires).total_seconds()
                assert moved < _STOLEN, (
                    f"the old lease's refresh(3600) moved the new holder's expiry by "
                    f"{moved:.0f} s ({before.expires.isoformat()} -> "
                    f"{after.expires.isoformat()})"
                )
        finally:
            backend.release(successor)
            backend.release(lease)  # lost: answers False, frees what the lease kept open

    # -- fencing -------------------------------------------------------------------------

    def test_fencing_tokens_increase(self, contract_backend: str, contract_name: str) -> None:
        """With fencing: every acquisition's fencing token is larger than the last."""
        backend, name = self.subject(contract_name, contract_backend)
        if not backend.capabilities.fencing:
            pytest.skip("backend has no fencing capability")
        ttl = 30.0 if backend.capabilities.ttl else None
        tokens: list[int | None] = []
        for _ in range(5):
            lease = backend.try_acquire(name, Owner.current(), ttl)
            assert lease is not None, f"try_acquire of the free lock {name!r} returned None"
            tokens.append(lease.fencing_token)
            assert backend.release(lease) is True, "release of a held lease did not return True"
        assert None not in tokens, f"leases of a fencing backend lack tokens: {tokens}"
        rising = all(a is not None and b is not None and a < b for a, b in pairwise(tokens))
        assert rising, f"fencing tokens of 5 holders in turn: {tokens}; must strictly increase"

    # -- registration --------------------------------------------------------------------

    def test_the_plugin_registers_cleanly(self, contract_backend: str, contract_name: str) -> None:
        """Nothing lockkit reports about the plugin: entry-point name, hooks, capabilities.

        ``lockkit backends`` lists these problems (an entry point named unlike its
        backend, a ``lockkit_*`` function without ``@hookimpl``...); they fail here.
        """
        from lockkit._registry import get_registry  # noqa: PLC0415

        backend = self.lock(contract_name, contract_backend).backend
        registry = get_registry()
        origin = registry.origin(type(backend))
        problems = [p.describe() for p in registry.problems() if p.distribution == origin]
        assert problems == [], f"lockkit reports {len(problems)} problem(s): {problems}"

    # -- names ---------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["", "with\0nul"])
    def test_bad_names_are_refused(self, contract_backend: str, bad: str) -> None:
        """Empty names and names with NUL are refused with InvalidLockName."""
        try:
            lock = self.lock(bad, contract_backend)
        except InvalidLockName:
            return
        pytest.fail(f"the name {bad!r} was accepted as {lock.name!r}, not InvalidLockName")

    def test_normalize_name_is_canonical(self, contract_backend: str, contract_name: str) -> None:
        """``normalize_name`` of its own result changes nothing; Lock uses that form."""
        backend, name = self.subject(contract_name, contract_backend)
        once = backend.normalize_name(contract_name)
        twice = backend.normalize_name(once)
        assert twice == once, f"normalize_name({once!r}) gave {twice!r}: not a canonical form"
        assert name == once, f"Lock uses the name {name!r}, normalize_name gives {once!r}"

    # -- shared --------------------------------------------------------------------------

    def test_shared_leases(self, contract_backend: str, contract_name: str) -> None:
        """With the shared capability: readers coexist and exclude writers, and back."""
        backend, name = self.subject(contract_name, contract_backend)
        if not backend.capabilities.shared:
            pytest.skip("backend has no shared capability")
        ttl = 30.0 if backend.capabilities.ttl else None
        first = backend.try_acquire(name, Owner.current(), ttl, shared=True)
        assert first is not None, f"a shared try_acquire of the free lock {name!r} failed"
        second = backend.try_acquire(name, Owner.current(), ttl, shared=True)
        try:
            assert second is not None, "a second reader was refused while only a reader held"
            writer = backend.try_acquire(name, Owner.current(), ttl)
            if writer is not None:
                backend.release(writer)
            assert writer is None, "a writer was granted the lock while two readers held it"
            info = backend.inspect(name)
            assert info is not None, "inspect returned None while two readers held the lock"
            assert info.shared, f"inspect while readers hold does not say shared: {info!r}"
            # Releasing one reader leaves the other holding.
            released = backend.release(first)
            assert released is True, f"release of a reader's lease returned {released!r}"
            writer = backend.try_acquire(name, Owner.current(), ttl)
            if writer is not None:
                backend.release(writer)
            assert writer is None, "a writer was granted the lock while one reader held it"
            last, second = second, None
            released = backend.release(last)
            assert released is True, f"release of the last reader's lease returned {released!r}"
        finally:
            if second is not None:  # cleaning up after a failure reported above
                backend.release(second)
        writer = backend.try_acquire(name, Owner.current(), ttl)
        assert writer is not None, "a writer was refused after every reader had released"
        try:
            reader = backend.try_acquire(name, Owner.current(), ttl, shared=True)
            if reader is not None:
                backend.release(reader)
            assert reader is None, "a reader was granted the lock while a writer held it"
            info = _assert_held_by(backend, name, writer, "while a writer holds")
            assert not info.shared, f"inspect while a writer holds says shared: {info!r}"
            held, writer = writer, None
            released = backend.release(held)
            assert released is True, f"release of the writer's lease returned {released!r}"
        finally:
            if writer is not None:  # cleaning up after a failure reported above
                backend.release(writer)
        info = backend.inspect(name)
        assert info is None, f"inspect after every release reports {info!r}, not None"

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
            assert refused.wait(30), "the late reader's attempt did not finish within 30 s"
        leave.set()
        for thread in threads:
            thread.join(60)
        assert errors == [], f"{len(errors)} threads failed: {errors!r}"
        assert order == ["write", "late read"], (
            f"order of entry {order}; the waiting writer must go before the late reader"
        )


def _assert_held_by(backend: Backend, name: str, lease: Lease, when: str) -> LockInfo:
    """Inspect ``name`` and check that ``lease`` holds it; return what inspect said."""
    info = backend.inspect(name)
    assert info is not None, f"inspect {when} returned None; token {lease.token!r} holds it"
    holder = info.owner.token if info.owner is not None else None
    assert holder == lease.token, (
        f"inspect {when} names token {holder!r}; the holder is token {lease.token!r}"
    )
    return info


def _refresh_and_inspect(backend: Backend, lease: Lease, name: str) -> LockInfo:
    refreshed = backend.refresh(lease, 30.0)
    assert refreshed is True, f"refresh of the held lease returned {refreshed!r}"
    return _assert_held_by(backend, name, lease, "after refresh")


def _forge(handle: object) -> object:
    # Backends that keep the payload or token in the handle (redis) get a different one.
    if isinstance(handle, str):
        return handle.replace('"token":"', '"token":"forged-', 1)
    from lockkit.backends._file import HeldFile  # noqa: PLC0415 - only for file backends

    if isinstance(handle, HeldFile):
        return None  # a forger has the token at best, never our open descriptor
    return handle
