"""The README's two set-up commands are the ones CI really runs."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    commands = _readme_commands()
    assert len(commands) >= 2
    first_two = commands[:2]
    # Nothing but the title and tagline before them.
    assert text.index(first_two[0]) < text.index("## ")
    assert "lockkit doctor" in first_two[0]
    assert "nox" in first_two[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
