"""`lockkit._redact`: no fragment of a URL's password survives, whatever its characters.

The same table drives tests/redis/test_redaction.py, which checks every path that
prints a URL (errors, repr, logs, the CLI).
"""

from __future__ import annotations

import re

import pytest

from lockkit._redact import redact_text, redact_url

# Each fragment between special characters is long enough to be found if it leaks.
SECRETS = [
    "Hunter@Xyzzy",
    "Plugh/Frobz@Quuxy",
    "Zorkm:Glorf@Blarg",
    "Wibbl%40Wobbl",
    "Fjord#Snark@Gleep",
    "Quest?Ionsq@Marks",
    "Ünïcø∂é@Pässwörd",
    "Trail@",
    "@Leadi",
]
# How the secret sits in the userinfo: password only, user and password, user only.
FORMS = [":{secret}", "admin:{secret}", "{secret}"]


def _fragments(secret: str) -> list[str]:
    parts = re.split(r"[@:/#?%]", secret)
    return [part for part in parts if len(part) >= 4]


def _assert_hidden(secret: str, text: str) -> None:
    for fragment in _fragments(secret):
        assert fragment not in text, f"{fragment!r} of the password shown in:\n{text}"


# "user:pass@" is the grammar: a user-only form whose secret has a ":" names a user.
CASES = [
    (secret, form)
    for secret in SECRETS
    for form in FORMS
    if not (form == "{secret}" and ":" in secret)
]


@pytest.mark.parametrize(("secret", "form"), CASES)
def test_redaction_hides_every_fragment(secret: str, form: str) -> None:
    userinfo = form.format(secret=secret)
    url = f"redis://{userinfo}@cache.internal:6379/0"
    shown = redact_url(url)
    _assert_hidden(secret, shown)
    assert shown.endswith("@cache.internal:6379/0")
    if form.startswith("admin"):
        assert shown.startswith("redis://admin:***@")
    redlock = redact_url(f"{url},{url.replace('cache', 'other')}")
    _assert_hidden(secret, redlock)
    assert "@other.internal" in redlock
    _assert_hidden(secret, redact_text(f"cannot reach '{url}': refused; also {url}."))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
        ("redis://:pw@h/0?password=a&b&db=2", "redis://:***@h/0?password=***&db=2"),
        ("redis://:pa ss@h/0", "redis://:***@h/0"),
        ("redis://:@h/0", "redis://:***@h/0"),
        (
            "rediss://h/0?ssl_password=S3cr&ssl_keyfile_password=K3y&requirepass=R&db=1",
            "rediss://h/0?ssl_password=***&ssl_keyfile_password=***&requirepass=***&db=1",
        ),
        ("etcd://h:2379?auth_token=T0k&prefix=x", "etcd://h:2379?auth_token=***&prefix=x"),
    ],
)
def test_redaction_keeps_what_is_not_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown
