"""What is measured: lockkit's backends, the raw primitives, and the peer libraries.

A `Subject` is a name plus a factory key; `make_locker` turns the key into a `Locker`
in whichever process needs one (keys are plain strings, so they cross ``spawn``).
Subjects come in three families, each with the raw primitive its ratios refer to:

* ``lockfile``: a lock that is a file (``O_EXCL``, ``link()``, ``mkdir``-style plugins);
* ``flock``: an OS lock on a file, freed by the kernel when its holder dies;
* ``redis``: a key in Redis or Valkey;
* ``postgres``: a PostgreSQL advisory lock (the ``lockkit-postgres`` plugin);
* ``etcd``: an etcd key (the ``lockkit-etcd`` plugin).

The last two are comparison rows: no target applies to them, and they are measured
only on a server started for the run (`benchmarks.engines`), whose URL their factory
keys carry (``lockkit:postgresql://...``, ``raw:postgres postgresql://...``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from typing import TYPE_CHECKING, Literal, Protocol

from benchmarks import peers, raw

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BASELINES",
    "FAMILY_TITLES",
    "HANDOFF_FLOORS",
    "Locker",
    "Subject",
    "available_subjects",
    "engine_subjects",
    "lockkit_spec",
    "make_locker",
]

Kind = Literal["raw", "lockkit", "peer"]
Family = Literal["lockfile", "flock", "redis", "postgres", "etcd"]

FAMILY_TITLES: dict[str, str] = {
    "lockfile": "lock files (O_EXCL, link)",
    "flock": "OS locks (flock, lockf)",
    "redis": "Redis",
    "postgres": "PostgreSQL",
    "etcd": "etcd",
}
BASELINES: dict[str, str] = {
    "lockfile": "raw O_EXCL+unlink",
    "flock": "raw flock",
    "redis": "raw SET NX + Lua del",
    "postgres": "raw pg_try_advisory_lock + unlock",
    "etcd": "raw txn put-if-absent + delete",
}
"""Per family, the raw primitive that the ratio columns divide by."""
HANDOFF_FLOORS: dict[str, str] = {
    "lockfile": "raw flock",
    "flock": "raw flock",
    "redis": "raw BLPOP+RPUSH",
    "postgres": "raw pg_advisory_lock (blocking)",
}
"""Per family, the raw blocking hand-off that hand-off latencies are compared with
(etcd has none: its own wait is a watch, which is what the backend does)."""

_BUILTIN_BACKENDS = ("excl", "hardlink", "filelock", "redis")


class Locker(Protocol):
    """One lock, driven the same way for every subject."""

    @property
    def acquire(self) -> Callable[[], object]:
        """Take the lock, waiting if it is held (raw primitives that cannot wait raise)."""

    @property
    def release(self) -> Callable[[], object]:
        """Give it back."""

    def close(self) -> None:
        """Free connections and the like; the lock is not held."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """One thing to measure.

    Attributes:
        name: Shown in the tables, e.g. ``lockkit excl`` or ``filelock.FileLock``.
        kind: ``raw`` primitive, ``lockkit`` backend, or ``peer`` library.
        family: Which raw primitive its ratios refer to (`BASELINES`).
        factory: Key for `make_locker`: ``raw:excl``, ``lockkit:hardlink``,
            ``peer:portalocker.Lock``...
        waits: Whether ``acquire`` blocks until the lock is free; only such subjects
            take part in the hand-off and contended measurements.
        redis: Whether it needs a Redis server.
    """

    name: str
    kind: Kind
    family: Family
    factory: str
    waits: bool = True
    redis: bool = False

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name."""
        return "".join(c if c.isalnum() else "-" for c in self.name).strip("-")


