"""The plugin registry with real installed distributions (.dist-info on sys.path)."""

from __future__ import annotations

import pathlib
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from lockkit import spec
from lockkit._registry import Registry, get_registry
from lockkit.errors import BackendError, LockkitWarning, PluginError, UnknownBackend

BACKEND_TEMPLATE = """
from typing import ClassVar
from lockkit.spec import Backend, hookimpl


class {cls}(Backend):
    name: ClassVar[str] = "{name}"
    description: ClassVar[str] = "test backend {name}"

    def try_acquire(self, name, owner, ttl, *, shared=False):
        return None

    def release(self, lease):
        return True

    def inspect(self, name):
        return None


@hookimpl
def lockkit_register_backends():
    return [{cls}]
"""


class FakeSite:
    """A directory on sys.path holding real distributions with lockkit entry points."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        # Wheel rule: the directory name has "_" for "-", or the name is misparsed.
        info = self.root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[lockkit]\n{lines}")
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.append(module)


@pytest.fixture
def site(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = FakeSite(tmp_path)
    yield fake
    for module in fake.modules:
        sys.modules.pop(module, None)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def backend_module(name: str) -> str:
    return BACKEND_TEMPLATE.format(cls="TestBackend", name=name)


def test_installed_plugin_backend_is_found_by_name(site: FakeSite) -> None:
    module = unique("goodplug")
    site.add("goodplug", {"good": module}, {module: backend_module("good")})
    registry = Registry()
    cls = registry.get("good")
    assert issubclass(cls, spec.Backend)
    assert cls.name == "good"
    entry = {e.name: e for e in registry.entries()}["good"]
    assert entry.distribution == "goodplug 1.2.3"
    assert registry.problems() == []


def test_resolving_one_name_loads_only_that_entry_point(site: FakeSite) -> None:
    wanted, other = unique("wanted"), unique("other")
    site.add("wantedplug", {"wanted": wanted}, {wanted: backend_module("wanted")})
    site.add("otherplug", {"other": other}, {other: backend_module("other")})
    registry = Registry()
    registry.get("wanted")
    assert wanted in sys.modules
    assert other not in sys.modules
    registry.get("excl")  # a built-in, through lockkit's own entry point
    assert other not in sys.modules
    names = [entry.name for entry in registry.entries()]
    assert other in sys.modules
    assert {"excl", "hardlink", "filelock", "wanted", "other"} <= set(names)


def test_broken_plugin_is_reported_and_others_keep_working(site: FakeSite) -> None:
    broken, good = unique("brokenplug"), unique("goodplug")
    site.add("brokenplug", {"broken": broken}, {broken: "raise ImportError('no libfoo.so')\n"})
    site.add("goodplug", {"good": good}, {good: backend_module("good")})
    registry = Registry()
    with pytest.warns(LockkitWarning, match=r"'broken' from brokenplug 1\.2\.3.*no libfoo\.so"):
        entries = registry.entries()
    assert "good" in [entry.name for entry in entries]
    assert "excl" in [entry.name for entry in entries]
    [problem] = registry.problems()
    assert problem.distribution == "brokenplug 1.2.3"
    assert "ImportError: no libfoo.so" in problem.error
    # Asking for the broken backend by name explains why it is missing.
    with pytest.raises(UnknownBackend, match="failed to load"):
        registry.get("broken")


def test_duplicate_backend_names_name_both_distributions(site: FakeSite) -> None:
    first, second = unique("dupa"), unique("dupb")
    site.add("dup-a", {"dup": first}, {first: backend_module("dup")})
    site.add("dup-b", {"dup": second}, {second: backend_module("dup")})
    registry = Registry()
    with pytest.raises(PluginError) as caught:
        registry.get("dup")
    message = str(caught.value)
    assert "dup-a 1.2.3 ('dup-a:dup')" in message
    assert "dup-b 1.2.3 ('dup-b:dup')" in message
    assert "LOCKKIT_DISABLED_PLUGINS=dup-" in message
    # Told apart as dist:name (any spelling of the distribution name).
    assert registry.get("dup-a:dup").__module__ == first
    assert registry.get("Dup_B:dup").__module__ == second
    assert {e.qualified for e in registry.entries() if e.name == "dup"} == {
        "dup-a:dup",
        "dup-b:dup",
    }
    # Other backends are unaffected.
    assert registry.get("excl").name == "excl"


def test_one_of_two_duplicates_can_be_disabled(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The advice in the duplicate-name error can be followed: disable dist:name."""
    first, second = unique("dupa"), unique("dupb")
    site.add("dup-a", {"dup": first}, {first: backend_module("dup")})
    site.add("dup-b", {"dup": second}, {second: backend_module("dup")})
    monkeypatch.setenv("LOCKKIT_DISABLED_PLUGINS", "dup-a:dup")
    registry = Registry()
    assert registry.get("dup").__module__ == second
    assert first not in sys.modules  # never imported
    assert registry.problems() == []


