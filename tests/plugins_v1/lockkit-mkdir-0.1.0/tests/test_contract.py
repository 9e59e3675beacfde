"""The mkdir backend passes lockkit's backend contract suite."""

from __future__ import annotations

from lockkit.testing import BackendContract


class TestMkdir(BackendContract):
    backend = "mkdir"
