"""Development tasks: ``nox`` runs lint, typecheck, tests and plugins.

The Python versions come from the classifiers in ``pyproject.toml``, the one list.
Every one of them is tested: the noxfile finds each interpreter (``PATH``, pyenv,
uv's managed Pythons, the usual install directories) and makes it visible to nox, and
a version found nowhere fails the run instead of being skipped. ``LOCKKIT_PYTHONS=3.11``
(a comma-separated list) tests a subset deliberately, and says loudly what it leaves out.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SUPPORTED = [
    classifier.rsplit(" ", 1)[1]
    for classifier in PYPROJECT["project"]["classifiers"]
    if classifier.startswith("Programming Language :: Python :: 3.")
]


def _say(message: str) -> None:
    """Print a notice now and again at exit, below nox's summary, where it is seen."""
    print(f"nox > {message}", file=sys.stderr)  # noqa: T201
    atexit.register(print, f"nox > {message}", file=sys.stderr)


def _selected() -> list[str]:
    """The supported Pythons to test: all of them, unless ``LOCKKIT_PYTHONS`` says."""
    wanted = os.environ.get("LOCKKIT_PYTHONS", "").replace(",", " ").split()
    if not wanted:
        return SUPPORTED
    unknown = [version for version in wanted if version not in SUPPORTED]
    if unknown:
        sys.exit(
            f"LOCKKIT_PYTHONS={os.environ['LOCKKIT_PYTHONS']}: {', '.join(unknown)} is not "
            f"a supported Python (pyproject.toml's classifiers: {', '.join(SUPPORTED)})"
        )
    left_out = [version for version in SUPPORTED if version not in wanted]
    if left_out:
        _say(
            f"LOCKKIT_PYTHONS={os.environ['LOCKKIT_PYTHONS']}: NOT testing Python "
            f"{', '.join(left_out)}, which lockkit supports; unset it to test every one."
        )
    return [version for version in SUPPORTED if version in wanted]


