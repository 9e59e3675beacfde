"""Reading one settings file: JSON5, lockkit's section, ``${VAR}`` and strict validation.

See `lockkit._settings` for where the file comes from. Loaded only when there is one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping

from lockkit._numbers import Kind, check, number, valid_range
from lockkit._redact import redact_url
from lockkit._settings_values import KEYS, Route, Settings
from lockkit.errors import SettingsError

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Recording", "parse_settings"]

Env = Mapping[str, str]

_VAR = re.compile(r"\$?\$\{([A-Z_][A-Z0-9_]*)\}")
_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*)$", re.DOTALL)


class Recording(Mapping[str, str]):
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
