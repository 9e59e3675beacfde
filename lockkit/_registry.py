"""Find backend plugins through pluggy and the ``lockkit`` entry-point group, lazily.

Rules (architecture §2):

* Nothing happens at ``import lockkit``. The registry is built on first use.
* Resolving one backend by name loads only the entry points with that name; listing
  loads all of them. The built-in backends come through lockkit's own entry points.
* A plugin that fails to import, or hands over something that is not a backend, is
  reported (distribution and error) and skipped; everything else keeps working.
* ``LOCKKIT_DISABLED_PLUGINS=a,b`` blocks plugins and backends by name; ``dist:name``
  blocks only the one a distribution provides.
* Two backends with one name are an error that names both, as ``dist:name``, which
  also selects one of them.
* Mistakes a plugin author makes silently are reported: an entry point named unlike
  the backend it provides, a ``lockkit_*`` function without ``@hookimpl``.
"""

from __future__ import annotations

import _thread
import os

from lockkit import _cache, _regcache, spec
from lockkit._log import log
from lockkit._value import frozen
from lockkit.errors import (
    BackendError,
    BackendUnavailable,
    LockError,
    LockkitWarning,
    PluginError,
    UnknownBackend,
)

TYPE_CHECKING = False  # not typing's: the cold path does not import typing
if TYPE_CHECKING:
    from importlib.metadata import EntryPoint
    from typing import Any

    import pluggy

    from lockkit._info import Lease, LockInfo

__all__ = [
    "BackendEntry",
    "PluginProblem",
    "Registry",
    "get_registry",
    "register_plugin",
    "reset_registry",
]


DISABLED_ENV = "LOCKKIT_DISABLED_PLUGINS"
_EVENT_HOOKS = (
    "lockkit_acquired",
    "lockkit_released",
    "lockkit_contended",
    "lockkit_stale_broken",
    "lockkit_lost",
)
_IMPL = f"{spec.NAME}_impl"


@frozen
class BackendEntry:
    """A registered backend class and where it came from.

    Attributes:
        name: The backend name.
        cls: The backend class.
        distribution: ``"name version"`` of the distribution that provides it, or a
            description such as ``"registered in-process"``.
        dist: The distribution's normalized name (``lockkit-mkdir``), or ``""``.
    """

    name: str
    cls: type[spec.Backend]
    distribution: str
    dist: str = ""

    @property
    def qualified(self) -> str:
        """``dist:name``: selects this backend when another has the same name."""
        return f"{self.dist}:{self.name}" if self.dist else self.name


@frozen
class PluginProblem:
    """A plugin that could not be used, and why.

    Attributes:
        plugin: The entry-point (or plugin) name.
        distribution: ``"name version"`` of the distribution, where known.
        error: What went wrong, in one line.
    """

    plugin: str
    distribution: str
    error: str
    skipped: bool = True

    def describe(self) -> str:
        """One line for warnings and ``lockkit backends``."""
        what = "was skipped" if self.skipped else "has a problem"
        where = (
            f"({self.distribution})"
            if self.distribution.startswith("registered")
            else f"from {self.distribution}"
        )
        return f"lockkit plugin {self.plugin!r} {where} {what}: {self.error}"