def test_entry_point_named_unlike_its_backend_is_reported(site: FakeSite) -> None:
    module = unique("misnamed")
    site.add("misnamed", {"sqlite": module}, {module: backend_module("sqlite3")})
    registry = Registry()
    with pytest.warns(
        LockkitWarning, match=r"entry point is named 'sqlite' but provides 'sqlite3'"
    ):
        cls = registry.get("sqlite3")  # still usable by its name
    assert cls.name == "sqlite3"
    [problem] = registry.problems()
    assert problem.distribution == "misnamed 1.2.3"
    assert "rename the entry point" in problem.error


def test_a_hook_function_without_hookimpl_is_reported(site: FakeSite) -> None:
    module = unique("unmarked")
    source = (
        backend_module("marked")
        + """

def lockkit_acquired(name, backend, lease, waited):  # forgot @hookimpl
    pass
"""
    )
    site.add("unmarked", {"marked": module}, {module: source})
    registry = Registry()
    with pytest.warns(LockkitWarning, match=r"lockkit_acquired\(\) is not decorated with @lockkit"):
        registry.get("marked")
    assert not registry.has_event_hooks


def test_a_ttl_backend_without_refresh_is_refused(site: FakeSite) -> None:
    module = unique("norefresh")
    source = backend_module("norefresh").replace(
        'description: ClassVar[str] = "test backend norefresh"',
        'description: ClassVar[str] = "x"\n    from lockkit.spec import Capabilities\n'
        "    capabilities = Capabilities(ttl=True)",
    )
    site.add("norefresh", {"norefresh": module}, {module: source})
    registry = Registry()
    with (
        pytest.warns(
            LockkitWarning, match="declares the ttl capability but does not implement refresh"
        ),
        pytest.raises(UnknownBackend),
    ):
        registry.get("norefresh")


def test_non_backend_return_value_is_reported(site: FakeSite) -> None:
    module = unique("weird")
    source = """
    from lockkit.spec import hookimpl

    @hookimpl
    def lockkit_register_backends():
        return [object]
    """
    site.add("weirdplug", {"weird": module}, {module: source})
    registry = Registry()
    with pytest.warns(LockkitWarning, match=r"weirdplug 1\.2\.3.*not a subclass"):
        registry.load_all()
    assert "weird" not in [entry.name for entry in registry.entries()]


def test_unknown_hook_is_rejected(site: FakeSite) -> None:
    module = unique("typo")
    source = """
    from lockkit.spec import hookimpl

    @hookimpl
    def lockkit_register_backend():  # missing 's': matches no spec
        return []
    """
    site.add("typoplug", {"typo": module}, {module: source})
    registry = Registry()
    with pytest.warns(LockkitWarning, match=r"typoplug 1\.2\.3.*lockkit_register_backend"):
        registry.load_all()


def test_disabled_plugins_env(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    module = unique("offplug")
    site.add("offplug", {"off": module}, {module: backend_module("off")})
    monkeypatch.setenv("LOCKKIT_DISABLED_PLUGINS", "off, hardlink")
    registry = Registry()
    with pytest.raises(UnknownBackend, match="disabled by LOCKKIT_DISABLED_PLUGINS"):
        registry.get("off")
    assert module not in sys.modules
    names = [entry.name for entry in registry.entries()]
    assert "hardlink" not in names
    assert "excl" in names


def test_unknown_backend_lists_available() -> None:
    with pytest.raises(UnknownBackend) as caught:
        get_registry().get("nonsense")
    message = str(caught.value)
    assert "'nonsense'" in message
    assert "excl, filelock, hardlink" in message
    assert caught.value.available == sorted(caught.value.available)


def test_in_process_registration_and_event_hooks(tmp_path: pathlib.Path) -> None:
    import lockkit
    from lockkit.spec import hookimpl

    events: list[tuple[str, str]] = []

    class Observer:
        @hookimpl
        def lockkit_acquired(self, name: str, backend: str) -> None:
            events.append(("acquired", backend))

        @hookimpl
        def lockkit_released(self, name: str, backend: str) -> None:
            events.append(("released", backend))

    registry = get_registry()
    assert not registry.has_event_hooks
    registry.register(Observer(), name="observer")
    assert registry.has_event_hooks
    with lockkit.Lock(tmp_path / "ev.lock", backend="excl"):
        pass
    assert events == [("acquired", "excl"), ("released", "excl")]


def test_observer_only_plugin_is_loaded_with_the_first_lookup(
    site: FakeSite, tmp_path: pathlib.Path
) -> None:
    module = unique("observer")
    source = """
    from lockkit.spec import hookimpl

    CALLS = []

    @hookimpl
    def lockkit_acquired(name, backend):
        CALLS.append(backend)
    """
    info = site.root / "observerplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: observerplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[lockkit.observers]\nprint = {module}\n")
    (site.root / f"{module}.py").write_text(textwrap.dedent(source))
    site.modules.append(module)
    import lockkit

    with lockkit.Lock(tmp_path / "o.lock", backend="excl"):
        pass
    assert sys.modules[module].CALLS == ["excl"]


