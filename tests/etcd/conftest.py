"""Fixtures of the etcd tests: the real servers of ``lockkit_etcd.testing``.

These tests need the ``lockkit-etcd`` plugin installed (``nox -s plugins`` installs it
from its wheel and runs them); elsewhere ``tests/conftest.py`` leaves them out.
"""

from __future__ import annotations

from lockkit_etcd.testing import etcd_server, etcd_tls_auth_server, etcd_url

__all__ = ["etcd_server", "etcd_tls_auth_server", "etcd_url"]
