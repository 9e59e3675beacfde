"""The lock-file payload: one JSON object, and the content rule for lock files.

The payload is a superset of the shapes OpenClaw writes (``pid``, ``createdAt``
ISO-8601, ``startTime``/``starttime``, ``startedAt`` epoch ms, ``token``) plus
lockkit's ``host``, ``bootId``, ``pidNs``, ``expires``, ``backend`` and ``version``.
Every one of those shapes is read back, so Python and Node processes that share a lock
path recognise each other.
"""

from __future__ import annotations

import datetime as dt

from lockkit._info import MAX_PID, Owner
from lockkit._value import frozen
from lockkit.errors import InvalidLockName

PAYLOAD_VERSION = 1
"""Payload format version written into every lock file."""
MAX_PAYLOAD = 64 * 1024
"""A lock file larger than this is not a lockkit payload; it is read no further."""


def _iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as OpenClaw writes ``createdAt``."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return f"{_second(moment)[1]}.{moment.microsecond // 1000:03d}Z"


def _second(moment: dt.datetime) -> tuple[float, str, str]:
    """``moment``'s second (UTC): epoch seconds, ``YYYY-MM-DDTHH:MM:SS``, epoch seconds text.

    isoformat() costs more than the rest of a payload; the part down to the second is
    the same for every lock taken within that second, so it is formatted once. The
    cache is one tuple, replaced whole, so a thread never pairs one second's key with
    another second's text.
    """
    second = moment.timestamp() // 1
    cached = _SECOND[0]
    if cached[0] == second:
        return cached
    fresh = (second, moment.replace(microsecond=0, tzinfo=None).isoformat(), str(int(second)))
    _SECOND[0] = fresh
    return fresh


# The last second formatted by _second; NaN equals no second.
_SECOND: list[tuple[float, str, str]] = [(float("nan"), "", "")]


def encode_payload(owner: Owner, backend: str, expires: dt.datetime | None) -> bytes:
    """Serialise an owner into the lock-file payload (readable by OpenClaw too).

    Every acquisition writes one, so the fields that stay the same for a process
    (pid, host, boot id...) are serialised once and cached; only the time stamps, the
    token and the expiry are formatted per call. The result equals
    ``json.dumps`` of the full object with compact separators.
    """
    created = owner.created or dt.datetime.now(dt.UTC)
    if created.tzinfo is not dt.UTC:
        created = created.astimezone(dt.UTC)
    key = (owner.pid, owner.host, owner.boot_id, owner.pid_ns, owner.start_time, backend)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = _static_prefix(owner, backend)
        if len(_PREFIXES) >= _MAX_PREFIXES:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    token = owner.token
    # bytes.isalnum is a table lookup per byte; str.isalnum consults Unicode data.
    if not (token.isascii() and token.encode().isalnum()):
        token = _json_string(token)[1:-1]  # a foreign token: escaped as json.dumps does
    expiry = f'"{_iso(expires)}"' if expires is not None else "null"
    second, iso, epoch = _second(created)
    # Formatted per call: a table of all thousand would cost a fresh process more.
    millis = f"{created.microsecond // 1000:03d}"
    # startedAt is createdAt in epoch milliseconds: the second's digits, then the
    # millisecond's (a time before 1970 has no such shortcut).
    started = f"{epoch}{millis}" if second >= 0 else str(int(created.timestamp() * 1000))
    return (
        f'{prefix}"createdAt":"{iso}.{millis}Z","startedAt":{started},"token":"{token}",'
        f'"expires":{expiry},"version":{PAYLOAD_VERSION}}}'
    ).encode()


# Serialised per-process fields, keyed by owner identity and backend (a handful per
# process: one per backend, plus one per fork).
_PREFIXES: dict[tuple[object, ...], str] = {}
_MAX_PREFIXES = 64


def _static_prefix(owner: Owner, backend: str) -> str:
    """The per-process fields, as ``json.dumps`` writes them, without its closing brace.

    Written by hand: this runs in every process's first lock, and importing json would
    cost that lock more than the rest of its payload.
    """
    start = "null" if owner.start_time is None else str(int(owner.start_time))
    pid_ns = "null" if owner.pid_ns is None else str(int(owner.pid_ns))
    return (
        f'{{"pid":{int(owner.pid)},"host":{_json_string(owner.host)},'
        f'"bootId":{_json_string(owner.boot_id)},"pidNs":{pid_ns},'
        f'"startTime":{start},"starttime":{start},"backend":{_json_string(backend)},'
    )


def _json_string(text: str) -> str:
    """``text`` as a JSON string literal, exactly as ``json.dumps`` writes it."""
    # Printable ASCII without quote or backslash needs no escape (host names, boot
    # ids, backend names); anything else goes through json itself.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    import json  # noqa: PLC0415 - only for unusual text

    return json.dumps(text)


def _parse_moment(value: object) -> dt.datetime | None:
    """Read a time written as ISO-8601 text or as epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@frozen
class Payload:
    """A decoded lock file.

    Attributes:
        owner: The holder, or ``None`` when the file could not be read as a payload.
        expires: When the lock expires (UTC), if it says.
        backend: The backend that wrote it, if it says (OpenClaw's payloads do not).
        problem: Why ``owner`` is ``None``: empty, truncated, not JSON, no pid...
    """

    owner: Owner | None
    expires: dt.datetime | None = None
    backend: str = ""
    problem: str = ""


def decode_payload(data: bytes) -> Payload:
    """Parse a lock-file payload in any supported shape; never raises for bad data."""
    if not data.strip():
        return Payload(None, problem="empty lock file")
    if len(data) > MAX_PAYLOAD:
        return Payload(None, problem=f"lock file larger than {MAX_PAYLOAD} bytes")
    try:
        import json  # noqa: PLC0415 - reading a holder's record is not a first lock's path

        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Payload(None, problem="lock file is not valid JSON (truncated or foreign)")
    if not isinstance(obj, dict):
        return Payload(None, problem="lock file JSON is not an object")
    pid = _optional_int(obj.get("pid"))
    if pid is None or not 0 < pid <= MAX_PID:
        # A pid no process can have (os.kill would overflow on it): malformed, and the
        # malformed-payload rule decides, like for any unreadable lock file.
        return Payload(None, problem="lock file has no valid pid")
    created = _parse_moment(obj.get("createdAt")) or _parse_moment(obj.get("startedAt"))
    start_time = _optional_int(obj.get("startTime"))
    if start_time is None:
        start_time = _optional_int(obj.get("starttime"))
    owner = Owner(
        pid=pid,
        host=str(obj.get("host") or ""),
        boot_id=str(obj.get("bootId") or ""),
        pid_ns=_optional_int(obj.get("pidNs")),
        start_time=start_time,
        token=str(obj.get("token") or ""),
        created=created,
    )
    backend = obj.get("backend")
    return Payload(
        owner,
        expires=_parse_moment(obj.get("expires")),
        backend=backend if isinstance(backend, str) else "",
    )


_BLANK = b" \t\r\n\0"


def looks_like_lock(data: bytes) -> bool:
    """Whether ``data`` can be a lock file's content: the content rule.

    A lock file is empty (a write in progress, or a crash before it; NUL bytes and
    blanks count as empty: what some filesystems leave of a file written just before a
    power cut), or one JSON object: its first non-blank byte is ``{``, and it is no
    larger than `MAX_PAYLOAD`. Only such a file is ever broken as stale or malformed, or
    written by ``filelock``: anything else at a lock path is someone's data, put there
    by mistake or by an attacker (through a symlinked directory).
    """
    if len(data) > MAX_PAYLOAD:
        return False
    if data[:1] == b"{":
        return True  # every lock file lockkit writes: no copy
    head = data.lstrip(_BLANK)
    return not head or head[:1] == b"{"


def check_content(path: str, data: bytes) -> None:
    """Refuse a file at a lock path whose content is not a lock's (`looks_like_lock`).

    Raises:
        InvalidLockName: Naming the path; nothing was removed or written.
    """
    if not looks_like_lock(data):
        why = (
            f"it is larger than {MAX_PAYLOAD} bytes"
            if len(data) > MAX_PAYLOAD
            else "it does not hold a JSON object"
        )
        raise InvalidLockName(
            f"{path!r} is not a lock file ({why}); lockkit never removes or overwrites it: "
            "remove it or choose another path"
        )
