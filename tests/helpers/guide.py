"""The complete plugin printed in docs/plugins/writing-a-backend.md, extracted and installed.

The guide's code is the test's code: its three tabs (the module, ``pyproject.toml`` and
the contract test) are read from the page, and the module is installed as a real
distribution (a ``.dist-info`` with the guide's entry points) in a directory that goes
on ``sys.path`` and ``PYTHONPATH``.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import pathlib

GUIDE = "docs/plugins/writing-a-backend.md"
_TAB = re.compile(
    r'^=== "(?P<title>[^"]+)"\n\n    ```\w*\n(?P<body>.*?)\n    ```$', re.MULTILINE | re.DOTALL
)


@attrs.frozen
class GuidePlugin:
    """The guide's plugin, installed under ``site``.

    Attributes:
        site: The directory to put on ``sys.path``/``PYTHONPATH``.
        module: The plugin's module name.
        test: Path of the guide's contract test file.
        distribution: ``"name version"`` from the guide's ``pyproject.toml``.
    """

    site: pathlib.Path
    module: str
    test: pathlib.Path
    distribution: str


def tabs(root: pathlib.Path) -> dict[str, str]:
    """The guide's tabbed code blocks, by tab title, dedented."""
    text = (root / GUIDE).read_text(encoding="utf-8")
    return {m["title"]: textwrap.dedent(m["body"]) + "\n" for m in _TAB.finditer(text)}


_BLOCK = re.compile(r"^```python\n(?P<body>.*?)\n```$", re.MULTILINE | re.DOTALL)


def python_blocks(root: pathlib.Path) -> list[str]:
    """The guide's untabbed ``python`` code blocks, in page order."""
    text = (root / GUIDE).read_text(encoding="utf-8")
    return [m["body"] + "\n" for m in _BLOCK.finditer(text)]


def install_guide_plugin(root: pathlib.Path, dest: pathlib.Path) -> GuidePlugin:
    """Extract the guide's plugin from ``root``'s docs and install it under ``dest``."""
    blocks = tabs(root)
    project = tomllib.loads(blocks["pyproject.toml"])["project"]
    [module_file] = [title for title in blocks if title.endswith(".py") and "/" not in title]
    module = module_file.removesuffix(".py")
    site = dest / "site"
    site.mkdir(parents=True)
    (site / module_file).write_text(blocks[module_file], encoding="utf-8")
    name, version = project["name"], project["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    entry_points = "".join(
        f"{ep} = {target}\n" for ep, target in project["entry-points"]["lockkit"].items()
    )
    (info / "entry_points.txt").write_text(f"[lockkit]\n{entry_points}", encoding="utf-8")
    [test_title] = [title for title in blocks if title.startswith("tests/")]
    test = dest / "project" / test_title
    test.parent.mkdir(parents=True)
    test.write_text(blocks[test_title], encoding="utf-8")
    return GuidePlugin(site, module, test, f"{name} {version}")