def _disabled_from_env() -> frozenset[str]:
    raw = os.environ.get(DISABLED_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _distribution_label(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def _normalized(dist: str) -> str:
    """A distribution name as PEP 503 compares them: ``Lockkit_MKDIR`` -> ``lockkit-mkdir``."""
    out: list[str] = []
    for char in dist.lower():
        if char in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(char)
    return "".join(out)


def _dist_name(label: str) -> str:
    """The normalized distribution name in a ``"name version"`` label, else ``""``."""
    if " " not in label or label.startswith(("an unknown", "registered")):
        return ""
    return _normalized(label.split(" ", 1)[0])


def _unknown_hooks(plugin: object) -> list[str]:
    """``@hookimpl`` functions of ``plugin`` whose name is no hook (pluggy would refuse it)."""
    from lockkit._hookspecs import HOOKS  # noqa: PLC0415 - pluggy's path only

    return [
        attr
        for attr in dir(plugin)
        if hasattr(getattr(plugin, attr, None), _IMPL) and attr not in HOOKS
    ]


def _mark_builtin_hooks(plugin: object) -> None:
    """Apply the real ``@hookimpl`` to the built-ins' hooks (see `spec._builtin_hookimpl`)."""
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if getattr(value, spec._BUILTIN_HOOKIMPL, False) and not hasattr(value, _IMPL):  # noqa: SLF001
            spec.hookimpl(value)


def _unmarked_hooks(plugin: object) -> list[str]:
    """``lockkit_*`` functions of ``plugin`` that lack ``@hookimpl`` (pluggy ignores them)."""
    import inspect  # noqa: PLC0415 - pluggy's path only (pluggy imports it anyway)

    own = getattr(plugin, "__name__", None) if inspect.ismodule(plugin) else None
    found = []
    for attr in dir(plugin):
        if not attr.startswith(f"{spec.NAME}_"):
            continue
        value = getattr(plugin, attr, None)
        if not callable(value) or inspect.isclass(value):
            continue
        if hasattr(value, f"{spec.NAME}_impl") or hasattr(value, f"{spec.NAME}_spec"):
            continue
        if own is not None and getattr(value, "__module__", own) != own:
            continue  # imported from elsewhere, not this plugin's own function
        found.append(attr)
    return found


class Registry:
    """Backend classes keyed by name, loaded on demand from entry points.

    One registry serves the whole process (see `get_registry`); tests may build
    their own. All methods are thread-safe.
    """

    def __init__(self, group: str = spec.NAME, *, disabled: frozenset[str] | None = None) -> None:
        """Create an empty registry reading entry-point ``group``."""
        self._group = group
        self._disabled = _disabled_from_env() if disabled is None else disabled
        # The cache serves the group and the disabled set it was keyed with (the env's).
        self._use_cache = group == spec.NAME and disabled is None and _cache.enabled()
        self._record: dict[str, Any] | None = None
        self._record_read = False
        self._script_dists = False  # a scan found a lockkit plugin in sys.path[0]
        self._ep_origins: dict[type[spec.Backend], dict[str, Any]] = {}
        self._manager: pluggy.PluginManager | None = None
        self._entries: dict[str, BackendEntry] = {}
        # Every provider of each name: more than one is a conflict, told apart as dist:name.
        self._providers: dict[str, list[BackendEntry]] = {}
        self._schemes: dict[str, str] = {}
        self._origins: dict[type[spec.Backend], str] = {}
        self._problems: list[PluginProblem] = []
        self._loaded_eps: set[tuple[str, str]] = set()
        self._all_loaded = False
        self._observers_loaded = False
        self._scanned: dict[str, list[EntryPoint]] | None = None
        self._instances: dict[tuple[str, str | None], spec.Backend] = {}
        self._lock = _thread.RLock()
        self.has_event_hooks = False

    @property
    def _pm(self) -> pluggy.PluginManager:
        """The plugin manager, made (importing pluggy) on first use."""
        if self._manager is None:
            from lockkit._hookspecs import plugin_manager  # noqa: PLC0415

            self._manager = plugin_manager()
        return self._manager

    # -- loading ---------------------------------------------------------------------

    def _entry_points(self, name: str | None = None, group: str = "") -> list[EntryPoint]:
        # importlib.metadata is imported here, not at module level: it is the costly part
        # that `import lockkit` must not pay.
        from importlib.metadata import entry_points  # noqa: PLC0415

        if self._scanned is None:
            # One scan of the installed distributions serves both groups: each scan
            # reads every distribution's metadata, the bulk of a first Lock()'s cost.
            found = entry_points()
            self._scanned = {
                wanted: list(found.select(group=wanted))
                for wanted in (self._group, f"{self._group}.observers")
            }
        eps = self._scanned.get(group or self._group, [])
        if name is not None:
            eps = [ep for ep in eps if ep.name == name]
        return eps

    def _load_observers(self) -> None:
        """Load the ``lockkit.observers`` group once: plugins with event hooks only.

        They cannot be loaded by backend name, so they are loaded with the first backend
        lookup of the process (one more entry-point group in the same scan).
        """
        if self._observers_loaded:
            return
        self._observers_loaded = True
        for ep in self._entry_points(group=f"{self._group}.observers"):
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        label = _distribution_label(ep)
        key = (label, ep.name)
        if key in self._loaded_eps:
            return
        self._loaded_eps.add(key)
        if self._is_disabled(ep.name, label):
            log.debug("lockkit plugin %r from %s is disabled by %s", ep.name, label, DISABLED_ENV)
            return
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure must be contained
            self._report(PluginProblem(ep.name, label, f"{type(exc).__name__}: {exc}"))
            return
        observer = ep.group.endswith(".observers") if getattr(ep, "group", None) else False
        info = getattr(getattr(ep, "dist", None), "_path", None)
        origin = {"ep": ep.name, "value": ep.value, "info": str(info) if info else ""}
        if info and _regcache.in_script_dir(str(info)):
            self._script_dists = True
        self._register(plugin, ep.name, label, entry_point=not observer, origin=origin)

    def _is_disabled(self, name: str, label: str) -> bool:
        """Whether ``name`` (from the distribution in ``label``) is blocked."""
        if name in self._disabled:
            return True
        dist = _dist_name(label)
        return bool(dist) and f"{dist}:{name}" in self._disabled

    def _register(
        self,
        plugin: object,
        plugin_name: str,
        label: str,
        *,
        entry_point: bool = False,
        origin: dict[str, Any] | None = None,
    ) -> None:
        import pluggy  # noqa: PLC0415 - registering is pluggy's path

        from lockkit._hookspecs import HOOKS  # noqa: PLC0415

        if self._pm.is_registered(plugin):
            return  # one module behind several entry points (a backend's URL schemes)
        _mark_builtin_hooks(plugin)
        for attr in _unknown_hooks(plugin):
            problem = (
                f"{attr}() is decorated with @hookimpl but matches no lockkit hook, so it is "
                f"never called; the hooks are {', '.join(sorted(HOOKS))}"
            )
            self._report(PluginProblem(plugin_name, label, problem, skipped=False))
        for attr in _unmarked_hooks(plugin):
            problem = (
                f"{attr}() is not decorated with @lockkit.spec.hookimpl, so lockkit never "
                "calls it; decorate it"
            )
            self._report(PluginProblem(plugin_name, label, problem, skipped=False))
        try:
            self._pm.register(plugin, name=f"{plugin_name}@{label}")
        except (ValueError, pluggy.PluginValidationError) as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self._report(PluginProblem(plugin_name, label, str(exc)))
            return
        if origin is not None:
            hooks = any(hasattr(getattr(plugin, hook, None), _IMPL) for hook in _EVENT_HOOKS)
            origin = {**origin, "hooks": hooks}
        for impl in self._pm.hook.lockkit_register_backends.get_hookimpls():
            if impl.plugin is plugin:
                self._collect(
                    impl.function, plugin_name, label, entry_point=entry_point, origin=origin
                )
        self.has_event_hooks = any(
            getattr(self._pm.hook, hook).get_hookimpls() for hook in _EVENT_HOOKS
        )

    def _collect(
        self,
        register: Any,  # noqa: ANN401 - a plugin's hook function
        plugin_name: str,
        label: str,
        *,
        entry_point: bool = False,
        origin: dict[str, Any] | None = None,
    ) -> None:
        import inspect  # noqa: PLC0415 - pluggy's path only (pluggy imports it anyway)

        try:
            classes = list(register() or ())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
            problem = f"lockkit_register_backends() raised {type(exc).__name__}: {exc}"
            self._report(PluginProblem(plugin_name, label, problem))
            return
        for cls in classes:
            if not (inspect.isclass(cls) and issubclass(cls, spec.Backend)):
                problem = f"returned {cls!r}, which is not a subclass of lockkit.spec.Backend"
                self._report(PluginProblem(plugin_name, label, problem))
                continue
            if not cls.name:
                problem = f"backend class {cls.__qualname__} has an empty `name`"
                self._report(PluginProblem(plugin_name, label, problem))
                continue
            if inspect.isabstract(cls):
                problem = f"backend class {cls.__qualname__} leaves abstract methods unimplemented"
                self._report(PluginProblem(plugin_name, label, problem))
                continue
            if cls.capabilities.ttl and cls.refresh is spec.Backend.refresh:
                problem = (
                    f"backend class {cls.__qualname__} declares the ttl capability but does "
                    "not implement refresh()"
                )
                self._report(PluginProblem(plugin_name, label, problem))
                continue
            if self._is_disabled(cls.name, label):
                continue
            if origin is not None:
                target = f"{cls.__module__}:{cls.__qualname__}"
                self._ep_origins.setdefault(cls, {**origin, "cls": target})
            self._add(BackendEntry(cls.name, cls, label, _dist_name(label)))
        names = {name for cls in classes if isinstance(cls, type) for name in _names(cls)}
        if entry_point and names and plugin_name not in names:
            problem = (
                f"its entry point is named {plugin_name!r} but provides "
                f"{', '.join(repr(n) for n in sorted(names))}: selecting a backend by name "
                f"loads the entry point of that name, so rename the entry point to the "
                "backend's name in [project.entry-points.lockkit]"
            )
            self._report(PluginProblem(plugin_name, label, problem, skipped=False))

    def _add(self, entry: BackendEntry) -> None:
        providers = self._providers.setdefault(entry.name, [])
        if any(known.cls is entry.cls for known in providers):
            return
        providers.append(entry)
        self._origins.setdefault(entry.cls, entry.distribution)
        if len(providers) == 1:
            self._entries[entry.name] = entry
        for scheme in entry.cls.schemes:
            self._schemes.setdefault(scheme.lower(), entry.name)

    def _report(self, problem: PluginProblem) -> None:
        self._problems.append(problem)
        log.warning("%s", problem.describe())
        import warnings  # noqa: PLC0415 - only to warn (warnings is not preloaded)

        warnings.warn(problem.describe(), LockkitWarning, stacklevel=4)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (a module or object with ``@hookimpl`` functions).

        Useful for applications that ship a backend or an event observer without an
        entry point, and for tests.
        """
        with self._lock:
            plugin_name = name or str(getattr(plugin, "__name__", type(plugin).__name__))
            self._register(plugin, plugin_name, "registered in-process")

    def unregister(self, plugin: object) -> None:
        """Remove an in-process plugin's hooks (its backends stay registered)."""
        with self._lock:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self.has_event_hooks = any(
                getattr(self._pm.hook, hook).get_hookimpls() for hook in _EVENT_HOOKS
            )

    def load_all(self) -> None:
        """Load every entry point in the group (``lockkit backends`` does this)."""
        with self._lock:
            if self._all_loaded:
                return
            self._load_observers()
            for ep in self._entry_points():
                self._load_entry_point(ep)
            self._all_loaded = True
            self._remember(complete=True)

    # -- queries ---------------------------------------------------------------------

    def get(self, name: str) -> type[spec.Backend]:
        """Return the backend class called ``name``, loading only what it takes.

        ``name`` may be ``dist:name`` to pick one of two backends with the same name.

        Raises:
            UnknownBackend: No such backend; the message lists the available ones.
            PluginError: Two distributions provide a backend with this name.
        """
        dist, _, plain = name.rpartition(":")
        with self._lock:
            if plain in self._providers or self._all_loaded or not self._from_record(plain):
                self._load_observers()
            if plain not in self._providers and not self._all_loaded:
                for ep in self._entry_points(plain):
                    self._load_entry_point(ep)
                if plain in self._providers:
                    self._remember(names=(plain,))
                else:
                    # An entry point may provide several backends under other names.
                    self.load_all()
            providers = self._providers.get(plain, [])
            if dist:
                providers = [p for p in providers if p.dist == _normalized(dist)]
            if len(providers) > 1:
                options = " and ".join(f"{p.distribution} ({p.qualified!r})" for p in providers)
                raise PluginError(
                    f"backend name {plain!r} is provided by {options}; select one as "
                    f"dist:name (e.g. backend={providers[0].qualified!r}), disable one with "
                    f"{DISABLED_ENV}={providers[1].qualified}, or uninstall one of them"
                )
            if not providers:
                self.load_all()
                raise UnknownBackend(name, self._entries, self._unknown_hint(name, plain))
            return providers[0].cls

    def _unknown_hint(self, name: str, plain: str) -> str:
        if (
            self._is_disabled(plain, "")
            or name in self._disabled
            or any(token.rpartition(":")[2] == plain for token in self._disabled)
        ):
            return f"It is disabled by {DISABLED_ENV}."
        mine = [p for p in self._problems if p.plugin == plain]
        failed = [p.describe() for p in mine if p.skipped]
        if failed:
            return "Its plugin failed to load: " + "; ".join(failed)
        if mine:
            return "Its plugin has a problem: " + "; ".join(p.describe() for p in mine)
        return ""

    def origin(self, cls: type[spec.Backend]) -> str:
        """Where backend class ``cls`` comes from (``"lockkit-mkdir 0.1.0"``), for messages."""
        label = self._origins.get(cls)
        if label is None or label == "registered in-process":
            how = "registered in-process" if label else "passed as an instance"
            return f"module {cls.__module__}, {how}"
        return label

    def scheme_backend(self, scheme: str) -> str:
        """The name of the backend serving URL scheme ``scheme`` (else ``scheme`` itself).

        Loads the entry point named like the scheme first (a backend advertises each of
        its schemes as one), then every plugin.
        """
        scheme = scheme.lower()
        with self._lock:
            if scheme not in self._schemes and scheme not in self._providers:
                record = self._usable_record()
                known = record.get("schemes", {}) if record is not None else {}
                if isinstance(known.get(scheme), str):
                    return str(known[scheme])
                for ep in self._entry_points(scheme):
                    self._load_entry_point(ep)
                if scheme in self._schemes:
                    self._remember(schemes=(scheme,))
                elif scheme not in self._providers:
                    self.load_all()
            return self._schemes.get(scheme, scheme)

    # -- the record of what a scan found (lockkit._regcache) -------------------------

    def _read_record(self) -> dict[str, Any] | None:
        """The cache file's record if it was written under the current key, else None."""
        if not self._record_read:
            self._record_read = True
            if self._use_cache:
                rc = _regcache
                record = _cache.read(rc.file_name())
                if (
                    record is not None
                    and record.get("key") == rc.current_key(os.environ.get(DISABLED_ENV, ""))
                    and _well_formed(record)
                ):
                    self._record = record
        return self._record

    def _usable_record(self) -> dict[str, Any] | None:
        """The record, if lookups may trust it now (no observers, sys.path[0] unchanged)."""
        record = self._read_record()
        if record is None or record.get("observers") is not False:
            return None
        if record.get("script_dir") != _regcache.script_dir() and (
            _regcache.script_dir_has_distributions()
        ):
            return None
        return record

    def _from_record(self, name: str) -> bool:
        """Add backend ``name`` from the record, importing only its module; False if not."""
        record = self._usable_record()
        if record is None:
            return False
        found = record.get("names", {}).get(name)
        if not isinstance(found, dict):
            return False
        cls = _regcache.import_backend(name, found, self._group)
        label, dist = found.get("label"), found.get("dist")
        if cls is None or not isinstance(label, str) or not isinstance(dist, str):
            log.debug("lockkit: the registry cache's record of %r does not hold; scanning", name)
            return False
        self._add(BackendEntry(name, cls, label, dist))
        self._observers_loaded = True  # the record says there are none
        return True

    def participants(self) -> list[str] | None:
        """Every backend auto-detection would probe, as ``name|distribution|module:qualname``.

        From the record when a complete one is trusted (nothing is imported), else from
        the loaded registry when everything is loaded, else None.
        """
        with self._lock:
            in_process = [
                _participant(entry)
                for providers in self._providers.values()
                for entry in providers
                if entry.distribution == "registered in-process"
            ]
            if self._all_loaded:
                return sorted(
                    _participant(entry)
                    for providers in self._providers.values()
                    for entry in providers
                )
            record = self._usable_record()
            complete = record.get("complete") if record is not None else None
            if not isinstance(complete, list):
                return None
            return sorted({*map(str, complete), *in_process})

    def _clean(self, name: str) -> dict[str, Any] | None:
        """What the record says about ``name``, if a lookup by name may skip the scan.

        Only when the long way would end the same way without a word: exactly one
        provider, from the one entry point of that name, which reported no problem and
        implements no event hook.
        """
        providers = self._providers.get(name, [])
        if len(providers) != 1 or self._scanned is None:
            return None
        [entry] = providers
        origin = self._ep_origins.get(entry.cls)
        if not origin or origin.get("hooks") or not origin.get("info") or origin["ep"] != name:
            return None
        if len([ep for ep in self._scanned.get(self._group, []) if ep.name == name]) != 1:
            return None
        if any(problem.plugin == name for problem in self._problems):
            return None
        return {**origin, "label": entry.distribution, "dist": entry.dist}

    def _remember(
        self,
        *,
        names: tuple[str, ...] = (),
        schemes: tuple[str, ...] = (),
        complete: bool = False,
    ) -> None:
        """Add what was just found by scanning to the record (best effort, silent)."""
        if not self._use_cache or self._script_dists or self._scanned is None:
            return
        rc = _regcache
        key = rc.current_key(os.environ.get(DISABLED_ENV, ""))
        record = self._read_record()
        if record is None or record.get("key") != key:
            record = {"key": key, "names": {}, "schemes": {}}
        record = {**record, "script_dir": rc.script_dir()}
        record["observers"] = bool(self._scanned.get(f"{self._group}.observers"))
        known = dict(record.get("names") or {})
        known_schemes = dict(record.get("schemes") or {})
        if complete:
            names = tuple(self._providers)
            schemes = tuple(self._schemes)
            record["complete"] = sorted(
                _participant(entry)
                for providers in self._providers.values()
                for entry in providers
                if entry.distribution != "registered in-process"
            )
        for name in names:
            clean = self._clean(name)
            if clean is not None:
                known[name] = clean
        for scheme in schemes:
            backend = self._schemes.get(scheme)
            if backend is not None and self._clean(backend) is not None:
                known_schemes[scheme] = backend
        record["names"], record["schemes"] = known, known_schemes
        if record != self._record:
            _cache.write(rc.file_name(), record)
            self._record = record

    def forget_record(self) -> None:
        """Drop the record (``lockkit doctor`` rewrites it from a full load)."""
        with self._lock:
            self._record, self._record_read = None, True

    def close_backends(self) -> None:
        """Call ``close()`` on every cached backend instance that has one."""
        with self._lock:
            instances = list(self._instances.values())
            self._instances.clear()
        for instance in instances:
            close = getattr(instance, "close", None)
            if callable(close):
                try:  # noqa: SIM105 - contextlib is not imported on the cold path
                    close()
                except Exception:  # noqa: BLE001, S110 - closing must not fail a reset
                    pass

    def backend(self, name: str, url: str | None = None) -> spec.Backend:
        """Return the shared instance of backend ``name`` (for ``url``, if given).

        One instance per (name, url) serves every lock in the process, so a server
        backend keeps one connection pool per URL.
        """
        with self._lock:
            key = (name, url)
            instance = self._instances.get(key)
            if instance is None:
                cls = self.get(name)
                try:
                    instance = cls.from_url(url) if url else cls()
                except LockError:
                    raise
                except Exception as exc:
                    raise _not_created(name, cls, self.origin(cls), exc, url=url) from exc
                self._instances[key] = instance
            return instance

    def entries(self) -> list[BackendEntry]:
        """Every registered backend, sorted by name (loads all entry points)."""
        with self._lock:
            self.load_all()
            every = [entry for providers in self._providers.values() for entry in providers]
            return sorted(every, key=lambda entry: (entry.name, entry.dist))

    def problems(self) -> list[PluginProblem]:
        """Plugins that were skipped, and backend names with conflicts."""
        with self._lock:
            conflicts = [
                PluginProblem(
                    name,
                    " and ".join(p.distribution for p in providers),
                    "two backends share this name; select or disable one as "
                    + " or ".join(repr(p.qualified) for p in providers),
                    skipped=False,
                )
                for name, providers in self._providers.items()
                if len(providers) > 1
            ]
            return [*self._problems, *conflicts]

    # -- events ----------------------------------------------------------------------

    def acquired(self, name: str, backend: str, lease: Lease, waited: float) -> None:
        """Call ``lockkit_acquired`` on every plugin that implements it."""
        self._pm.hook.lockkit_acquired(name=name, backend=backend, lease=lease, waited=waited)

    def released(self, name: str, backend: str, lease: Lease, held: float) -> None:
        """Call ``lockkit_released`` on every plugin that implements it."""
        self._pm.hook.lockkit_released(name=name, backend=backend, lease=lease, held=held)

    def contended(self, name: str, backend: str, holder: LockInfo | None) -> None:
        """Call ``lockkit_contended`` on every plugin that implements it."""
        self._pm.hook.lockkit_contended(name=name, backend=backend, holder=holder)

    def stale_broken(self, name: str, backend: str, info: LockInfo, reason: str) -> None:
        """Call ``lockkit_stale_broken`` on every plugin that implements it."""
        self._pm.hook.lockkit_stale_broken(name=name, backend=backend, info=info, reason=reason)

    def lost(self, name: str, backend: str, lease: Lease) -> None:
        """Call ``lockkit_lost`` on every plugin that implements it."""
        self._pm.hook.lockkit_lost(name=name, backend=backend, lease=lease)


_REGISTRY: Registry | None = None
_REGISTRY_LOCK = _thread.allocate_lock()


def get_registry() -> Registry:
    """Return the process-wide registry, creating it on first use."""
    global _REGISTRY  # noqa: PLW0603 - the process-wide singleton
    registry = _REGISTRY
    if registry is None:
        with _REGISTRY_LOCK:
            if _REGISTRY is None:
                _REGISTRY = Registry()
            registry = _REGISTRY
    return registry


def _not_created(
    name: str, cls: type[spec.Backend], plugin: str, exc: Exception, *, url: str | None
) -> LockError:
    """The `LockError` for a backend class that could not be built."""
    from lockkit._redact import redact_text  # noqa: PLC0415 - only on failure

    said = f"{type(exc).__name__}: {redact_text(str(exc))}"
    message = f"creating backend {name!r} (from {plugin}) failed: {said}"
    if url is None and cls.schemes and isinstance(exc, TypeError):
        # Built with cls() because it was selected by name; it wants its URL.
        message += (
            f"; it is built from a URL: select it as {cls.schemes[0]}://... "
            "(backend=, LOCKKIT_URL or the settings' url)"
        )
    if isinstance(exc, OSError):
        return BackendUnavailable(exc.errno, message) if exc.errno else BackendUnavailable(message)
    return BackendError(message, backend=name, plugin=plugin, original=exc)


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin with lockkit: an observer or a backend provider.

    ``plugin`` is a module or object with ``@lockkit.spec.hookimpl`` functions (event
    hooks such as ``lockkit_acquired``, or ``lockkit_register_backends``). For
    applications that observe locks, or ship a backend, without an entry point.
    """
    get_registry().register(plugin, name)


def _participant(entry: BackendEntry) -> str:
    return f"{entry.name}|{entry.distribution}|{entry.cls.__module__}:{entry.cls.__qualname__}"


def _names(cls: type[spec.Backend]) -> set[str]:
    """The names a backend class answers to: its name and its URL schemes."""
    return {cls.name, *cls.schemes} if getattr(cls, "name", "") else set()


def reset_registry() -> None:
    """Forget the process-wide registry, so the next use rescans (tests, env changes).

    Backend instances it built that have a ``close()`` (server connections) are closed.
    """
    global _REGISTRY
    with _REGISTRY_LOCK:
        registry, _REGISTRY = _REGISTRY, None
    if registry is not None:
        registry.close_backends()


def _well_formed(record: dict[str, Any]) -> bool:
    """Whether a registry record has the shape lockkit writes.

    A planted or damaged one may not: it is then ignored and rewritten, never a crash.
    """
    names, schemes = record.get("names", {}), record.get("schemes", {})
    complete = record.get("complete")
    return (
        isinstance(names, dict)
        and all(isinstance(entry, dict) for entry in names.values())
        and isinstance(schemes, dict)
        and (complete is None or isinstance(complete, list))
    )
