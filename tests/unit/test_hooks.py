"""Each event hook fires once, with its documented arguments; and every hook is tested."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pathlib
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

import lockkit
from lockkit import spec
from lockkit._registry import get_registry
from lockkit.spec import hookimpl


class Recorder:
    """A plugin implementing every event hook, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def lockkit_acquired(
        self, name: str, backend: str, lease: lockkit.Lease, waited: float
    ) -> None:
        self.calls.append(
            ("acquired", {"name": name, "backend": backend, "lease": lease, "waited": waited})
        )

    @hookimpl
    def lockkit_released(self, name: str, backend: str, lease: lockkit.Lease, held: float) -> None:
        self.calls.append(
            ("released", {"name": name, "backend": backend, "lease": lease, "held": held})
        )

    @hookimpl
    def lockkit_contended(self, name: str, backend: str, holder: lockkit.LockInfo | None) -> None:
        self.calls.append(("contended", {"name": name, "backend": backend, "holder": holder}))

    @hookimpl
    def lockkit_stale_broken(
        self, name: str, backend: str, info: lockkit.LockInfo, reason: str
    ) -> None:
        self.calls.append(
            ("stale_broken", {"name": name, "backend": backend, "info": info, "reason": reason})
        )

    @hookimpl
    def lockkit_lost(self, name: str, backend: str, lease: lockkit.Lease) -> None:
        self.calls.append(("lost", {"name": name, "backend": backend, "lease": lease}))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == event]


@pytest.fixture
def recorder() -> Recorder:
    plugin = Recorder()
    get_registry().register(plugin, name="recorder")
    return plugin


def test_acquired_and_released(recorder: Recorder, tmp_path: pathlib.Path) -> None:
    lock = lockkit.Lock(tmp_path / "a.lock", backend="excl")
    with lock, lock:  # reentrant use fires once
        lease = lock.lease
    [acquired] = recorder.named("acquired")
    assert acquired["name"] == lock.name
    assert acquired["backend"] == "excl"
    assert acquired["lease"] is lease
    assert acquired["waited"] >= 0
    [released] = recorder.named("released")
    assert released["lease"] is lease
    assert released["held"] >= 0


def test_contended(recorder: Recorder, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.lock"
    with lockkit.Lock(path, backend="excl"), pytest.raises(lockkit.LockTimeout):
        lockkit.Lock(path, backend="excl").acquire(timeout=0.05)
    [contended] = recorder.named("contended")
    assert contended["name"] == str(path)
    assert contended["holder"] is not None
    assert contended["holder"].owner.pid == os.getpid()


def test_stale_broken(recorder: Recorder, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.lock"
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(json.dumps({"pid": dead.pid, "token": "old"}))
    with lockkit.Lock(path, backend="excl", timeout=1):
        pass
    [broken] = recorder.named("stale_broken")
    assert broken["info"].owner.pid == dead.pid
    assert "not running" in broken["reason"]


def test_lost(recorder: Recorder, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "l.lock"
    lock = lockkit.Lock(path, backend="excl")
    lock.acquire()
    lease = lock.lease
    path.unlink()
    lockkit.Lock(path, backend="excl").acquire()
    assert not lock.is_held()
    lock.release()
    [lost] = recorder.named("lost")
    assert lost["lease"] is lease
    assert recorder.named("released") == []  # a lost lock is not reported as released


def test_register_backends_is_covered_by_the_registry_tests() -> None:
    from tests.unit import test_registry

    assert hasattr(test_registry, "test_installed_plugin_backend_is_found_by_name")


HOOK_TESTS: dict[str, Callable[..., None]] = {
    "lockkit_register_backends": test_register_backends_is_covered_by_the_registry_tests,
    "lockkit_acquired": test_acquired_and_released,
    "lockkit_released": test_acquired_and_released,
    "lockkit_contended": test_contended,
    "lockkit_stale_broken": test_stale_broken,
    "lockkit_lost": test_lost,
}


def test_every_hook_spec_has_a_test() -> None:
    # lockkit._hookspecs marks spec's hook functions for pluggy (when pluggy is needed).
    importlib.import_module("lockkit._hookspecs")
    specs = {
        name
        for name, value in inspect.getmembers(spec, inspect.isfunction)
        if name.startswith("lockkit_") and hasattr(value, "lockkit_spec")
    }
    assert specs, "no hook specs found: did the marker name change?"
    assert specs == set(HOOK_TESTS)
