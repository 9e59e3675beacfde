"""The cache files' format: a header, then marshal data made only of plain values."""

from __future__ import annotations

import marshal
from typing import TYPE_CHECKING

from lockkit import _cache

if TYPE_CHECKING:
    import pathlib

    import pytest


def _root(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(_cache.NO_CACHE_ENV, raising=False)
    return tmp_path / "lockkit"


def test_a_value_round_trips(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _root(tmp_path, monkeypatch)
    value: dict[str, object] = {"a": [1, 2.5, None, True], "b": {"c": ("d", "e")}}
    assert _cache.write("x.cache", value)
    assert _cache.read("x.cache") == value


def test_code_objects_and_other_types_are_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _root(tmp_path, monkeypatch)
    assert _cache.write("x.cache", {"ok": 1})
    planted = {"ok": 1, "code": compile("print('pwned')", "<x>", "exec")}
    (directory / "x.cache").write_bytes(_cache._MAGIC + marshal.dumps(planted))  # noqa: SLF001
    assert _cache.read("x.cache") is None
    (directory / "x.cache").write_bytes(_cache._MAGIC + marshal.dumps({1: "not a str key"}))  # noqa: SLF001
    assert _cache.read("x.cache") is None
    (directory / "x.cache").write_bytes(_cache._MAGIC + marshal.dumps(frozenset({1})))  # noqa: SLF001
    assert _cache.read("x.cache") is None


def test_a_file_without_the_header_or_truncated_is_ignored(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _root(tmp_path, monkeypatch)
    assert _cache.write("x.cache", {"key": "value" * 10})
    data = (directory / "x.cache").read_bytes()
    (directory / "x.cache").write_bytes(data[:-5])
    assert _cache.read("x.cache") is None
    (directory / "x.cache").write_bytes(marshal.dumps({"key": "value"}))
    assert _cache.read("x.cache") is None
    (directory / "x.cache").write_bytes(b'{"key": "value"}')
    assert _cache.read("x.cache") is None
