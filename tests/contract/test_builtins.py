"""Every built-in backend passes the same contract suite a plugin would run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from lockkit.testing import BackendContract

if TYPE_CHECKING:
    from benchmarks.redissentinel import SentinelDeployment

pytestmark = [pytest.mark.fs, pytest.mark.multiprocess]


class TestExcl(BackendContract):
    backend = "excl"


class TestHardlink(BackendContract):
    backend = "hardlink"


class TestFilelock(BackendContract):
    backend = "filelock"


@pytest.mark.redis
class TestRedis(BackendContract):
    @pytest.fixture
    def contract_backend(self, redis_url: str) -> str:
        return redis_url


@pytest.mark.redis
class TestRedisSentinel(BackendContract):
    """The same contract through Sentinel, with every acquisition confirmed by a replica."""

    @pytest.fixture
    def contract_backend(self, sentinel_deployment: SentinelDeployment) -> str:
        return sentinel_deployment.url(min_replicas=1)
