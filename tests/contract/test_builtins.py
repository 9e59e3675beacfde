"""Every built-in backend passes the same contract suite a plugin would run."""

from __future__ import annotations

import pytest

from lockkit.testing import BackendContract

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
