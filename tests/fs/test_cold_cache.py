"""The caches that make a fresh process's first lock cheap, with real processes.

Each test gives its child processes a cache directory of its own (``XDG_CACHE_HOME``)
and looks at what they imported, chose and wrote. See `lockkit._cache`,
`lockkit._regcache` and `lockkit._autodetect`.
"""

from __future__ import annotations

import json
import marshal
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from lockkit import _cache
from tests.mounts import (
    EXFAT_IMAGE_SIZE,
    _require_fuse_device,
    _require_root,
    _require_tool,
    _setup_step,
    _unmount,
    skip_or_fail,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

# What a child reports: the modules that decide the cost, and what it chose.
PROBE = """
import json, os, sys, lockkit
from lockkit._autodetect import detect
lock = lockkit.Lock(sys.argv[1], backend=sys.argv[2] if len(sys.argv) > 2 else None)
with lock:
    pass
found = {"backend": lock.selection.backend, "modules": sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("pluggy", "redis")
    or m.startswith(("importlib.metadata", "lockkit.backends.redis"))
)}
if lock.selection.source == "auto-detect":
    found["cached"] = detect(os.path.dirname(sys.argv[1])).cached
print(json.dumps(found))
"""


class Child:
    """Runs Python children with one cache directory and an extra ``sys.path`` entry."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.cache = tmp / "cache"
        self.site = tmp / "site"
        self.site.mkdir()
        self.locks = tmp / "locks"
        self.locks.mkdir()

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LOCKKIT_", "PYTHON"))
        }
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(self.site)])
        env["XDG_CACHE_HOME"] = str(self.cache)
        env.update(extra)
        return env

    def run(
        self,
        code: str,
        *args: str,
        cwd: pathlib.Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=self.env(**(env or {})),
            cwd=cwd or self.locks,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    def lock(self, backend: str | None = None, **extra: str) -> dict[str, Any]:
        args = [str(self.locks / "a.lock"), *([backend] if backend else [])]
        done = self.run(PROBE, *args, env=extra)
        assert done.stderr == "", done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def record(self) -> dict[str, Any]:
        [path] = (self.cache / "lockkit").glob("registry-*.cache")
        return _cache_file(path)


def _cache_file(path: pathlib.Path) -> dict[str, Any]:
    """A cache file's contents, as lockkit._cache reads them (header, then marshal)."""
    data = path.read_bytes()
    assert data.startswith(_cache._MAGIC)  # noqa: SLF001 - the format under test
    value: dict[str, Any] = marshal.loads(data[len(_cache._MAGIC) :])  # noqa: S302, SLF001
    return value


def _write_cache_file(path: pathlib.Path, value: dict[str, object]) -> None:
    path.write_bytes(_cache._MAGIC + marshal.dumps(value))  # noqa: SLF001


@pytest.fixture
def child(tmp_path: pathlib.Path) -> Child:
    return Child(tmp_path)


def install(site: pathlib.Path, dist: str, name: str) -> pathlib.Path:
    """Install a distribution providing backend ``name`` into ``site`` (a .dist-info)."""
    module = f"{dist.replace('-', '_')}_mod"
    (site / f"{module}.py").write_text(
        textwrap.dedent(f"""
        from typing import ClassVar
        from lockkit.backends.excl import ExclBackend
        from lockkit.spec import hookimpl


        class Plugged(ExclBackend):
            name: ClassVar[str] = "{name}"


        @hookimpl
        def lockkit_register_backends():
            return [Plugged]
        """)
    )
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[lockkit]\n{name} = {module}\n")
    return info


def test_a_warm_cache_spares_the_scan_and_pluggy(child: Child) -> None:
    first = child.lock("excl")
    assert "importlib.metadata" in first["modules"]  # the cold run scans and writes
    warm = child.lock("excl")
    assert warm["backend"] == "excl"
    assert warm["modules"] == []


def test_a_warm_cache_spares_auto_detection(child: Child) -> None:
    first = child.lock()
    assert first["cached"] == "saved"
    warm = child.lock()
    assert warm == {"backend": first["backend"], "cached": "used", "modules": []}


def test_no_cache_env_bypasses_both_caches(child: Child) -> None:
    child.lock()
    bypassed = child.lock(LOCKKIT_NO_CACHE="1")
    assert bypassed["cached"] == ""
    assert "pluggy" in bypassed["modules"]
    assert "importlib.metadata" in bypassed["modules"]


def test_installing_and_removing_a_plugin_invalidates_the_record(child: Child) -> None:
    child.lock("excl")
    child.lock()  # auto-detection: a complete record and a verdict
    assert child.lock()["cached"] == "used"
    info = install(child.site, "lockkit-plugged", "plugged")
    # The new backend is found by name, and auto-detection probes again with it.
    assert child.lock("plugged")["backend"] == "plugged"
    assert child.lock()["cached"] == "saved"
    complete = child.record()["complete"]
    assert isinstance(complete, list)
    assert any(p.startswith("plugged|lockkit-plugged 1.0|") for p in complete)
    # Then it comes from the record: no scan (its module imports pluggy for @hookimpl).
    assert "importlib.metadata" not in child.lock("plugged")["modules"]
    shutil.rmtree(info)  # uninstalled
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(child.locks / "b.lock"), "plugged"],
        capture_output=True,
        text=True,
        env=child.env(),
        cwd=child.locks,
        check=False,
    )
    assert done.returncode != 0
    assert "UnknownBackend" in done.stderr
    assert child.lock()["cached"] == "saved"  # the set of backends changed again
    assert "plugged" not in json.dumps(child.record()["complete"])


