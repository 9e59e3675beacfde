"""lockkit's settings: where they come from, how they are parsed, and strict validation.

Sources, first found wins:

1. ``LOCKKIT_SETTINGS``: a settings file (must exist). Either an OpenClaw-shaped file,
   or a bare object holding lockkit's keys.
2. OpenClaw's settings: ``$OPENCLAW_CONFIG_PATH``, else
   ``$OPENCLAW_STATE_DIR/openclaw.json``, else ``<home>/.openclaw/openclaw.json`` where
   home is ``$OPENCLAW_HOME``, else ``$HOME``.

The files are JSON5 (comments, trailing commas, unquoted keys). OpenClaw rejects unknown
top-level keys, so lockkit's section lives in its free-form plugin slot,
``plugins.entries.lockkit.config``. Inside that section (and only there) ``${VAR}`` is
replaced from the environment, as OpenClaw does: upper-case names only, ``$${VAR}``
for a literal ``${VAR}``; a missing or empty variable is an error naming it.

Every problem is a `SettingsError` naming the file, the line and the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping

from lockkit._numbers import Kind, check, number, valid_range
from lockkit._redact import redact_url, redacted_repr
from lockkit._value import field, frozen
from lockkit.errors import SettingsError

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Any

__all__ = ["KEYS", "Route", "Settings", "load_settings", "openclaw_state_dir", "settings_file"]

KEYS = ("backend", "url", "timeout", "ttl", "stale", "root", "routes")
"""The keys of lockkit's settings section."""

Env = Mapping[str, str]

_VAR = re.compile(r"\$?\$\{([A-Z_][A-Z0-9_]*)\}")
_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*)$", re.DOTALL)


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
        return _glob_regex(self.pattern).fullmatch(relative) is not None


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


def openclaw_state_dir(env: Env | None = None) -> str:
    """OpenClaw's state directory: ``$OPENCLAW_STATE_DIR`` or ``<home>/.openclaw``."""
    env = os.environ if env is None else env
    if env.get("OPENCLAW_STATE_DIR"):
        return os.path.expanduser(env["OPENCLAW_STATE_DIR"])  # noqa: PTH111
    home = env.get("OPENCLAW_HOME") or env.get("HOME") or os.path.expanduser("~")  # noqa: PTH111
    return os.path.join(home, ".openclaw")  # noqa: PTH118


def settings_file(env: Env | None = None) -> tuple[str, str] | None:
    """The settings file to read and the variable that named it, or ``None``.

    Raises:
        SettingsError: ``LOCKKIT_SETTINGS`` names a file that does not exist.
    """
    env = os.environ if env is None else env
    explicit = env.get("LOCKKIT_SETTINGS")
    if explicit:
        path = os.path.expanduser(explicit)  # noqa: PTH111
        if not os.path.isfile(path):  # noqa: PTH113
            raise SettingsError(
                "the settings file named by LOCKKIT_SETTINGS does not exist; create it or "
                "unset the variable",
                source=path,
            )
        return path, "LOCKKIT_SETTINGS"
    if env.get("OPENCLAW_CONFIG_PATH"):
        path = os.path.expanduser(env["OPENCLAW_CONFIG_PATH"])  # noqa: PTH111
        origin = "OPENCLAW_CONFIG_PATH"
    else:
        path = os.path.join(openclaw_state_dir(env), "openclaw.json")  # noqa: PTH118
        origin = "OpenClaw state dir"
    return (path, origin) if os.path.isfile(path) else None  # noqa: PTH113


