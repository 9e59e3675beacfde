"""Count the backend spec: ``python -m tests.helpers.spec_size [SPEC.py ...]``.

Prints, for each ``spec.py`` given (default: lockkit's own), the public methods its
``Backend`` class defines, split into required (abstract) and optional, and those of
its ``Waiter`` where there is one. ``git show REV:lockkit/spec.py > old.py`` gives an
older spec to compare with.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

SPEC = Path(__file__).resolve().parents[2] / "lockkit" / "spec.py"


def _public(cls: type) -> list[str]:
    return [n for n, v in vars(cls).items() if not n.startswith("_") and callable(getattr(cls, n))]


def describe(path: Path, label: str) -> str:
    """One paragraph: the spec's methods in ``path``."""
    loaded = importlib.util.spec_from_file_location(label, path)
    assert loaded is not None
    assert loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules[label] = module
    loaded.loader.exec_module(module)
    backend = module.Backend
    methods = _public(backend)
    required = sorted(backend.__abstractmethods__)
    optional = sorted(set(methods) - set(required))
    text = (
        f"{path}: Backend defines {len(methods)} public methods: {len(required)} required "
        f"({', '.join(required)}), {len(optional)} optional ({', '.join(optional)})"
    )
    waiter = getattr(module, "Waiter", None)
    if waiter is not None:
        text += f"; Waiter: {', '.join(_public(waiter))}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Print the size of each spec given (default: lockkit's)."""
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)] or [SPEC]
    for number, path in enumerate(paths):
        print(describe(path, f"_spec_size_{number}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
