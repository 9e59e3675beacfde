"""lockkit.testing needs pytest; without it, the import error says which extra to install."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_import_without_pytest_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest", None)  # what `import pytest` finds missing
    monkeypatch.delitem(sys.modules, "lockkit.testing", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'lockkit\[testing\]'"):
        importlib.import_module("lockkit.testing")


def test_the_testing_extra_declares_pytest() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("pytest>=") for req in extras["testing"]), extras["testing"]