class _Recording(Mapping[str, str]):
    """An environment that remembers which variables were looked up, and their values."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.seen: dict[str, str | None] = {}

    def __getitem__(self, name: str) -> str:
        value = self.env.get(name)
        self.seen[name] = value
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        raise TypeError("settings must look variables up by name")  # keeps `seen` complete

    def __len__(self) -> int:
        return len(self.env)


# The one live version of the settings: (path, mtime_ns, size), the variables parsing
# consulted with their values, and the result.
_CACHE: list[tuple[tuple[str, int, int], dict[str, str | None], Settings | None]] = []


def load_settings(env: Env | None = None) -> Settings | None:
    """Find, read and validate lockkit's settings; ``None`` when there are none.

    Cached per file version (path, mtime, size) and the values of the environment
    variables the file consulted (``${VAR}``, OpenClaw's overrides), so constructing
    many locks reads the file once and checks a handful of variables.
    """
    env = os.environ if env is None else env
    found = settings_file(env)
    if found is None:
        return None
    path, origin = found
    try:
        st = os.stat(path)  # noqa: PTH116
        version = (path, st.st_mtime_ns, st.st_size)
        if _CACHE:
            cached_version, consulted, settings = _CACHE[0]
            if cached_version == version and all(env.get(k) == v for k, v in consulted.items()):
                return settings
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            text = handle.read()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file: {exc.strerror}", source=path) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            source=path,
            line=exc.object[: exc.start].count(b"\n") + 1,
        ) from None
    recording = _Recording(env)
    settings = parse_settings(text, path, recording, bare=origin == "LOCKKIT_SETTINGS")
    _CACHE[:] = [(version, recording.seen, settings)]
    return settings


def parse_settings(
    text: str,
    source: str,
    env: Env | None = None,
    *,
    bare: bool = False,
) -> Settings | None:
    """Parse JSON5 ``text`` and validate lockkit's section.

    Args:
        text: The file's content.
        source: The file name, for messages.
        env: Environment for ``${VAR}`` and OpenClaw's overrides.
        bare: Allow a file whose top level *is* lockkit's section (``LOCKKIT_SETTINGS``).
    """
    import json5  # noqa: PLC0415 - only costs when a settings file exists

    env = os.environ if env is None else env
    try:
        data = json5.loads(text)
    except RecursionError:
        raise SettingsError("nested too deeply to read", source=source) from None
    except ValueError as exc:
        match = _JSON5_ERROR.match(str(exc))
        line = int(match.group(1)) if match else None
        detail = match.group(2) if match else str(exc)
        raise SettingsError(f"not valid JSON5: {detail}", source=source, line=line) from None
    if not isinstance(data, dict):
        raise SettingsError("the top level must be an object {...}", source=source, line=1)
    locator = _Locator(text)
    section, anchor = _lockkit_section(data, locator, source, bare=bare)
    defaults = _openclaw_defaults(data, env, source, locator)
    if section is None:
        if not defaults:
            return None
        return Settings(source=source, **defaults)
    return _Validator(section, source, env, locator, anchor).settings(defaults)


def _lockkit_section(
    data: dict[str, Any], locator: _Locator, source: str, *, bare: bool
) -> tuple[dict[str, Any] | None, int]:
    if bare and "plugins" not in data:
        return data, 0
    entry = data.get("plugins", {})
    for step in ("entries", "lockkit"):
        if not isinstance(entry, dict):
            return None, 0
        entry = entry.get(step, {})
    if not isinstance(entry, dict) or entry.get("enabled") is False:
        return None, 0
    anchor = locator.offset_of("lockkit", 0)
    config = entry.get("config")
    if config is None:
        return None, anchor
    if not isinstance(config, dict):
        raise SettingsError(
            "must be an object {...}",
            source=source,
            line=locator.line_of("config", anchor),
            key="plugins.entries.lockkit.config",
        )
    return config, anchor


def _openclaw_defaults(
    data: dict[str, Any],
    env: Env,
    source: str,
    locator: _Locator,
) -> dict[str, Any]:
    """Timeout and stale defaults from OpenClaw's ``session.writeLock`` and its env vars."""
    found: dict[str, Any] = {}
    session = data.get("session")
    write_lock = session.get("writeLock") if isinstance(session, dict) else None
    names: dict[Kind, str] = {"timeout": "acquireTimeoutMs", "stale": "staleMs"}
    overrides = {
        "timeout": "OPENCLAW_SESSION_WRITE_LOCK_ACQUIRE_TIMEOUT_MS",
        "stale": "OPENCLAW_SESSION_WRITE_LOCK_STALE_MS",
    }
    for ours, theirs in names.items():
        variable = overrides[ours]
        if env.get(variable):
            found[ours] = _milliseconds(ours, env[variable], variable, source=variable)
        elif isinstance(write_lock, dict) and theirs in write_lock:
            found[ours] = _milliseconds(
                ours,
                write_lock[theirs],
                f"session.writeLock.{theirs}",
                source=source,
                line=locator.line_of(theirs, 0),
            )
    return found


_SECONDS: tuple[Kind, ...] = ("timeout", "ttl", "stale")


def _milliseconds(
    kind: Kind, value: object, setting: str, *, source: str, line: int | None = None
) -> float:
    """OpenClaw's milliseconds (a number in its file, text in its env vars) as seconds."""
    try:
        # Text only from an env var; in the file a number must be a number.
        amount = number(value) if isinstance(value, str) and line is None else value
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            amount = None  # refused below, with the message for a non-number
        return check(kind, amount / 1000 if amount is not None else None, setting)
    except (TypeError, ValueError, OverflowError):
        raise SettingsError(
            f"expected milliseconds ({kind}: {valid_range(kind)}, times 1000), got {value!r}",
            source=source,
            line=line,
            key=setting if line else "",
        ) from None


class _Validator:
    """Checks lockkit's section key by key; every error names file, line and key."""

    def __init__(
        self, section: dict[str, Any], source: str, env: Env, locator: _Locator, anchor: int
    ) -> None:
        self.section = section
        self.source = source
        self.env = env
        self.locator = locator
        self.anchor = anchor
        self.prefix = "plugins.entries.lockkit.config." if anchor else ""
        self.lines = {key: line for key in section if (line := locator.line_of(key, anchor))}

    def fail(self, key: str, message: str, line: int | None = None) -> SettingsError:
        return SettingsError(
            message, source=self.source, line=line or self.lines.get(key), key=self.prefix + key
        )

    def settings(self, defaults: dict[str, Any]) -> Settings:
        unknown = [key for key in self.section if key not in KEYS]
        if unknown:
            raise self.fail(unknown[0], f"unknown key; valid keys are: {', '.join(KEYS)}")
        values: dict[str, Any] = dict(defaults)
        for key in ("backend", "url", "root"):
            if key in self.section:
                values[key] = self.string(key, self.section[key])
        for key in _SECONDS:
            if key in self.section:
                values[key] = self.seconds(key, self.section[key])
        if "root" in values:
            # A relative root is relative to the settings file, not to wherever the
            # program happens to run.
            root = os.path.expanduser(values["root"])  # noqa: PTH111
            if not os.path.isabs(root):  # noqa: PTH117
                base = os.path.dirname(os.path.abspath(self.source))  # noqa: PTH100, PTH120
                root = os.path.join(base, root)  # noqa: PTH118
            values["root"] = os.path.normpath(root)
        if "routes" in self.section:
            values["routes"] = self.routes(self.section["routes"])
        return Settings(source=self.source, lines=self.lines, **values)

    def string(self, key: str, value: object, line: int | None = None) -> str:
        if not isinstance(value, str) or not value:
            shown = redact_url(repr(value))
            raise self.fail(key, f"expected a non-empty string, got {shown}", line)
        return self.substitute(key, value, line)

    def seconds(self, key: Kind, value: object) -> float:
        try:
            return check(key, value, "")
        except (TypeError, ValueError) as exc:
            raise self.fail(key, str(exc)) from None

    def routes(self, routes: object) -> tuple[Route, ...]:
        if not isinstance(routes, dict):
            raise self.fail(
                "routes", 'expected an object of glob -> backend, e.g. {"agents/**": "excl"}'
            )
        start = self.locator.offset_of("routes", self.anchor)
        parsed = []
        for pattern, target in routes.items():
            line = self.locator.line_of(pattern, start)
            import json  # noqa: PLC0415 - only when a settings file has routes

            value = self.string(f"routes[{json.dumps(pattern)}]", target, line)
            parsed.append(Route(pattern.strip("/"), value, line))
        return tuple(parsed)

    def substitute(self, key: str, value: str, line: int | None) -> str:
        def replace(match: re.Match[str]) -> str:
            text = match.group(0)
            if text.startswith("$$"):
                return text[1:]  # $${VAR} is a literal ${VAR}
            name = match.group(1)
            found = self.env.get(name)
            if not found:
                message = f"refers to ${{{name}}}, but the environment variable {name} is not set"
                raise self.fail(key, message, line)
            return found

        return _VAR.sub(replace, value)


class _Locator:
    """Find the line of a key in JSON5 text: best effort, the first match after an anchor."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _search(self, key: str, start: int) -> re.Match[str] | None:
        quoted = re.escape(key)
        pattern = rf"""(?:"{quoted}"|'{quoted}'|(?<![\w$]){quoted}(?![\w$]))\s*:"""
        return re.compile(pattern).search(self.text, start)

    def offset_of(self, key: str, start: int) -> int:
        match = self._search(key, start)
        return match.start() if match else start

    def line_of(self, key: str, start: int) -> int | None:
        match = self._search(key, start)
        return self.text.count("\n", 0, match.start()) + 1 if match else None


def _glob_regex(pattern: str) -> re.Pattern[str]:
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
