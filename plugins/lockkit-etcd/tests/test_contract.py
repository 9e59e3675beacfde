"""The etcd backend passes lockkit's backend contract suite against a real server."""

from __future__ import annotations

import uuid

import pytest

from lockkit.testing import BackendContract


class TestEtcd(BackendContract):
    processes = 8
    increments = 300

    @pytest.fixture
    def contract_backend(self, etcd_url: str) -> str:
        return etcd_url

    @pytest.fixture
    def contract_name(self) -> str:
        return f"contract-{uuid.uuid4().hex}"
