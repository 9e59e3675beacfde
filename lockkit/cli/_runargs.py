"""``lockkit run``'s plain forms, parsed without argparse.

``lockkit run`` is started anew by every cron job, git hook and Node call, so its start
is its cost. Importing argparse and building the five-command parser takes several
milliseconds, and parsing pulls in gettext, locale and shutil, all for a grammar of four
options. `parse_run` reads the forms scripts write (``run NAME [--backend SPEC]
[--timeout S | -n | --nonblock] [--ttl S] -- CMD...``, options as ``--opt VALUE`` or
``--opt=VALUE``) and gives up, returning ``None``, on anything else: ``--help``, an
abbreviated option, a repeated one, a value that starts with ``-``, a bad number, a
missing ``--``. argparse (`lockkit.cli._args`) then parses the same words, so help,
errors and the rarer spellings behave exactly as before; this module never reports an
error itself. ``tests/unit/test_cli_runargs.py`` checks that whatever it accepts,
argparse reads the same way.

This module imports nothing but the number rules the lock itself uses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`'s: importing typing costs more than this whole module
if TYPE_CHECKING:
    from lockkit._numbers import Kind

__all__ = ["RunArgs", "parse_run", "split_command"]

_VALUED = {"--backend": "backend", "--timeout": "timeout", "--ttl": "ttl"}
_FLAGS = {"-n": "nonblock", "--nonblock": "nonblock"}


class RunArgs:
    """The parsed ``run`` command line, with the attributes argparse's namespace has.

    Attributes:
        command: Always ``"run"``.
        version: Always ``False`` (``--version`` goes to argparse).
        name: The lock.
        backend: ``--backend``, or ``None``.
        timeout: ``--timeout`` in seconds, or ``None``.
        nonblock: Whether ``-n``/``--nonblock`` was given.
        ttl: ``--ttl`` in seconds, or ``None``.
        argv: The command and its arguments (everything after the first ``--``).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        backend: str | None,
        timeout: float | None,
        nonblock: bool,
        ttl: float | None,
    ) -> None:
        """Hold the values; `parse_run` has checked them."""
        self.command = "run"
        self.version = False
        self.name = name
        self.backend = backend
        self.timeout = timeout
        self.nonblock = nonblock
        self.ttl = ttl
        self.argv = argv


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``run ... -- CMD ...`` into lockkit's arguments and the command.

    Only for ``run``: its command may contain anything, options and ``--`` included,
    which argparse would try to parse. Other commands get ``argv`` untouched.
    """
    if "--" not in argv:
        return argv, None
    cut = argv.index("--")
    # The top-level parser has only flags without values, so the first word that is not
    # an option is the subcommand.
    subcommand = next((word for word in argv[:cut] if not word.startswith("-")), None)
    if subcommand != "run":
        return argv, None
    return argv[:cut], argv[cut + 1 :]


def parse_run(words: list[str], command: list[str] | None) -> RunArgs | None:  # noqa: C901, PLR0911 - one give-up per form argparse must judge
    """Parse ``run``'s plain forms; ``None`` for everything argparse must judge.

    Args:
        words: lockkit's arguments, as `split_command` returns them.
        command: The command after ``--``, or ``None`` when there was no ``--``.
    """
    if command is None or not words or words[0] != "run":
        return None  # another command, options before "run", or no "--" (an error)
    name: str | None = None
    values: dict[str, str] = {}
    flags: set[str] = set()
    rest = iter(words[1:])
    for word in rest:
        if not word.startswith("-"):
            if name is not None:
                return None  # a second positional: argparse's error
            name = word
            continue
        option, equals, value = word.partition("=")
        if option in _VALUED:
            if not equals:
                value = next(rest, "-")  # a missing value gives up below
            if value.startswith("-") or option in values:
                return None  # argparse decides: a negative number? an error?
            values[option] = value
        elif word in _FLAGS and word not in flags:
            flags.add(word)
        else:
            return None  # --help, an abbreviation, a repeat, a typo
    if name is None or (flags and "--timeout" in values):
        return None  # the missing NAME, or both ways to wait: argparse's errors
    try:
        timeout = _seconds("timeout", values.get("--timeout"))
        ttl = _seconds("ttl", values.get("--ttl"))
    except ValueError:
        return None  # argparse says what is wrong with the number
    return RunArgs(
        name,
        command,
        backend=values.get("--backend"),
        timeout=timeout,
        nonblock=bool(flags),
        ttl=ttl,
    )


def _seconds(kind: Kind, text: str | None) -> float | None:
    """The option's value in seconds (``None`` if absent), by the rule argparse uses.

    Raises:
        ValueError: Not a valid number of seconds for ``kind``.
    """
    if text is None:
        return None
    from lockkit._numbers import parse  # noqa: PLC0415 - only when a number was given

    return parse(kind, text, "")