def test_a_distribution_in_the_script_directory_is_not_missed(child: Child) -> None:
    child.lock("excl")
    elsewhere = child.locks / "project"
    elsewhere.mkdir()
    (elsewhere / "unrelated-1.0.dist-info").mkdir()
    done = child.run(PROBE, str(child.locks / "c.lock"), "excl", cwd=elsewhere)
    assert "importlib.metadata" in json.loads(done.stdout)["modules"]


def test_doctor_reprobes_and_rewrites_the_verdict(child: Child) -> None:
    child.lock()
    path = child.cache / "lockkit" / "autodetect.cache"
    verdicts = _cache_file(path)
    [entry] = verdicts["verdicts"].values()
    # A verdict that no longer holds (say the filesystem changed its mind).
    entry["backend"] = "filelock"
    _write_cache_file(path, verdicts)
    assert child.lock()["backend"] == "filelock"  # the cache is trusted...
    text = child.run("from lockkit.cli import main; main()", "doctor", str(child.locks))
    assert "cache: auto-detection re-probed; verdict 'hardlink' saved in" in text.stdout
    report = child.run("from lockkit.cli import main; main()", "doctor", "--json", str(child.locks))
    assert "re-probed" in json.loads(report.stdout)["cache"]
    assert child.lock() == {"backend": "hardlink", "cached": "used", "modules": []}


# -- a hostile world -------------------------------------------------------------------


def test_a_corrupt_cache_is_ignored_and_rewritten(child: Child) -> None:
    child.lock()
    for path in (child.cache / "lockkit").iterdir():
        path.write_bytes(b'{"key": [trunc' if path.name.startswith("reg") else b"\xff\x00")
    again = child.lock()
    assert again["cached"] == "saved"
    assert "importlib.metadata" in again["modules"]
    assert child.lock()["cached"] == "used"
    assert child.record()["names"]


def test_a_symlinked_cache_file_is_not_followed(child: Child, tmp_path: pathlib.Path) -> None:
    child.lock("excl")
    [record] = (child.cache / "lockkit").glob("registry-*.cache")
    target = tmp_path / "elsewhere.json"
    original = record.read_bytes()
    target.write_bytes(original)
    record.unlink()
    record.symlink_to(target)
    assert "importlib.metadata" in child.lock("excl")["modules"]  # not read through it
    assert not record.is_symlink()  # replaced by a file of its own
    assert target.read_bytes() == original  # untouched


