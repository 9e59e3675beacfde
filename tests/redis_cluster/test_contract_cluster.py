"""The backend contract suite against a real Redis Cluster (3 masters, 3 replicas)."""

from __future__ import annotations

import pytest

from lockkit.testing import BackendContract

pytestmark = [pytest.mark.redis, pytest.mark.fs, pytest.mark.multiprocess]


class TestRedisCluster(BackendContract):
    @pytest.fixture
    def contract_backend(self, redis_cluster_url: str) -> str:
        return redis_cluster_url
