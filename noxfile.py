"""Development tasks: ``nox`` runs lint, typecheck, tests and plugins.

The Python versions come from the classifiers in ``pyproject.toml``, the one list.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYTHONS = [
    classifier.rsplit(" ", 1)[1]
    for classifier in PYPROJECT["project"]["classifiers"]
    if classifier.startswith("Programming Language :: Python :: 3.")
]

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "redis_oldest", "plugins"]


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff's linter and formatter check."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over lockkit and the tests."""
    session.install("-e", ".[bench]", "--group", "typecheck")
    session.run("mypy")


# The slow suites (real filesystems, many processes, crash and race tests) prove
# properties of the OS primitives, not of the interpreter: they run once, on the oldest
# supported Python with every extra. Every other combination runs the rest.
FULL_SUITE = (PYTHONS[0], "redis")
QUICK = {
    "": ["-m", "not slow and not realfs and not redis"],
    "redis": ["-m", "not slow and not realfs"],
}


@nox.session(python=PYTHONS)
@nox.parametrize("extras", ["", "redis"], ids=["core", "redis"])
def tests(session: nox.Session, extras: str) -> None:
    """Run the test suite, with and without the redis extra."""
    if not extras and session.python != PYTHONS[0] and not session.posargs:
        # Without the extra, what is tested is that nothing needs redis-py: not a matter
        # of the Python version. The redis variant runs every other quick test here, so
        # CI stays well inside its time budget.
        session.skip("the core variant runs on the oldest Python; the redis one covers this one")
    target = f".[{extras}]" if extras else "."
    session.install(target, "--group", "tests")
    full = (session.python, extras) == FULL_SUITE
    session.run("pytest", *(session.posargs or ([] if full else QUICK[extras])))


@nox.session(python=PYTHONS[0])
def redis_oldest(session: nox.Session) -> None:
    """The Redis tests against the oldest redis-py the ``redis`` extra allows.

    lockkit drives redis-py's connections directly (``lockkit.backends._redis_conn``),
    whose API moved between releases; the floor is read from pyproject.toml, so this
    session follows it.
    """
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    floor = next(req for req in extras["redis"] if req.startswith("redis>="))
    session.install(".[redis]", "--group", "tests")
    session.install(floor.replace(">=", "=="))
    session.run("pytest", "-m", "redis", *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """Install each plugins/* distribution from its wheel beside lockkit; run its tests.

    Real installs (no sys.path tricks): the plugins are found through their entry
    points exactly as users' plugins are. Then lockkit's own tests check the installed
    plugins on the exFAT and link()-refusing FUSE mounts.
    """
    found = sorted(p for p in (ROOT / "plugins").glob("*") if (p / "pyproject.toml").exists())
    session.install(".", *map(str, found), "--group", "tests")
    for plugin in found:
        config = ["-c", str(plugin / "pyproject.toml"), "--rootdir", str(plugin)]
        session.run("pytest", *config, str(plugin / "tests"), *session.posargs)
    session.run("pytest", "tests/contract/test_plugins_realfs.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs in strict mode; ``nox -s docs -- watch`` serves them live."""
    session.install("-e", ".", "--group", "docs")
    if session.posargs and session.posargs[0] == "watch":
        session.run("mkdocs", "serve", env={"NO_MKDOCS_2_WARNING": "1"})
        return
    shutil.rmtree(ROOT / "site", ignore_errors=True)
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (never a default session)."""
    session.install(".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
