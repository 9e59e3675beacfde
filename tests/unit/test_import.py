"""`import lockkit` stays cheap: no redis, no entry-point scan, no pluggy."""

from __future__ import annotations

import subprocess
import sys


def test_import_lockkit_loads_nothing_heavy() -> None:
    code = (
        "import sys, lockkit\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('redis', 'pluggy', 'importlib', 'filelock'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    loaded = set(out.split(",")) if out else set()
    assert not {m for m in loaded if m.startswith("redis")}
    assert not {m for m in loaded if m.startswith("pluggy")}
    assert "importlib.metadata" not in loaded
    assert not {m for m in loaded if m.startswith("filelock")}


def test_importtime_shows_no_redis_or_metadata_scan() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import lockkit"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "lockkit" in imported
    assert not [name for name in imported if name.startswith("redis")]
    assert "importlib.metadata" not in imported
