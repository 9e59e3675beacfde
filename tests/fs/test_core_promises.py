"""The core keeps its promises whatever a backend does (spec v2, architecture §10).

A backend that raises its store's own exception reaches callers as a `LockError`; a
lease that lacks what the capabilities promise is refused, naming the plugin. The
store failure is real: the guide's SQLite plugin, installed as a distribution, against
a database another connection has locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

import lockkit
from lockkit import BackendError, Lease, LockError, LockInfo, Owner, PluginError
from lockkit._registry import get_registry
from lockkit.spec import Backend, Capabilities, Waiter, hookimpl
from tests.helpers.guide import GuidePlugin, install_guide_plugin

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
def guide_plugin(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuidePlugin]:
    """The guide's plugin installed (as ``lockkit-sqlite 0.1.0``) on ``sys.path``."""
    plugin = install_guide_plugin(ROOT, tmp_path)
    monkeypatch.syspath_prepend(str(plugin.site))
    yield plugin
    sys.modules.pop(plugin.module, None)


@pytest.fixture
def sqlite_url(guide_plugin: GuidePlugin, tmp_path: pathlib.Path) -> str:
    """A database URL for the guide's plugin."""
    return f"sqlite://{tmp_path}/locks.db"


@contextlib.contextmanager
def database_locked(url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock: every write fails at once."""
    outsider = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
    outsider.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        outsider.execute("ROLLBACK")
        outsider.close()


def _no_busy_wait(lock: lockkit.Lock | lockkit.AsyncLock) -> None:
    # The plugin's own knob: fail at once instead of waiting for SQLite's write lock.
    lock.backend.busy_timeout = 0.0  # type: ignore[attr-defined]


def test_a_store_error_reaches_the_caller_as_a_lock_error(sqlite_url: str) -> None:
    lock = lockkit.Lock("job", backend=sqlite_url, timeout=5)
    _no_busy_wait(lock)
    with database_locked(sqlite_url), pytest.raises(LockError) as caught:
        lock.acquire()
    error = caught.value
    assert isinstance(error, BackendError)
    assert isinstance(error, lockkit.BackendUnavailable)  # retry logic catches it too
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert error.original is error.__cause__
    assert error.backend == "sqlite"
    assert error.plugin == "lockkit-sqlite 0.1.0"
    message = str(error)
    assert "acquiring lock 'job' failed in backend 'sqlite'" in message, message
    assert "(from lockkit-sqlite 0.1.0)" in message, message
    assert "OperationalError: database is locked" in message, message
    assert not lock.locked
    # The store recovers: the same object acquires and releases normally.
    with lock:
        assert lock.is_held()


def test_a_failed_release_keeps_the_lock_and_can_be_retried(sqlite_url: str) -> None:
    lock = lockkit.Lock("job", backend=sqlite_url, timeout=5)
    _no_busy_wait(lock)
    lock.acquire()
    with database_locked(sqlite_url), pytest.raises(BackendError, match="releasing lock 'job'"):
        lock.release()
    assert lock.locked  # still ours: nothing was released
    assert lock.is_held()
    lock.release()
    assert not lock.locked
    assert lock.inspect() is None


def test_asyncio_callers_get_the_same_errors(sqlite_url: str) -> None:
    async def main() -> None:
        lock = lockkit.AsyncLock("job", backend=sqlite_url, timeout=5)
        _no_busy_wait(lock)
        with database_locked(sqlite_url), pytest.raises(BackendError, match="database is locked"):
            await lock.acquire()
        await lock.acquire()
        with database_locked(sqlite_url), pytest.raises(BackendError, match="releasing"):
            await lock.release()
        assert lock.locked
        await lock.release()
        assert await lock.inspect() is None

    asyncio.run(main())


class Broken(Backend):
    """Grants or refuses on demand, and fails where told; leases shaped by the test."""

    name: ClassVar[str] = "broken"
    capabilities: ClassVar[Capabilities] = Capabilities(ttl=True, fencing=True)

    def __init__(self) -> None:
        self.fail: dict[str, BaseException] = {}
        self.shape: dict[str, Any] = {}
        self.held: dict[str, str] = {}
        self.released: list[str] = []

    def _maybe_fail(self, where: str) -> None:
        if where in self.fail:
            raise self.fail[where]

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        self._maybe_fail("try_acquire")
        if name in self.held:
            return None
        self.held[name] = owner.token
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl or 30)
        fields: dict[str, Any] = {"expires": expires, "ttl": ttl, "fencing_token": 1}
        fields.update(self.shape)
        return Lease(name, self.name, owner, **fields)

    def release(self, lease: Lease) -> bool:
        self._maybe_fail("release")
        self.released.append(lease.token)
        return self.held.pop(lease.name, None) == lease.token

    def refresh(self, lease: Lease, ttl: float) -> bool:
        return self.held.get(lease.name) == lease.token

    def inspect(self, name: str) -> LockInfo | None:
        self._maybe_fail("inspect")
        token = self.held.get(name)
        return None if token is None else LockInfo(name, self.name, Owner(pid=1, token=token))

    def waiter(self, name: str) -> Waiter:
        self._maybe_fail("waiter")
        return Waiter(name)


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ({"expires": None}, "its lease has no expires although the backend declares the ttl"),
        ({"ttl": None}, "its lease has no ttl although"),
        ({"fencing_token": None}, "its lease has no fencing_token although"),
    ],
)
def test_a_lease_without_what_the_capabilities_promise_is_refused(
    shape: dict[str, Any], says: str
) -> None:
    backend = Broken()
    backend.shape = shape
    lock = lockkit.Lock("n", backend=backend, ttl=30, timeout=0)
    with pytest.raises(PluginError) as caught:
        lock.acquire()
    message = str(caught.value)
    assert "backend 'broken' (from module tests.fs.test_core_promises, passed as" in message
    assert says in message
    assert not lock.locked
    assert backend.held == {}  # the refused lease was given back


def test_something_else_than_a_lease_is_refused() -> None:
    class Sloppy(Broken):
        def try_acquire(  # type: ignore[override]
            self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
        ) -> object:
            return True

    with pytest.raises(PluginError, match=r"try_acquire\(\) returned bool, not a lockkit\.Lease"):
        lockkit.Lock("n", backend=Sloppy(), timeout=0).acquire()


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyError("k"), ValueError("bad"), TypeError("t")]
)
@pytest.mark.parametrize("where", ["try_acquire", "inspect", "waiter"])
def test_any_exception_leaves_as_a_lock_error(where: str, error: Exception) -> None:
    backend = Broken()
    backend.held["n"] = "someone else"  # busy: the contended path runs inspect and waiter
    backend.fail[where] = error
    lock = lockkit.Lock("n", backend=backend, timeout=0.2)
    with pytest.raises(BackendError) as caught:
        lock.acquire()
    assert caught.value.__cause__ is error
    assert type(error).__name__ in str(caught.value)
    assert not lock.locked


def test_interrupts_are_not_wrapped() -> None:
    backend = Broken()
    backend.fail["try_acquire"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        lockkit.Lock("n", backend=backend, timeout=0).acquire()


def test_secrets_in_a_plugins_error_are_not_repeated() -> None:
    backend = Broken()
    backend.fail["try_acquire"] = RuntimeError("cannot reach redis://admin:hunter2@db:6379/0")
    with pytest.raises(BackendError) as caught:
        lockkit.Lock("n", backend=backend, timeout=0).acquire()
    assert "hunter2" not in str(caught.value)
    assert "db:6379" in str(caught.value)


def test_a_backend_constructor_failure_names_the_plugin() -> None:
    class Unbuildable(Broken):
        name: ClassVar[str] = "unbuildable"

        def __init__(self) -> None:
            raise ImportError("libfoo.so missing")

    registry = get_registry()
    module = type(sys)("unbuildable_plugin")
    module.lockkit_register_backends = hookimpl(lambda: [Unbuildable])  # type: ignore[attr-defined]
    registry.register(module)
    with pytest.raises(BackendError, match=r"creating backend 'unbuildable' .*ImportError: libfoo"):
        lockkit.Lock("n", backend="unbuildable")


@pytest.mark.slow
def test_doctor_shows_a_plugins_store_error_without_a_traceback(
    guide_plugin: GuidePlugin, sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    """``lockkit doctor --backend URL`` of the guide's plugin while its store is locked."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guide_plugin.site), str(ROOT)])}
    with database_locked(sqlite_url):
        done = subprocess.run(
            [sys.executable, "-m", "lockkit", "doctor", str(tmp_path), "--backend", sqlite_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert "OperationalError: database is locked" in output, output
    assert "(from lockkit-sqlite 0.1.0)" in output, output
    assert done.returncode == 1, output  # doctor's "a check failed"