def test_a_cache_others_may_write_is_ignored(child: Child) -> None:
    child.lock("excl")
    directory = child.cache / "lockkit"
    directory.chmod(0o777)
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    assert "importlib.metadata" in child.lock("excl")["modules"]
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    directory.chmod(0o700)
    [record] = directory.glob("registry-*.cache")
    record.chmod(0o666)
    assert "importlib.metadata" in child.lock("excl")["modules"]


def test_no_home_or_a_read_only_home_means_no_cache(child: Child) -> None:
    env = {key: value for key, value in child.env().items() if key != "XDG_CACHE_HOME"}
    for home in ("", "/proc/sys/kernel"):
        env["HOME"] = home
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(child.locks / "d.lock")],
            capture_output=True,
            text=True,
            env=env,
            cwd=child.locks,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert json.loads(done.stdout)["cached"] == ""


def test_a_planted_record_cannot_import_another_module(
    child: Child, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "imported"
    (child.site / "planted.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from lockkit.backends.excl import ExclBackend as Planted\n"
    )
    child.lock("excl")
    [path] = (child.cache / "lockkit").glob("registry-*.cache")
    for fields in (
        {"cls": "planted:Planted"},  # another top-level package than the entry point's
        {"cls": "planted:Planted", "value": "planted"},  # an entry point nobody installed
        {"cls": "planted:Planted", "value": "planted", "info": str(child.site)},
    ):
        record = _cache_file(path)
        record["names"]["excl"].update(fields)
        _write_cache_file(path, record)
        assert child.lock("excl")["backend"] == "excl"
        assert not marker.exists()


def test_root_ignores_another_users_cache(child: Child) -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root: a cache directory of another user")
    child.lock("excl")
    nobody = 65534
    for path in [child.cache, *child.cache.rglob("*")]:
        os.chown(path, nobody, nobody)
    before = {path: path.read_bytes() for path in child.cache.rglob("*.cache")}
    assert "importlib.metadata" in child.lock("excl")["modules"]
    assert {path: path.read_bytes() for path in child.cache.rglob("*.cache")} == before
    assert all(path.stat().st_uid == nobody for path in child.cache.rglob("*"))


# -- a verdict belongs to one mount ----------------------------------------------------


@pytest.fixture
def mount_point() -> Iterator[pathlib.Path]:
    _require_root()
    base = pathlib.Path(tempfile.mkdtemp(prefix="lockkit-remount-"))
    (base / "mnt").mkdir()
    try:
        yield base / "mnt"
    finally:
        if os.path.ismount(base / "mnt"):
            subprocess.run(["umount", "--lazy", str(base / "mnt")], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _detect(child: Child, directory: pathlib.Path) -> list[str]:
    code = (
        "import json, sys\nfrom lockkit._autodetect import detect\n"
        "d = detect(sys.argv[1])\nprint(json.dumps([d.fstype, d.backend, d.cached]))"
    )
    result: list[str] = json.loads(child.run(code, str(directory)).stdout)
    return result


@pytest.mark.realfs
def test_a_verdict_never_outlives_its_mount(child: Child, mount_point: pathlib.Path) -> None:
    mount = _require_tool("mount", "util-linux")
    umount = _require_tool("umount", "util-linux")
    _setup_step([mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)])
    assert _detect(child, mount_point) == ["tmpfs", "hardlink", "saved"]
    assert _detect(child, mount_point) == ["tmpfs", "hardlink", "used"]
    assert _unmount([umount, str(mount_point)]) is None
    # Another kernel filesystem at the same place: probed again.
    _setup_step([mount, "-t", "ramfs", "ramfs", str(mount_point)])
    assert _detect(child, mount_point) == ["ramfs", "hardlink", "saved"]
    assert _unmount([umount, str(mount_point)]) is None
    # The same type with other options: probed again. (The same type with the same
    # options may get the same mount id and device back, and then its verdict: for a
    # kernel filesystem that is a function of its type and options.)
    _setup_step([mount, "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)])
    assert _detect(child, mount_point) == ["tmpfs", "hardlink", "saved"]
    assert _unmount([umount, str(mount_point)]) is None
    # Another type (exFAT through FUSE: link() fails) at the same place: probed, and a
    # FUSE filesystem's verdict is not kept.
    _require_fuse_device()
    mkfs = _require_tool("mkfs.exfat", "exfatprogs")
    mount_exfat = _require_tool("mount.exfat-fuse", "exfat-fuse")
    losetup = _require_tool("losetup", "util-linux")
    image = mount_point.parent / "exfat.img"
    with image.open("wb") as handle:
        handle.truncate(EXFAT_IMAGE_SIZE)
    _setup_step([mkfs, str(image)])
    loop = _setup_step([losetup, "--find", "--show", str(image)])
    try:
        _setup_step([mount_exfat, loop, str(mount_point)])
    finally:
        _setup_step([losetup, "--detach", loop])
    try:
        assert _detect(child, mount_point) == ["fuseblk", "excl", ""]
        assert _detect(child, mount_point) == ["fuseblk", "excl", ""]
    finally:
        assert _unmount([umount, str(mount_point)]) is None


def test_root_with_another_users_home_leaves_no_cache_behind(
    child: Child, tmp_path: pathlib.Path
) -> None:
    # sudo -E: root keeps a user's HOME, which has no ~/.cache yet. Nothing root-owned
    # may appear there (the user's own tools could no longer make ~/.cache/pip).
    if os.geteuid() != 0:
        skip_or_fail("needs root: a home directory of another user")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    env = {key: value for key, value in child.env().items() if key != "XDG_CACHE_HOME"}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(child.locks / "h.lock"), "excl"],
        capture_output=True,
        text=True,
        env=env,
        cwd=child.locks,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert list(home.iterdir()) == []


def test_a_fifo_at_a_cache_file_is_refused_not_waited_on(child: Child) -> None:
    child.lock()
    directory = child.cache / "lockkit"
    for path in [*directory.glob("registry-*.cache"), directory / "autodetect.cache"]:
        path.unlink()
        os.mkfifo(path)
    # A FIFO nobody writes would block open() for ever: the child must finish.
    assert child.lock("excl")["backend"] == "excl"
    assert child.lock()["backend"] in {"hardlink", "excl"}


def test_damaged_records_are_ignored_not_fatal(child: Child) -> None:
    child.lock()
    directory = child.cache / "lockkit"
    [registry] = directory.glob("registry-*.cache")
    good = _cache_file(registry)
    names: object
    for names in ([], "excl", 7, {"excl": "not a dict"}):
        _write_cache_file(registry, {**good, "names": names})
        assert child.lock("excl")["backend"] == "excl"
    _write_cache_file(registry, {**good, "schemes": ["redis"]})
    assert child.lock("excl")["backend"] == "excl"
    verdicts = _cache_file(directory / "autodetect.cache")
    for entry in verdicts["verdicts"].values():
        entry["evidence"] = [
            [name, ok, float("inf"), why] for name, ok, _, why in entry["evidence"]
        ]
    _write_cache_file(directory / "autodetect.cache", verdicts)
    assert child.lock()["backend"] in {"hardlink", "excl"}


def test_a_verdict_naming_a_removed_backend_is_probed_again(child: Child) -> None:
    # The plugin is removed and the site directory's time put back (rsync -a, cp -a,
    # a tar restore), so nothing tells the caches: the verdict names a backend that is
    # gone, and the lock must probe again rather than fail with UnknownBackend.
    module = child.site / "fastest_mod.py"
    module.write_text(
        textwrap.dedent("""
        from typing import ClassVar
        from lockkit.backends.excl import ExclBackend
        from lockkit.spec import Support, hookimpl


        class Fastest(ExclBackend):
            name: ClassVar[str] = "fastest"

            @classmethod
            def probe(cls, location):
                return Support(ok=True, preference=99, reason="always")


        @hookimpl
        def lockkit_register_backends():
            return [Fastest]
        """)
    )
    info = child.site / "fastest-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fastest\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lockkit]\nfastest = fastest_mod\n")
    assert child.lock()["backend"] == "fastest"
    assert child.lock()["cached"] == "used"
    times = child.site.stat()
    shutil.rmtree(info)
    module.unlink()
    shutil.rmtree(child.site / "__pycache__", ignore_errors=True)
    os.utime(child.site, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert child.lock()["backend"] in {"hardlink", "excl"}