URL_BACKEND = """
from typing import ClassVar
from lockkit.spec import Backend, hookimpl


class UrlBackend(Backend):
    name: ClassVar[str] = "{name}"
    schemes: ClassVar[tuple[str, ...]] = ("{name}",)

    def __init__(self, where: str) -> None:
        self.where = where

    @classmethod
    def from_url(cls, url):
        return cls(url)

    def try_acquire(self, name, owner, ttl, *, shared=False):
        return None

    def release(self, lease):
        return True

    def inspect(self, name):
        return None


@hookimpl
def lockkit_register_backends():
    return [UrlBackend]
"""


@pytest.fixture
def two_url_backends(site: FakeSite) -> None:
    first, second = unique("urla"), unique("urlb")
    site.add("url-a", {"jd": first}, {first: URL_BACKEND.format(name="jd")})
    site.add("url-b", {"jd": second}, {second: URL_BACKEND.format(name="jd")})


@pytest.mark.usefixtures("two_url_backends")
def test_dist_name_with_a_url_gets_the_url_without_the_distribution() -> None:
    from lockkit._select import choose

    registry = get_registry()
    selection, backend = choose("n", "url-b:jd:///srv/locks", None, registry)
    assert selection.backend == "url-b:jd"
    assert type(backend).__module__.startswith("urlb_")
    assert backend.where == "jd:///srv/locks"  # type: ignore[attr-defined]


@pytest.mark.usefixtures("two_url_backends")
def test_dist_name_in_the_env_takes_the_url_of_its_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Following the duplicate-name advice must not move locks to another store."""
    from lockkit._select import choose

    monkeypatch.setenv("LOCKKIT_BACKEND", "url-a:jd")
    monkeypatch.setenv("LOCKKIT_URL", "jd:///srv/locks")
    selection, backend = choose("n", None, None, get_registry())
    assert selection.url == "jd:///srv/locks"
    assert type(backend).__module__.startswith("urla_")
    assert backend.where == "jd:///srv/locks"  # type: ignore[attr-defined]


def test_a_backend_that_needs_its_url_says_so(site: FakeSite) -> None:
    module = unique("needsurl")
    site.add("needsurl", {"needs": module}, {module: URL_BACKEND.format(name="needs")})
    with pytest.raises(BackendError, match=r"it is built from a URL: select it as needs://"):
        get_registry().backend("needs")


def test_a_misspelled_hook_is_reported_and_the_backend_stays(site: FakeSite) -> None:
    module = unique("misspelled")
    source = (
        backend_module("spelled")
        + """

@hookimpl
def lockkit_aquired(name, backend, lease, waited):
    pass
"""
    )
    site.add("misspelled", {"spelled": module}, {module: source})
    registry = Registry()
    with pytest.warns(LockkitWarning, match=r"lockkit_aquired\(\) is decorated with @hookimpl"):
        assert registry.get("spelled").name == "spelled"
    [problem] = registry.problems()
    assert not problem.skipped


def test_a_backend_disabled_as_dist_name_says_it_is_disabled(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("offdist")
    site.add("off-dist", {"offd": module}, {module: backend_module("offd")})
    monkeypatch.setenv("LOCKKIT_DISABLED_PLUGINS", "off-dist:offd")
    with pytest.raises(UnknownBackend, match="disabled by LOCKKIT_DISABLED_PLUGINS"):
        Registry().get("offd")
