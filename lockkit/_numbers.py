"""One rule per numeric setting, checked the same way at every entry.

A number reaches lockkit as an argument (``Lock(ttl=...)``, ``acquire(timeout=...)``),
in a URL (``redis://host?ttl=30``), from the environment, from a settings file or from
the command line. Each entry calls `check` (for values) or `parse` (for text) with the
setting's kind, so ``ttl=0``, ``nan`` or ``1e308`` get the same answer everywhere: an
error naming the setting and its valid range. Entries turn that error into their own
kind (`lockkit.errors.SettingsError` with file and line, an argparse message).
"""

from __future__ import annotations

import _thread
import math
import re

TYPE_CHECKING = False  # not typing's: see lockkit._value
if TYPE_CHECKING:
    from typing import Literal

    Kind = Literal["timeout", "ttl", "stale", "poll"]
else:
    Kind = str  # the checker's Literal; any string at run time

__all__ = ["MAX_SECONDS", "MINIMUM", "Kind", "check", "number", "parse", "valid_range"]


MAX_SECONDS = 365 * 24 * 3600.0
"""The longest ttl, stale age or poll interval: one year. Longer is a mistake, and
would overflow date arithmetic (``ttl=1e12``) or a server's millisecond expiry."""

_FOREVER = _thread.TIMEOUT_MAX
"""Timeouts from here on wait forever: the thread primitives refuse longer waits."""

MINIMUM: dict[str, float] = {"ttl": 0.1, "stale": 1.0, "poll": 0.001}
"""The shortest useful value of each kind. A shorter ttl expires before its renewal (every
ttl / 3) can run on a busy machine, and spins the renewer; ``ttl=1e-6`` let two
processes hold one lock. A stale age under a second breaks live locks of other hosts."""

_RANGES: dict[str, str] = {
    "timeout": "a number of seconds (0 makes one attempt; a negative number or inf waits forever)",
    **{
        kind: f"a number of seconds >= {low:g} and <= {MAX_SECONDS:.0f} (one year)"
        for kind, low in MINIMUM.items()
    },
}


def valid_range(kind: Kind) -> str:
    """Describe the values ``kind`` accepts, as error messages do."""
    return _RANGES[kind]


def check(kind: Kind, value: object, setting: str | None = None) -> float:
    """Return ``value`` as seconds if it is valid for ``kind``.

    A timeout that waits forever comes back as ``math.inf``.

    Raises:
        TypeError: ``value`` is not a number (a string or a bool is not one).
        ValueError: It is out of range, or NaN; the message names ``setting`` (default:
            ``kind``; ``""`` leaves the name to the caller's prefix) and the range.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = f"{value!r} ({type(value).__name__})"
        raise TypeError(_problem(kind, shown, setting))
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError(_problem(kind, repr(value), setting))
    if kind == "timeout":
        return math.inf if seconds < 0 or seconds >= _FOREVER else seconds
    if not MINIMUM[kind] <= seconds <= MAX_SECONDS:
        raise ValueError(_problem(kind, repr(value), setting))
    return seconds


def _problem(kind: Kind, shown: str, setting: str | None) -> str:
    """``ttl must be <range>, got 0``; with ``setting=""``, ``expected <range>, got 0``."""
    if setting == "":
        return f"expected {_RANGES[kind]}, got {shown}"
    return f"{setting or kind} must be {_RANGES[kind]}, got {shown}"


def parse(kind: Kind, text: str, setting: str | None = None) -> float:
    """Read seconds for ``kind`` from text (a URL, an env var, a command line).

    Raises:
        ValueError: The text is not a number, or the number is not valid for ``kind``.
    """
    value = number(text)
    if value is None:
        raise ValueError(_problem(kind, repr(text), setting))
    return check(kind, value, setting)


_NUMBER = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.ASCII | re.IGNORECASE
)


def number(text: str) -> float | None:
    """A number written the plain ASCII way (``5``, ``2.5``, ``1e3``, ``inf``), or ``None``.

    Stricter than `float`, which also takes ``1_000`` and other scripts' digits:
    a value other programs (Node's ``Number``, a shell) read differently is refused.
    """
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return float(text)