_CATALOGUE = (
    Subject("raw O_EXCL+unlink", "raw", "lockfile", "raw:excl", waits=False),
    Subject("raw O_EXCL+write+unlink", "raw", "lockfile", "raw:excl-record", waits=False),
    Subject("raw temp+link()", "raw", "lockfile", "raw:link", waits=False),
    Subject("lockkit excl", "lockkit", "lockfile", "lockkit:excl"),
    Subject("lockkit hardlink", "lockkit", "lockfile", "lockkit:hardlink"),
    Subject("filelock.SoftFileLock", "peer", "lockfile", "peer:filelock.SoftFileLock"),
    Subject("raw flock", "raw", "flock", "raw:flock"),
    Subject("lockkit filelock", "lockkit", "flock", "lockkit:filelock"),
    Subject("filelock.FileLock", "peer", "flock", "peer:filelock.FileLock"),
    Subject("portalocker.Lock", "peer", "flock", "peer:portalocker.Lock"),
    Subject("fasteners.InterProcessLock", "peer", "flock", "peer:fasteners.InterProcessLock"),
    Subject("raw SET NX + Lua del", "raw", "redis", "raw:redis", waits=False, redis=True),
    Subject(
        "raw SET NX + Lua del, kept connection",
        "raw",
        "redis",
        "raw:redis-conn",
        waits=False,
        redis=True,
    ),
    Subject("raw BLPOP+RPUSH", "raw", "redis", "raw:redis-queue", redis=True),
    Subject("lockkit redis", "lockkit", "redis", "lockkit:redis", redis=True),
    Subject("redis.lock.Lock", "peer", "redis", "peer:redis.lock.Lock", redis=True),
    Subject("python-redis-lock", "peer", "redis", "peer:python-redis-lock", redis=True),
)


def _url_names(plugin: importlib.metadata.EntryPoint) -> set[str]:
    """The names and schemes of ``plugin``'s backends that are built from a server URL.

    Such a backend cannot lock a path in the benchmark directory; the ones the
    benchmarks know (``postgresql``, ``etcd``) are measured on a server of their own.
    A plugin that fails to load says nothing here, and fails in the tables instead.
    """
    try:
        classes = plugin.load().lockkit_register_backends()
    except Exception:  # noqa: BLE001 - reported when it is measured
        return set()
    return {n for cls in classes or () if cls.schemes for n in (cls.name, *cls.schemes)}


def _plugin_subjects() -> list[Subject]:
    """Installed third-party file backends (entry-point group ``lockkit``), for reference.

    They are shown with the lock files, measured against the same raw ``O_EXCL`` pair;
    no target applies to them. Plugins whose backends need a server URL are left out
    (see `_url_names`).
    """
    # Only lockkit's own distribution advertises the built-ins (and redis's URL
    # schemes, which are entry points too): everything else is a plugin.
    plugins = [
        ep
        for ep in importlib.metadata.entry_points(group="lockkit")
        if ep.dist is None or ep.dist.metadata["Name"] != "lockkit"
    ]
    servers = set().union(*(_url_names(ep) for ep in plugins))
    names = sorted({ep.name for ep in plugins} - set(_BUILTIN_BACKENDS) - servers)
    return [Subject(f"lockkit {n} (plugin)", "lockkit", "lockfile", f"lockkit:{n}") for n in names]


def engine_subjects(engines: dict[str, str]) -> list[Subject]:
    """PostgreSQL and etcd, each on the server whose URL ``engines`` maps its family to."""
    subjects = []
    sentinel = engines.get("sentinel")
    primary = engines.get("sentinel-primary")
    if sentinel is not None and primary is not None:
        subjects.append(
            Subject(
                "raw SET NX + Lua del on the sentinel primary",
                "raw",
                "redis",
                f"raw:redis {primary}",
                waits=False,
                redis=True,
            )
        )
    if sentinel is not None:
        subjects += [
            Subject(
                "lockkit redis sentinel", "lockkit", "redis", f"lockkit:{sentinel}", redis=True
            ),
            Subject(
                "lockkit redis sentinel min_replicas=1",
                "lockkit",
                "redis",
                f"lockkit:{sentinel}?min_replicas=1",
                redis=True,
            ),
        ]
    cluster = engines.get("cluster")
    if cluster is not None:
        subjects.append(
            Subject("lockkit redis cluster", "lockkit", "redis", f"lockkit:{cluster}", redis=True)
        )
    pg = engines.get("postgres")
    if pg is not None:
        subjects += [
            Subject(BASELINES["postgres"], "raw", "postgres", f"raw:postgres {pg}", waits=False),
            Subject(HANDOFF_FLOORS["postgres"], "raw", "postgres", f"raw:postgres-queue {pg}"),
            Subject("lockkit postgresql", "lockkit", "postgres", f"lockkit:{pg}"),
        ]
    etcd = engines.get("etcd")
    if etcd is not None:
        subjects += [
            Subject(BASELINES["etcd"], "raw", "etcd", f"raw:etcd {etcd}", waits=False),
            Subject("lockkit etcd", "lockkit", "etcd", f"lockkit:{etcd}"),
        ]
    return subjects


