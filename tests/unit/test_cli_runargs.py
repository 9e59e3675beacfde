"""``lockkit run``'s argparse-free parser reads every command line as argparse does.

`lockkit.cli._runargs.parse_run` takes the plain forms and leaves the rest to argparse.
Each command line below goes through `lockkit.cli.main` twice, once as shipped and once
with the fast parser switched off, with the command handler replaced by a recorder: the
parsed values, the exit status and everything printed (help, usage errors) must be the
same. The handler never runs a lock, so this touches no disk.
"""

from __future__ import annotations

import contextlib
import io
import random
from typing import Any

import pytest

import lockkit.cli
from lockkit.cli import _runargs, main

# Forms the existing run tests and the docs use, the edges of argparse's grammar that
# the fast parser must leave alone (abbreviations, repeats, values that look like
# options, help), and errors whose wording must not change.
TABLE: list[list[str]] = [
    ["run", "a.lock", "--", "true"],
    ["run", "a.lock", "--"],
    ["run", "a.lock"],
    ["run", "a.lock", "true"],
    ["run", "--", "true"],
    ["run", "a.lock", "--backend", "excl", "--", "python", "-c", "x", "--timeout", "--", "-n"],
    ["run", "a.lock", "--backend=excl", "--", "true"],
    ["run", "--backend", "excl", "a.lock", "--", "true"],
    ["run", "a.lock", "--backend", "redis://:p@w@host:6379/0?ttl=3", "--", "true"],
    ["run", "a.lock", "--backend=redis://h/0?a=b=c", "--", "true"],
    ["run", "a.lock", "--backend", "", "--", "true"],
    ["run", "a.lock", "--backend=", "--", "true"],
    ["run", "a.lock", "--backend", "-x", "--", "true"],
    ["run", "a.lock", "--backend", "--", "true"],
    ["run", "a.lock", "--backend", "a", "--backend", "b", "--", "true"],
    ["run", "a.lock", "--back", "excl", "--", "true"],
    ["run", "a.lock", "--nonblock", "--", "true"],
    ["run", "a.lock", "-n", "--", "true"],
    ["run", "a.lock", "-n", "--nonblock", "--", "true"],
    ["run", "a.lock", "-n", "-n", "--", "true"],
    ["run", "a.lock", "-nn", "--", "true"],
    ["run", "a.lock", "--non", "--", "true"],
    ["run", "a.lock", "--nonblock=1", "--", "true"],
    ["run", "a.lock", "--timeout", "0", "--", "true"],
    ["run", "a.lock", "--timeout", "0.5", "--", "true"],
    ["run", "a.lock", "--timeout=2", "--", "true"],
    ["run", "a.lock", "--timeout", "-1", "--", "true"],
    ["run", "a.lock", "--timeout", "inf", "--", "true"],
    ["run", "a.lock", "--timeout", "nan", "--", "true"],
    ["run", "a.lock", "--timeout", "soon", "--", "true"],
    ["run", "a.lock", "--timeout", "1", "--timeout", "2", "--", "true"],
    ["run", "a.lock", "--time", "1", "--", "true"],
    ["run", "a.lock", "--timeout", "1", "-n", "--", "true"],
    ["run", "a.lock", "--nonblock", "--timeout", "1", "--", "true"],
    ["run", "a.lock", "--ttl", "3", "--", "true"],
    ["run", "a.lock", "--ttl=0.1", "--", "true"],
    ["run", "a.lock", "--ttl", "0", "--", "true"],
    ["run", "a.lock", "--ttl", "1e308", "--", "true"],
    ["run", "a.lock", "--tt", "3", "--", "true"],
    ["run", "a.lock", "--ttl", "--", "true"],
    ["run", "a.lock", "--timeout", "5", "--ttl", "9", "--backend", "excl", "--", "true"],
    ["run", "a.lock", "b.lock", "--", "true"],
    ["run", "", "--", "true"],
    ["run", "-5", "--", "true"],
    ["run", "-", "--", "true"],
    ["run", "a b", "--", "true"],
    ["run", "-a b", "--", "true"],
    ["run", "a=b", "--", "true"],
    ["run", "a.lock", "--help", "--", "true"],
    ["run", "-h", "--", "true"],
    ["run", "a.lock", "--bogus", "--", "true"],
    ["run", "a.lock", "-x", "--", "true"],
    ["--version", "run", "a.lock", "--", "true"],
    ["-h", "run", "a.lock", "--", "true"],
    ["status", "a.lock", "--", "true"],
    ["run"],
    [],
]

# Words for generated command lines: every option and kind of value the grammar knows.
VOCABULARY = [
    "a.lock", "b", "", "-5", "--backend", "--backend=excl", "--backend=", "excl",
    "--timeout", "--timeout=1", "0", "1.5", "-1", "nan", "soon", "--ttl", "--ttl=2",
    "0.01", "-n", "--nonblock", "--non", "--tim", "--help", "-x", "--", "true", "run",
]  # fmt: skip


def _generated(count: int) -> list[list[str]]:
    chooser = random.Random(19)  # noqa: S311 - fixed seed: a failure must be reproducible
    return [
        ["run", *chooser.choices(VOCABULARY, k=chooser.randint(0, 6)), "--", "true"]
        for _ in range(count)
    ]


def _outcome(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """What `main` does with ``argv``: the handler's values, the status, the output."""
    seen: list[dict[str, object]] = []

    def record(args: object) -> int:
        seen.append(dict(vars(args)))
        return 0

    monkeypatch.setattr(lockkit.cli, "_handler", lambda command: record)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: object = main(argv)
        except SystemExit as exc:
            status = ("exit", exc.code)
    return seen, status, out.getvalue(), err.getvalue()


def _both(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, bool]:
    fast = _outcome(argv, monkeypatch)
    took_fast = _runargs.parse_run(*_runargs.split_command(list(argv))) is not None
    with monkeypatch.context() as patch:
        patch.setattr(lockkit.cli, "parse_run", lambda words, command: None)
        slow = _outcome(argv, monkeypatch)
    return fast, slow, took_fast


@pytest.mark.parametrize("argv", TABLE, ids=lambda argv: " ".join(argv) or "(nothing)")
def test_the_fast_parser_reads_every_table_line_as_argparse(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow, _ = _both(argv, monkeypatch)
    assert fast == slow


def test_the_fast_parser_reads_generated_lines_as_argparse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_ones = 0
    for argv in _generated(400):
        fast, slow, took_fast = _both(argv, monkeypatch)
        assert fast == slow, argv
        fast_ones += took_fast
    assert fast_ones >= 40  # enough plain lines to mean something


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "a.lock", "--", "true"],
        ["run", "a.lock", "--backend", "excl", "--timeout", "0.5", "--ttl", "3", "--", "x"],
        ["run", "a.lock", "--backend=excl", "-n", "--", "x"],
        ["run", "--nonblock", "a.lock", "--", "x"],
    ],
)
def test_plain_forms_skip_argparse(argv: list[str]) -> None:
    """What scripts write is read without argparse (else the fast parser is useless)."""
    assert _runargs.parse_run(*_runargs.split_command(argv)) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "a.lock", "--help", "--", "x"],
        ["run", "a.lock", "--tim", "1", "--", "x"],
        ["run", "a.lock", "--timeout", "nan", "--", "x"],
        ["run", "a.lock", "-n", "--timeout", "1", "--", "x"],
        ["run", "a.lock", "x"],
    ],
)
def test_help_abbreviations_and_errors_go_to_argparse(argv: list[str]) -> None:
    assert _runargs.parse_run(*_runargs.split_command(argv)) is None
