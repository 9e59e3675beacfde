"""Fixtures of the PostgreSQL tests: the real servers of ``lockkit_postgres.testing``.

These tests need the ``lockkit-postgres`` plugin installed (``nox -s plugins`` installs
it from its wheel and runs them); elsewhere ``tests/conftest.py`` leaves them out.
"""

from __future__ import annotations

from lockkit_postgres.testing import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]
