"""pytest fixtures with a real etcd server (``-p lockkit_etcd.testing``).

``etcd_url``
    One server for the whole session: ``etcd://127.0.0.1:PORT``.
``etcd_server``
    A `lockkit_etcd.server.EtcdServer` of one test's own, which the test may crash,
    restart or freeze.
``etcd_tls_auth_server``
    A server of one test's own serving HTTPS (a throw-away CA) with authentication
    enabled (user ``root``); its ``url`` carries the password and the CA file.

Without an ``etcd`` binary (Debian: ``apt-get install etcd-server``) the tests using
them skip, or fail when ``LOCKKIT_REQUIRE_REAL_FS=1`` (lockkit's CI), where a skip would
hide an untested backend. Never a fake server.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import pytest

from lockkit_etcd.server import EtcdServer, find_etcd, running

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["etcd_server", "etcd_tls_auth_server", "etcd_url"]


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("LOCKKIT_REQUIRE_REAL_FS") == "1":
        pytest.fail(f"{reason} (LOCKKIT_REQUIRE_REAL_FS=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _started(*, tls: bool = False) -> Iterator[EtcdServer]:
    binary = find_etcd()
    if binary is None:
        _skip_or_fail("no etcd binary: apt-get install etcd-server")
    with running(binary, tls=tls) as server:
        yield server


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    """An etcd server shared by the session."""
    for server in _started():
        yield server.url


@pytest.fixture
def etcd_server() -> Iterator[EtcdServer]:
    """An etcd server of this test's own, which it may crash, restart or freeze."""
    yield from _started()


@pytest.fixture
def etcd_tls_auth_server() -> Iterator[EtcdServer]:
    """An etcd server of this test's own with TLS and authentication (user ``root``)."""
    for server in _started(tls=True):
        server.enable_auth("s3cr3t:pw@etcd")
        yield server