def available_subjects(
    redis_url: str | None,
    wanted: list[str] | None = None,
    engines: dict[str, str] | None = None,
) -> tuple[list[Subject], list[str]]:
    """The subjects that can run here, and a note for each one left out.

    Args:
        redis_url: The server for Redis subjects; ``None`` leaves them out.
        wanted: Keep only subjects whose name contains one of these (case-insensitive);
            the raw baselines and hand-off floors of the kept families are always kept.
        engines: The server URL of each other distributed engine started for the run,
            by family (``{"postgres": "postgresql://...", "etcd": "etcd://..."}``);
            an engine not in it is left out (`benchmarks.engines` noted why).
    """
    subjects: list[Subject] = []
    skipped: list[str] = []
    redis_py = importlib.util.find_spec("redis") is not None
    files = [s for s in _CATALOGUE if s.family == "lockfile"]
    others = [s for s in _CATALOGUE if s.family != "lockfile"]
    servers = engine_subjects(engines or {})
    for subject in [*files, *_plugin_subjects(), *others, *servers]:
        if subject.redis and redis_url is None:
            skipped.append(f"{subject.name}: no Redis server")
            continue
        if subject.redis and not redis_py:
            skipped.append(f"{subject.name}: redis-py is not installed")
            continue
        peer = subject.factory.removeprefix("peer:")
        if subject.kind == "peer" and not peers.installed(peer):
            skipped.append(f"{subject.name}: not installed (pip install {_pip_name(peer)})")
            continue
        subjects.append(subject)
    if wanted:
        lowered = [w.lower() for w in wanted]
        kept = [s for s in subjects if any(w in s.name.lower() for w in lowered)]
        families = {s.family for s in kept}
        floors = set(BASELINES.values()) | set(HANDOFF_FLOORS.values())
        subjects = [s for s in subjects if s in kept or s.name in floors]
        subjects = [s for s in subjects if s.family in families]
    return subjects, skipped


def _pip_name(peer: str) -> str:
    return peer if peer == "python-redis-lock" else peer.split(".", maxsplit=1)[0]


class _LockkitLocker:
    """A ``lockkit.Lock`` whose own bound methods are called directly."""

    def __init__(self, path: str, backend: str) -> None:
        import lockkit  # noqa: PLC0415 - only where lockkit is measured

        self.lock = lockkit.Lock(path, backend=backend, timeout=600)
        self.acquire: Callable[[], object] = self.lock.acquire
        self.release: Callable[[], object] = self.lock.release

    def close(self) -> None:
        if self.lock.locked:
            self.lock.release(force=True)


_RAW_FILES: dict[str, Callable[[str], Locker]] = {
    "excl": raw.RawExcl,
    "excl-record": raw.RawExclRecord,
    "link": raw.RawLink,
    "flock": raw.RawFlock,
}


_RAW_SERVERS: dict[str, Callable[[str, str], Locker]] = {
    "redis": raw.RawRedis,
    "redis-conn": raw.RawRedisConnection,
    "redis-queue": raw.RawRedisQueue,
    "postgres": raw.RawPostgres,
    "postgres-queue": raw.RawPostgresQueue,
    "etcd": raw.RawEtcd,
}


def make_locker(factory: str, path: str, redis_url: str | None) -> Locker:
    """Build the `Locker` for ``factory`` on lock ``path`` (a key name for a server).

    ``lockkit:NAME`` is a backend by name (``lockkit:redis`` the Redis one, on
    ``redis_url``); ``lockkit:URL`` a server backend by URL.
    """
    kind, _, what = factory.partition(":")
    if kind == "lockkit":
        backend = redis_url if what == "redis" else what
        if backend is None:
            raise ValueError("lockkit redis needs a Redis URL")
        return _LockkitLocker(path, backend)
    if kind == "peer":
        return peers.make_peer(what, path, redis_url)
    if what in _RAW_FILES:
        return _RAW_FILES[what](path)
    # A raw server primitive: `raw:redis` on `redis_url`, `raw:postgres URL` on URL.
    what, _, url = what.partition(" ")
    url = url or (redis_url if what.startswith("redis") else "") or ""
    if url and what in _RAW_SERVERS:
        return _RAW_SERVERS[what](path, url)
    raise ValueError(f"unknown subject factory {factory!r}")


def lockkit_spec(subject: Subject, redis_url: str | None) -> str:
    """The ``backend=`` string of a lockkit subject (a name, or a server URL)."""
    what = subject.factory.removeprefix("lockkit:")
    if what == "redis":
        if redis_url is None:
            raise ValueError("lockkit redis needs a Redis URL")
        return redis_url
    return what