def _is_python(path: pathlib.Path, version: str) -> bool:
    """Whether ``path`` runs and is CPython ``version`` (a pyenv shim may do neither)."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    check = (
        "import sys, sysconfig; print('%d.%d' % sys.version_info[:2],"
        " sys.implementation.name, bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"
    )
    try:
        out = subprocess.run(
            [path, "-c", check], capture_output=True, text=True, timeout=30, check=False
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == [version, "cpython", "False"]


def _pyenv_root() -> pathlib.Path:
    if root := os.environ.get("PYENV_ROOT"):
        return pathlib.Path(root)
    if pyenv := shutil.which("pyenv"):
        try:
            out = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return pathlib.Path(out)
    return pathlib.Path.home() / ".pyenv"


def _newest_first(dirs: list[pathlib.Path], pattern: str) -> list[pathlib.Path]:
    """The directories whose name matches ``pattern``, highest patch release first."""

    def patch(path: pathlib.Path) -> int:
        match = re.match(pattern, path.name)
        return int(match.group(1)) if match else -1

    return sorted((d for d in dirs if re.match(pattern, d.name)), key=patch, reverse=True)


def _candidates(version: str) -> list[pathlib.Path]:
    """Where a CPython ``version`` is commonly installed, most specific first."""
    name = f"python{version}"
    escaped = re.escape(version)
    home = pathlib.Path.home()
    # pyenv: its shims answer only for the versions `pyenv local/global` selects.
    pyenv = _pyenv_root() / "versions"
    pyenv_dirs = list(pyenv.iterdir()) if pyenv.is_dir() else []
    # uv's managed Pythons (`uv python install`), without asking uv to look or download.
    data_home = pathlib.Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    uv = pathlib.Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or data_home / "uv" / "python")
    uv_dirs = list(uv.iterdir()) if uv.is_dir() else []
    prefixes = [
        *_newest_first(pyenv_dirs, rf"^{escaped}\.(\d+)$"),
        *_newest_first(uv_dirs, rf"^cpython-{escaped}\.(\d+)-"),
    ]
    # uv's and pipx's executables, distributions, deadsnakes, Homebrew, python.org builds.
    bin_dirs = [
        pathlib.Path(os.environ.get("UV_PYTHON_BIN_DIR") or home / ".local" / "bin"),
        pathlib.Path("/usr/local/bin"),
        pathlib.Path("/usr/bin"),
        pathlib.Path(f"/opt/python/{version}/bin"),
        pathlib.Path("/opt/homebrew/bin"),
        pathlib.Path(f"/Library/Frameworks/Python.framework/Versions/{version}/bin"),
    ]
    found = [prefix / "bin" / name for prefix in prefixes]
    found += [directory / name for directory in bin_dirs]
    # Last, the interpreter running nox, if it is this version.
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        found.append(pathlib.Path(sys.executable).resolve())
    return found


def _find_pythons(versions: list[str]) -> dict[str, str | None]:
    """Find each version and make nox find the same one: put its directory on PATH.

    nox looks for ``pythonX.Y`` on PATH (and, in newer releases, elsewhere too); pyenv's
    shims are on PATH but fail for every version pyenv is not told to use, and nox then
    reports a missing interpreter as a *skipped* session: a green run that tested one
    Python. Here each interpreter is checked by running it.
    """
    found: dict[str, str | None] = {}
    for version in versions:
        on_path = shutil.which(f"python{version}")
        if on_path and _is_python(pathlib.Path(on_path), version):
            found[version] = on_path
            continue
        found[version] = None
        for candidate in _candidates(version):
            if _is_python(candidate, version):
                found[version] = str(candidate)
                os.environ["PATH"] = os.pathsep.join([str(candidate.parent), os.environ["PATH"]])
                break
    return found


PYTHONS = _selected()
FOUND = _find_pythons(PYTHONS)
MISSING = [version for version, path in FOUND.items() if path is None]
if MISSING:
    _say(
        f"lockkit supports Python {', '.join(SUPPORTED)}; NOT FOUND: {', '.join(MISSING)} "
        "(looked on PATH, in pyenv, in uv's Pythons, /usr/local/bin, /usr/bin, "
        "~/.local/bin). nox will try to download them with uv, and their sessions FAIL if "
        f"it cannot. Install {'them' if len(MISSING) > 1 else 'it'} with "
        f"`pyenv install {' '.join(MISSING)}`, `uv python install {' '.join(MISSING)}` or "
        f"`apt-get install {' '.join(f'python{version}' for version in MISSING)}` (where "
        "your distribution packages it), or test a subset deliberately: LOCKKIT_PYTHONS="
        + ",".join(version for version in PYTHONS if version not in MISSING)
    )

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
# A supported Python that is missing fails the run; nox would otherwise skip it.
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests", "redis_oldest", "plugins", "plugins_v1"]


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
    """Run mypy --strict over lockkit, the tests and the plugins."""
    # The postgres plugin brings psycopg, whose types its module and tests use.
    session.install(
        "-e",
        ".[bench]",
        "-e",
        "plugins/lockkit-postgres",
        "-e",
        "plugins/lockkit-etcd[testing]",
        "--group",
        "typecheck",
    )
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
def coverage(session: nox.Session) -> None:
    """Branch coverage of lockkit by the quick suites (never a default session).

    Runs what the ``tests`` sessions run on every Python, with the redis extra, under
    ``coverage run`` (threads, multiprocessing children and Python subprocesses are
    measured too: ``[tool.coverage.run]`` in pyproject.toml), then prints the report.
    Arguments replace pytest's: ``nox -s coverage -- tests/unit``.
    """
    session.install("-e", ".[redis]", "--group", "coverage")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *(session.posargs or QUICK["redis"]))
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session(python=PYTHONS[0])
def redis_oldest(session: nox.Session) -> None:
    """The Redis tests against the oldest redis-py the ``redis`` extra allows.

    lockkit drives redis-py's connections directly (``lockkit.backends.redis._conn``),
    whose API moved between releases; the floor is read from pyproject.toml, so this
    session follows it.
    """
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    floor = next(req for req in extras["redis"] if req.startswith("redis>="))
    session.install(".[redis]", "--group", "tests")
    session.install(floor.replace(">=", "=="))
    # The slow Redis tests (failovers, many processes) prove properties of the servers
    # and of lockkit; tests-3.11(redis) runs them. Here the API of redis-py is the point.
    session.run("pytest", "-m", "redis and not slow", *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """Install each plugins/* distribution from its wheel beside lockkit; run its tests.

    Real installs (no sys.path tricks): the plugins are found through their entry
    points exactly as users' plugins are. Then lockkit's own tests check the installed
    plugins on the exFAT and link()-refusing FUSE mounts, and the postgresql and etcd
    plugins against real PostgreSQL and etcd servers (``tests/postgres``,
    ``tests/etcd``, which need lockkit's test helpers, so they live with lockkit's tests).
    """
    found = sorted(p for p in (ROOT / "plugins").glob("*") if (p / "pyproject.toml").exists())
    session.install(".", *map(str, found), "--group", "tests")
    for plugin in found:
        config = ["-c", str(plugin / "pyproject.toml"), "--rootdir", str(plugin)]
        session.run("pytest", *config, str(plugin / "tests"), *session.posargs)
    session.run(
        "pytest",
        "tests/contract/test_plugins_realfs.py",
        "tests/postgres",
        "tests/etcd",
        *session.posargs,
    )


# Plugins exactly as released for backend spec v1, each with the start of the
# DeprecationWarning the core gives it (``lockkit._calls.plan``).
V1_PLUGINS = {
    "lockkit-mkdir-0.1.0": "lockkit backend 'mkdir' (lockkit_mkdir) waits through spec v1's",
}


@nox.session
def plugins_v1(session: nox.Session) -> None:
    """Plugins written for backend spec v1, unchanged, on today's core.

    ``tests/plugins_v1/lockkit-mkdir-0.1.0`` is ``plugins/lockkit-mkdir`` as of commit
    3a4946e, byte for byte (``tests/plugins_v1/test_mkdir_v1.py`` proves it, with git or
    without). It is installed from its wheel in this session's own environment (it has
    the name of today's plugin), then its own tests run as they are, lockkit.testing's
    contract suite among them, and the installed plugin takes the real-filesystem test.

    Its pytest configuration makes every warning an error, and the core warns once per
    spec v1 backend class (``DeprecationWarning``): that one warning, matched by the
    start of its message, is shown instead (``-W default:...``), so any other warning
    still fails the run. That the warning is given, once, and that the core drives the
    plugin's ``wait`` is asserted by ``tests/plugins_v1``.
    """
    copies = [ROOT / "tests" / "plugins_v1" / name for name in V1_PLUGINS]
    session.install(".", *map(str, copies), "--group", "tests")
    session.run("pytest", "tests/plugins_v1", *session.posargs)
    # Nothing is written into the copies: no bytecode, no pytest cache.
    pristine = {"PYTHONDONTWRITEBYTECODE": "1"}
    for plugin, warning in zip(copies, V1_PLUGINS.values(), strict=True):
        config = ["-c", str(plugin / "pyproject.toml"), "--rootdir", str(plugin)]
        allow = ["-p", "no:cacheprovider", "-W", f"default:{warning}:DeprecationWarning"]
        session.run(
            "pytest", *config, *allow, str(plugin / "tests"), *session.posargs, env=pristine
        )
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
    """Run the benchmarks (never a default session).

    With both server plugins, so PostgreSQL and etcd are measured beside Redis where
    their servers are installed (they are left out with a note where not).
    """
    session.install(".[bench]", "-e", "plugins/lockkit-postgres", "-e", "plugins/lockkit-etcd")
    session.run("python", "-m", "benchmarks", *session.posargs)
