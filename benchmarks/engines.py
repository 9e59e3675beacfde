"""Private servers for one run: Redis deployments and the other distributed engines.

Redis behind Sentinel (a primary, two replicas, three sentinels) and a Redis Cluster
(three masters with a replica each) are measured beside the standalone Redis server,
from the same ``redis-server`` binary (`benchmarks.redissentinel`,
`benchmarks.rediscluster`). The ``lockkit-postgres`` and ``lockkit-etcd`` plugins are
measured beside Redis when they are installed and their server binaries exist (Debian:
``postgresql``, ``etcd-server``). Each engine gets one server for the whole run, started by the
plugin's own launcher (`lockkit_postgres.server`, `lockkit_etcd.server`, the ones its
tests use): loopback only, a temporary data directory, durable only as far as the OS
cache (``fsync=off``, ``--unsafe-no-fsync``, as the private Redis keeps nothing on
disk), and stopped and removed when the run ends, errs or is interrupted (SIGTERM
becomes ``SystemExit`` in `benchmarks.__main__`). Should the benchmark be killed
outright, the kernel stops etcd (``setpriv --pdeathsig``) and, when run as root,
PostgreSQL too.

Whatever is missing leaves that engine out with a note, never fails the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

__all__ = ["ENGINES", "Engine", "start"]


@dataclasses.dataclass(frozen=True)
class Engine:
    """One distributed engine besides Redis.

    Attributes:
        family: The subjects' family (`benchmarks.subjects.FAMILY_TITLES`).
        title: Shown in the report (``PostgreSQL``).
        plugin: The import name of the plugin module.
        distribution: Its distribution, for the install hint.
        needs: Other modules its subjects import (psycopg for PostgreSQL).
        package: The Debian package with the server binaries, for the skip note.
    """

    family: str
    title: str
    plugin: str
    distribution: str
    needs: tuple[str, ...]
    package: str


ENGINES = (
    Engine("sentinel", "Redis Sentinel", "redis", "lockkit[redis]", (), "redis-server"),
    Engine("cluster", "Redis Cluster", "redis", "lockkit[redis]", (), "redis-server"),
    Engine(
        "postgres",
        "PostgreSQL",
        "lockkit_postgres",
        "lockkit-postgres",
        ("psycopg",),
        "postgresql",
    ),
    Engine("etcd", "etcd", "lockkit_etcd", "lockkit-etcd", (), "etcd-server"),
)


def _version(argv: list[str]) -> str:
    """The first line of ``argv``'s output (``postgres (PostgreSQL) 15.14``), or ``?``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "?"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _missing(engine: Engine) -> str | None:
    """Why ``engine`` cannot be measured here, or ``None`` when it can."""
    for module in (engine.plugin, *engine.needs):
        if importlib.util.find_spec(module) is None:
            where = engine.distribution
            hint = where if "[" in where else f"-e plugins/{where}"
            return f"{module} is not installed (pip install '{hint}')"
    return None


@contextlib.contextmanager
def _sentinel() -> Iterator[tuple[str, str]]:
    from benchmarks.redissentinel import running_sentinel  # noqa: PLC0415
    from benchmarks.redisserver import find_binary  # noqa: PLC0415

    binary = find_binary()
    if binary is None:
        raise LookupError("no redis-server on PATH")
    with running_sentinel(binary, die_with_parent=True) as deployment:
        version = _version([binary, "--version"]).split(" sha=")[0]
        # The primary's own URL too: the raw primitive there pays for replication as
        # lockkit does, which the standalone server's does not.
        primary = f"redis://127.0.0.1:{deployment.primary_port()}/0"
        yield f"{deployment.url()} {primary}", f"{version}: 1 primary, 2 replicas, 3 sentinels"


@contextlib.contextmanager
def _cluster() -> Iterator[tuple[str, str]]:
    from benchmarks.rediscluster import find_cli, private_cluster  # noqa: PLC0415
    from benchmarks.redisserver import find_binary  # noqa: PLC0415

    binary = find_binary()
    cli = find_cli(binary) if binary is not None else None
    if binary is None or cli is None:
        raise LookupError("no redis-server and redis-cli on PATH")
    with private_cluster(binary, cli) as url:
        version = _version([binary, "--version"]).split(" sha=")[0]
        yield url, f"{version}: 3 masters with a replica each"


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, str]]:
    from lockkit_postgres import server  # noqa: PLC0415 - an optional plugin

    bindir: pathlib.Path | None = server.find_bindir()
    if bindir is None:
        raise LookupError("no PostgreSQL server binaries (initdb, postgres) found")
    with server.running(bindir) as running:
        version = _version([str(bindir / "postgres"), "--version"])
        yield running.url, version.replace("postgres (PostgreSQL) ", "PostgreSQL ", 1)


@contextlib.contextmanager
def _etcd() -> Iterator[tuple[str, str]]:
    from lockkit_etcd import server  # noqa: PLC0415 - an optional plugin

    binary = server.find_etcd()
    if binary is None:
        raise LookupError("no etcd binary on PATH")
    with server.running(binary) as running:
        version = _version([str(binary), "--version"]).removeprefix("etcd Version: ")
        yield running.url, f"etcd {version}"


def start(
    stack: contextlib.ExitStack, engine: Engine, skipped: list[str]
) -> dict[str, object] | None:
    """Start ``engine``'s private server on ``stack``; ``{"url", "server", "private"}``.

    ``None``, with a note in ``skipped``, when its plugin, a module it needs or its
    server binary is missing, or the server does not start.
    """
    why = _missing(engine)
    if why is not None:
        skipped.append(f"{engine.title} subjects: {why}")
        return None
    launchers = {"postgres": _postgres, "etcd": _etcd, "sentinel": _sentinel, "cluster": _cluster}
    launcher = launchers[engine.family]
    try:
        url, version = stack.enter_context(launcher())
    except LookupError as exc:
        skipped.append(f"{engine.title} subjects: {exc} (Debian: apt-get install {engine.package})")
        return None
    except RuntimeError as exc:
        skipped.append(f"{engine.title} subjects: the server did not start: {exc}")
        return None
    url, _, primary = url.partition(" ")  # a Sentinel deployment: its primary's URL too
    found: dict[str, object] = {"url": url, "server": version, "private": True}
    if primary:
        found["primary"] = primary
    return found
