"""Keep secrets out of everything lockkit prints, logs or raises.

A password may hold any character, unencoded: ``@``, ``:``, ``/``, ``?``, ``#``... The
userinfo of a URL therefore runs to the *last* ``@`` before the URL ends (whitespace,
or the ``,`` that starts the next URL of a Redlock list), not to the first ``/``.
Whatever cannot be told apart is hidden: a URL whose path or query holds an ``@``
loses the part before it, never shows a password.
"""

from __future__ import annotations

import functools
import re

__all__ = ["redact_text", "redact_url", "redacted_repr"]

# A URL starts at a scheme; in text it ends at whitespace or where the next URL of a
# comma-separated list starts. A string that *is* a URL ends only at the next URL.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
_SOURCES = {
    "url": rf"{_SCHEME}\S*?(?=,{_SCHEME}|\s|$)",
    "whole_url": rf"(?s){_SCHEME}.*?(?=,{_SCHEME}|$)",
    # What an authority without userinfo looks like: host, [IPv6] or nothing, then a port.
    "host_port": r"(?:[\w.-]*|\[[0-9A-Fa-f:.]*\])(?::\d*)?",
    # A secret in the query runs to the next ``&name=`` (a password may contain ``&``).
    # Any parameter whose name says pass, pwd, secret, token, auth or credential:
    # redis-py alone takes password, ssl_password and ssl_keyfile_password.
    "query_secret": (
        r"(?i)([?&][\w.-]*(?:pass|pwd|secret|token|auth|credential)[\w.-]*=)"
        r".*?(?=&[A-Za-z_][\w.-]*=|$)"
    ),
    "plain_user": r"[\w.+-]*",
}


@functools.cache
def _pattern(name: str) -> re.Pattern[str]:
    """The compiled pattern ``name``, compiled on first use.

    Every lock imports this module (its settings' reprs use it), but few processes ever
    print a URL; compiling all the patterns up front cost about a millisecond of each
    short-lived ``lockkit run``.
    """
    return re.compile(_SOURCES[name])


def _mask_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    # A secret in the query first: its value may hold an "@" (``?password=p@ss``), and
    # the userinfo below, taken to the last "@", would show the value's tail.
    rest = _pattern("query_secret").sub(r"\1***", rest)
    at = rest.rfind("@")
    if at >= 0:
        user, sep, _ = rest[:at].partition(":")
        # Keep a plain user name; anything else may be part of the secret.
        shown = f"{user}:***" if sep and _pattern("plain_user").fullmatch(user) else "***"
        rest = f"{shown}@{rest[at + 1 :]}"
    else:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        # Several hosts (a Sentinel or cluster URL's seeds) are separated by commas.
        if not all(_pattern("host_port").fullmatch(host) for host in authority.split(",")):
            # Not host:port (``redis://:pa`` of a password cut at a space): hide it.
            rest = "***" + rest[len(authority) :]
    return f"{scheme}://{rest}"


def redact_url(url: str) -> str:
    """Return ``url`` with any password (in userinfo or query) replaced by ``***``.

    Several comma-separated URLs (a Redlock) are each redacted. The whole string is
    taken as URLs, so a password holding a space is hidden too.
    """
    return _pattern("whole_url").sub(lambda match: _mask_url(match.group(0)), url)


def redact_text(text: str) -> str:
    """Replace every URL password inside ``text`` by ``***``."""
    return _pattern("url").sub(lambda match: _mask_url(match.group(0)), text)


def redacted_repr(value: str | None) -> str:
    """``repr(value)`` with any URL password masked by `redact_url`.

    The ``repr=`` of the attrs fields that may hold a URL (a backend spec, a settings
    value), so a password never reaches a log through a ``repr``.
    """
    return repr(redact_url(value)) if value else repr(value)
