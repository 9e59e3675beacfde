"""pytest fixtures with a real PostgreSQL server (``-p lockkit_postgres.testing``).

``postgres_url``
    One server for the whole session: ``postgresql://postgres@127.0.0.1:PORT/postgres``.
``postgres_server``
    A `lockkit_postgres.server.PostgresServer` of one test's own, which the test may
    crash, restart or freeze.

Without PostgreSQL binaries (Debian: ``apt-get install postgresql``) the tests using them
skip, or fail when ``LOCKKIT_REQUIRE_REAL_FS=1`` (lockkit's CI), where a skip would hide
an untested backend. Never a fake server.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import pytest

from lockkit_postgres.server import PostgresServer, find_bindir, running

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["postgres_server", "postgres_url"]


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("LOCKKIT_REQUIRE_REAL_FS") == "1":
        pytest.fail(f"{reason} (LOCKKIT_REQUIRE_REAL_FS=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _started() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        _skip_or_fail(
            "no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql"
        )
    with running(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server shared by the session."""
    for server in _started():
        yield server.url


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may crash, restart or freeze."""
    yield from _started()
