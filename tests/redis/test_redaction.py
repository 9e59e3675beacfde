"""No part of a URL's password appears anywhere lockkit prints, whatever its characters.

Table-driven: nasty passwords (unencoded ``@ : / # ?``, ``%40``, unicode, an empty or
a missing user) x every path that can show a URL: the redaction itself, errors (bad
option, unreachable server), repr of the backend and its servers, the selection, log
records, ``lockkit doctor``, ``lockkit status`` and ``lockkit backends``.
"""

from __future__ import annotations

import json
import logging
import pathlib
import socket

import pytest

import lockkit
from lockkit.backends.redis import RedisBackend
from lockkit.cli import main
from tests.unit.test_redact import CASES, _assert_hidden

pytestmark = pytest.mark.redis


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("secret", "form"), CASES)
def test_no_path_shows_the_password(
    secret: str,
    form: str,
    *,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
) -> None:
    pytest.importorskip("redis")
    caplog.set_level(logging.DEBUG)
    url = f"redis://{form.format(secret=secret)}@127.0.0.1:{_closed_port()}/0"
    quick = "socket_connect_timeout=0.2"
    texts: list[str] = []

    # Errors: a bad option, an unreachable server; repr of everything that holds a URL.
    with pytest.raises(lockkit.LockError) as bad:
        RedisBackend.from_url(f"{url}?ttl=soon")
    texts.append(str(bad.value))
    try:
        backend = RedisBackend.from_url(f"{url}?{quick}")
    except lockkit.LockError as exc:  # redis-py cannot parse it: the error must hide it
        texts.append(str(exc))
    else:
        texts += [repr(backend), *(repr(server) for server in backend._servers)]  # noqa: SLF001
    monkeypatch.setenv("LOCKKIT_BACKEND", f"{url}?{quick}")
    try:
        lock = lockkit.Lock("jobs/x", timeout=0)
        texts += [repr(lock.selection), lock.selection.describe(), repr(lock)]
        lock.acquire()
    except lockkit.LockError as exc:
        texts.append(str(exc))
    # The command line: doctor, status, backends (text and JSON).
    for argv in (
        ["doctor", str(tmp_path), "--processes", "1", "--increments", "1"],
        ["doctor", str(tmp_path), "--json", "--processes", "1", "--increments", "1"],
        ["status", "jobs/x"],
        ["status", "jobs/x", "--json"],
        ["backends"],
    ):
        main(argv)
        captured = capsys.readouterr()
        texts.append(captured.out + captured.err)
    texts.extend(record.getMessage() for record in caplog.records)
    text = "\n".join(texts)
    _assert_hidden(secret, text)
    assert json.dumps(secret)[1:-1] not in text
