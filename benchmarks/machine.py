"""Describe where the numbers were taken: CPUs, load, kernel, Python, filesystem."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import subprocess
import sys
from importlib import metadata

__all__ = ["describe", "filesystem_type", "load_average", "lockkit_source", "versions"]

_DISTRIBUTIONS = (
    "lockkit",
    "filelock",
    "portalocker",
    "fasteners",
    "redis",
    "python-redis-lock",
    "lockkit-postgres",
    "psycopg",
    "lockkit-etcd",
    "attrs",
    "pluggy",
)


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (as ``uptime`` shows), where known."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path``, from ``/proc/self/mounts``."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:  # noqa: PTH123
            mounts = handle.read().splitlines()
    except OSError:
        return kind
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def versions() -> dict[str, str]:
    """Installed versions of lockkit and the peers (absent ones are left out)."""
    found = {}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def lockkit_source() -> str:
    """Which lockkit was measured: its git commit, and whether its sources were edited."""
    spec = importlib.util.find_spec("lockkit")
    if spec is None or spec.origin is None:
        return "not importable"
    package = os.path.dirname(spec.origin)  # noqa: PTH120
    try:
        head = subprocess.run(
            ["git", "-C", package, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", package, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return package
    edited = f", {len(changed)} files with uncommitted changes" if changed else ""
    return f"{package} at {head}{edited}"


def describe(directory: str) -> dict[str, object]:
    """Everything the report header shows about this machine and run."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "directory": directory,
        "filesystem": filesystem_type(directory),
        "versions": versions(),
        "lockkit_source": lockkit_source(),
    }
