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

from lockkit._settings_values import KEYS, Route, Settings
from lockkit.errors import SettingsError

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from collections.abc import Mapping

    Env = Mapping[str, str]

__all__ = [
    "KEYS",
    "Route",
    "Settings",
    "load_settings",
    "openclaw_state_dir",
    "parse_settings",
    "settings_file",
]


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
    from lockkit._settings_parse import Recording  # noqa: PLC0415 - a file exists

    recording = Recording(env)
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
    """Parse JSON5 ``text`` and validate lockkit's section: `lockkit._settings_parse`."""
    # Imported with the first settings file: a process without one never parses.
    from lockkit import _settings_parse  # noqa: PLC0415

    return _settings_parse.parse_settings(text, source, env, bare=bare)
