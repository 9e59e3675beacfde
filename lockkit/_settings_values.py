"""lockkit's settings as values: `Settings`, its `Route` entries, and the route globs.

Every lock reads these (`lockkit._settings` finds and caches the file, and
`lockkit._settings_parse` reads one); kept apart from the parser so that a process
without a settings file never loads the parser.
"""

from __future__ import annotations

import re

from lockkit._redact import redacted_repr
from lockkit._value import field, frozen

__all__ = ["KEYS", "Route", "Settings", "glob_regex"]

KEYS = ("backend", "url", "timeout", "ttl", "stale", "root", "routes")
"""The keys of lockkit's settings section."""


@frozen
class Route:
    """One entry of ``routes``: locks whose path matches ``pattern`` use ``backend``.

    Attributes:
        pattern: A glob relative to ``root``: ``*`` within one path segment, ``**`` across
            segments (``agents/*/sessions/**``).
        backend: A backend name or URL.
        line: Where the route is written, for messages.
    """

    pattern: str
    backend: str = field(repr=redacted_repr)
    line: int | None = None

    def matches(self, relative: str) -> bool:
        """Whether the ``/``-separated path ``relative`` matches the pattern."""
        return glob_regex(self.pattern).fullmatch(relative) is not None


@frozen
class Settings:
    """lockkit's validated settings from one file.

    Attributes:
        source: The file they came from.
        backend: Backend name, URL or ``"auto"``.
        url: Server URL for the backend (shown redacted everywhere).
        timeout: Default acquire timeout in seconds.
        ttl: Default TTL in seconds.
        stale: Seconds after which a lock held from another machine without an expiry
            counts as stale.
        root: Directory that lock paths are made relative to (for routes and keys).
        routes: Ordered routes; the first match wins.
        lines: Line of each key, for messages.
    """

    source: str
    backend: str | None = field(default=None, repr=redacted_repr)
    url: str | None = field(default=None, repr=redacted_repr)
    timeout: float | None = None
    ttl: float | None = None
    stale: float | None = None
    root: str | None = None
    routes: tuple[Route, ...] = ()
    lines: dict[str, int] = field(factory=dict, eq=False, repr=False)

    def where(self, key: str) -> str:
        """``file:line`` of ``key`` (or just the file)."""
        line = self.lines.get(key)
        return f"{self.source}:{line}" if line else self.source


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a path glob: ``**`` spans segments, ``*`` and ``?`` stay within one."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))
