"""Keep secrets out of everything lockkit prints, logs or raises."""

from __future__ import annotations

import re

__all__ = ["redact_text", "redact_url"]

# scheme://user:password@host -> scheme://user:***@host ; scheme://password@host too
# (Redis URLs often carry only a password: redis://:secret@host or redis://secret@host).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass|token|secret)=)[^&#\s]*")


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _ = userinfo.partition(":")
    masked = f"{user}:***" if sep else "***"
    return f"{match.group('scheme')}{masked}@"


def redact_url(url: str) -> str:
    """Return ``url`` with any password (in userinfo or query) replaced by ``***``."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Replace every URL password inside ``text`` by ``***``."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(_mask_userinfo, text))
