"""The ``lockkit`` command line: ``doctor``, ``backends``, ``status``, ``break`` and ``run``.

``python -m lockkit`` runs the same.

Every command but ``run`` takes ``--json`` for scripts. Errors are printed as one line
on stderr, never as a traceback, and the exit status says what happened:
0 success, 1 the check failed (e.g. nothing can lock there), 2 bad usage or input.
``run`` exits with its command's status instead (see `lockkit._run`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from lockkit._numbers import Kind, parse
from lockkit.errors import LockError, LockkitWarning

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lockkit._select import Selection

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a tool killed by SIGPIPE


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockkit", description="Inter-process locks that work on every filesystem."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="probe a directory and prove that locks work there",
        description="Show the filesystem and configuration of DIR, the backend a lock "
        "there would use and why, then take and release a lock with every backend that "
        "works there and prove it with a short multi-process increment check.",
    )
    doctor.add_argument(
        "directory",
        nargs="?",
        default=None,
        metavar="DIR",
        help="default: the OpenClaw state dir if it exists, else the current directory",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--processes",
        type=_count(64),
        default=4,
        metavar="N",
        help="processes in the check (4; at most 64)",
    )
    doctor.add_argument(
        "--increments",
        type=_count(100_000),
        default=50,
        metavar="N",
        help="increments each (50; at most 100000)",
    )
    doctor.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="check only this backend, a name or a server URL (repeatable); default: every "
        "registered backend",
    )

    backends = commands.add_parser(
        "backends",
        help="list the registered backends",
        description="List every registered backend with its distribution, capabilities "
        "and whether it works in the current directory.",
    )
    backends.add_argument("--json", action="store_true", help="print a JSON array")

    status = commands.add_parser(
        "status",
        help="show who holds a lock and whether it is stale",
        description="Show the holder of the lock at PATH, its age and machine view, and "
        "the stale verdict with the rule that decided it.",
    )
    status.add_argument("path", metavar="PATH")
    status.add_argument("--backend", metavar="NAME", help="default: the one that wrote it")
    status.add_argument("--json", action="store_true", help="print one JSON object")

    breaker = commands.add_parser(
        "break",
        help="remove a stale lock (a live one only with --force)",
        description="Remove the lock at PATH if the stale rules say its holder is gone. "
        "A live lock is refused unless --force is given. Prints what was removed.",
    )
    breaker.add_argument("path", metavar="PATH")
    breaker.add_argument("--backend", metavar="NAME", help="default: the one that wrote it")
    breaker.add_argument("--force", action="store_true", help="remove even a live lock")
    breaker.add_argument("--json", action="store_true", help="print one JSON object")

    _add_run_parser(commands)
    return parser


def _add_run_parser(commands: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    run = commands.add_parser(
        "run",
        help="hold a lock while a command runs (like flock(1), with any backend)",
        usage="lockkit run NAME [--backend SPEC] [--timeout S | --nonblock] [--ttl S] "
        "-- CMD [ARG ...]",
        description="Take the lock NAME, run CMD (without a shell) while holding it, "
        "then release it. Exits with CMD's status; SIGINT, SIGTERM, SIGHUP, SIGQUIT, "
        "SIGUSR1 and SIGUSR2 are passed on to CMD. CMD finds the lock's canonical name "
        "in $LOCKKIT_LOCK.",
        epilog="exit status: CMD's own (128+N if signal N killed it); 75 the lock was "
        "busy (--nonblock, --timeout); 126 CMD cannot be executed; 127 CMD not found; "
        "2 bad usage, lock name or settings; 69 no backend works there or its server is "
        "unreachable; 71 an OS error while locking.",
    )
    run.add_argument(
        "name",
        metavar="NAME",
        help="the lock: the lock file's path for file backends, any name for servers",
    )
    run.add_argument(
        "--backend",
        metavar="SPEC",
        help="a backend name or URL; default: LOCKKIT_BACKEND/LOCKKIT_URL, the settings "
        "file, then auto-detection, as for lockkit.Lock",
    )
    wait = run.add_mutually_exclusive_group()
    wait.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="give up after S seconds (exit 75); 0 makes one attempt; default: the "
        "settings' timeout, else wait as long as it takes",
    )
    wait.add_argument(
        "-n",
        "--nonblock",
        action="store_true",
        help="make one attempt; if the lock is busy, exit 75 at once",
    )
    run.add_argument(
        "--ttl",
        type=_ttl,
        metavar="S",
        help="let the lock expire S seconds after its last renewal; it is renewed while "
        "CMD runs (backends with the ttl capability)",
    )


def _seconds(text: str) -> float:
    return _number("timeout", text)


def _ttl(text: str) -> float:
    return _number("ttl", text)


def _number(kind: Kind, text: str) -> float:
    try:
        return parse(kind, text, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
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


def _count(most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to ``most``."""

    def convert(text: str) -> int:
        if not text.strip().isascii() or not text.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        value = int(text)
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"expected a number from 1 to {most}, got {value}")
        return value

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):
        # A lock name need not be valid UTF-8 (any bytes but NUL and / make a file name):
        # show what cannot be encoded as escapes instead of failing half-way.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    parser = _build_parser()
    words, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    args, extra = parser.parse_known_args(words)
    if extra:
        if args.command == "run" and command is None:
            print(
                f"lockkit run: error: put the command after --: lockkit run NAME [options] "
                f"-- {' '.join(extra)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = command or []
    if args.version:
        from lockkit._version import __version__  # noqa: PLC0415

        print(f"lockkit {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand; errors become a message and an exit status."""
    try:
        handler = {
            "doctor": _doctor,
            "backends": _backends,
            "status": _status,
            "break": _break,
            "run": _run,
        }[args.command]
        status = handler(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except BrokenPipeError:
        return _reader_went_away()
    except LockError as exc:
        print(f"lockkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"lockkit: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return status


def _why_not_broken(backend: Any, name: str) -> str:  # noqa: ANN401 - any Backend
    """Say why ``break_lock`` declined: a breaker in the way, or the lock changed."""
    from lockkit.backends._file import (  # noqa: PLC0415 - file backends only
        BREAKER_MAX_AGE,
        FileBackend,
        breaker_path,
        observed_age,
        read_lock_file,
    )

    if isinstance(backend, FileBackend):
        path = breaker_path(name)
        found = read_lock_file(path)
        if found is not None:
            left = max(0.0, BREAKER_MAX_AGE - observed_age(path, found[1]))
            return (
                f"not removed: another process holds the breaker lock {path} (it is breaking "
                f"or releasing this lock right now, or left the file behind). A breaker whose "
                f"holder cannot be shown alive is cleared after {BREAKER_MAX_AGE:.0f} s of "
                f"age, about {left:.0f} s from now; try again then"
            )
    return (
        "not removed: the lock changed while it was checked, or this backend cannot "
        f"break locks ({backend.name}: {backend.description})"
    )


def _reader_went_away() -> int:
    """Exit quietly when stdout's reader has gone (``lockkit doctor | head -1``).

    What a Unix tool does when SIGPIPE kills it: no message, status 128 + SIGPIPE. Stdout
    is pointed at /dev/null so the interpreter's final flush does not complain either.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:  # noqa: ANN401
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(lines))


# -- run ---------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from lockkit._run import run_locked  # noqa: PLC0415

    if not args.argv:
        print(
            "lockkit run: error: no command to run; put it after --: "
            "lockkit run NAME [options] -- CMD [ARG ...]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    timeout = 0.0 if args.nonblock else args.timeout
    return run_locked(args.name, args.argv, backend=args.backend, timeout=timeout, ttl=args.ttl)


# -- backends ----------------------------------------------------------------------------


def _backends(args: argparse.Namespace) -> int:
    from lockkit._registry import get_registry  # noqa: PLC0415

    registry = get_registry()
    entries = registry.entries()
    here = os.getcwd()  # noqa: PTH109
    configured = _configured_server(here)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if configured is not None and configured[0] == entry.name:
            support = _check_server(registry, *configured)
        else:
            support = entry.cls.probe(here)
        rows.append(
            {
                "name": entry.name,
                "distribution": entry.distribution,
                "available": support.ok,
                "reason": support.reason,
                "capabilities": entry.cls.capabilities.names(),
                "description": entry.cls.description,
            }
        )
    problems = [problem.describe() for problem in registry.problems()]
    lines = []
    width = max((len(row["name"]) for row in rows), default=4)
    for row in rows:
        mark = "ok  " if row["available"] else "no  "
        lines.append(f"{row['name']:<{width}}  {mark}{row['distribution']}")
        lines.append(f"{'':<{width}}      {row['description']}")
        caps = ", ".join(row["capabilities"]) or "none"
        lines.append(f"{'':<{width}}      capabilities: {caps}")
        lines.append(f"{'':<{width}}      here: {row['reason']}")
    lines.extend(f"problem: {problem}" for problem in problems)
    _emit(args, {"backends": rows, "problems": problems}, lines)
    return EXIT_OK


def _configured_server(here: str) -> tuple[str, str, str] | None:
    """The server backend this deployment selects (name, URL, source), if any.

    A directory probe cannot say whether a server backend works: only its URL can.
    """
    from lockkit._select import select  # noqa: PLC0415

    try:
        selection = select(os.path.join(here, "lockkit-backends.lock"))  # noqa: PTH118
    except LockError:
        return None  # reported by doctor and by Lock(); `backends` lists what is installed
    if selection.url is None:
        return None
    return selection.backend, selection.url, selection.source


def _check_server(registry: Any, name: str, url: str, source: str) -> Any:  # noqa: ANN401
    """Ask the configured server about a lock nobody holds: it answers or it is down."""
    from lockkit._redact import redact_url  # noqa: PLC0415
    from lockkit.spec import Support  # noqa: PLC0415

    shown = f"configured by {source}: {redact_url(url)}"
    try:
        registry.backend(name, url).inspect("lockkit-backends-check")
    except (LockError, OSError) as exc:
        return Support(ok=False, reason=f"{shown}; {redact_url(str(exc))}")
    return Support(ok=True, reason=f"{shown}; the server answers")


# -- doctor ------------------------------------------------------------------------------


def _default_directory() -> str:
    """OpenClaw's state directory when it exists (the reference deployment), else ``.``."""
    from lockkit._settings import openclaw_state_dir  # noqa: PLC0415

    state = openclaw_state_dir()
    return state if os.path.isdir(state) else "."  # noqa: PTH112


def _config_report() -> tuple[dict[str, Any], list[str]]:
    """Where configuration came from, with every URL redacted."""
    from lockkit._redact import redact_url  # noqa: PLC0415
    from lockkit._settings import load_settings, settings_file  # noqa: PLC0415

    env = {
        name: redact_url(os.environ[name])
        for name in ("LOCKKIT_BACKEND", "LOCKKIT_URL", "LOCKKIT_SETTINGS")
        if os.environ.get(name)
    }
    lines = [f"config      {name}={value} (environment)" for name, value in env.items()]
    found = settings_file()
    data: dict[str, Any] = {"environment": env, "settings": None}
    if found is None:
        lines.append("config      no settings file (LOCKKIT_SETTINGS, openclaw.json)")
        return data, lines
    path, origin = found
    settings = load_settings()
    values: dict[str, Any] = {}
    if settings is not None:
        for key in ("backend", "url", "timeout", "ttl", "stale", "root"):
            value = getattr(settings, key)
            if value is not None:
                values[key] = redact_url(value) if isinstance(value, str) else value
        if settings.routes:
            values["routes"] = {r.pattern: redact_url(r.backend) for r in settings.routes}
    data["settings"] = {"file": path, "found_by": origin, "values": values}
    shown = ", ".join(f"{key}={value}" for key, value in values.items()) or "no lockkit section"
    lines.append(f"config      {path} (found by {origin}): {shown}")
    return data, lines


def _doctor(args: argparse.Namespace) -> int:
    from lockkit._autodetect import sharing_notes  # noqa: PLC0415
    from lockkit._fsinfo import filesystem_of  # noqa: PLC0415
    from lockkit._registry import get_registry  # noqa: PLC0415
    from lockkit._select import parse_spec, select  # noqa: PLC0415

    directory = os.path.abspath(args.directory or _default_directory())  # noqa: PTH100
    if not os.path.isdir(directory):  # noqa: PTH112
        print(f"lockkit: error: {directory!r} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    fs = filesystem_of(directory)
    registry = get_registry()
    config, config_lines = _config_report()
    report: dict[str, Any] = {
        "directory": directory,
        "filesystem": {"type": fs.fstype, "mount_point": fs.mount_point, "source": fs.source},
        "config": config,
        "chosen": None,
        "backends": [],
        "problems": [problem.describe() for problem in registry.problems()],
    }
    lines = [
        f"directory   {directory}",
        f"filesystem  {fs.fstype} (mounted at {fs.mount_point or '?'} from {fs.source or '?'})",
        *config_lines,
    ]
    chosen: Selection | None = None
    try:
        with warnings.catch_warnings():
            # What auto-detection warns about is printed as a sharing note below.
            warnings.simplefilter("ignore", LockkitWarning)
            selected = select(os.path.join(directory, "lockkit-doctor.lock"))  # noqa: PTH118
    except LockError as exc:
        lines.append(f"chosen      NONE: {exc}")
        report["chosen_error"] = str(exc)
    else:
        chosen = selected
        report["chosen"] = {
            "backend": chosen.backend,
            "source": chosen.source,
            "detail": chosen.detail,
            "description": chosen.describe(),
        }
        lines.append(f"chosen      {chosen.describe()}")
    lines.append("")
    # --backend takes a name or a server URL (redis://...): check that server.
    urls = dict(parse_spec(requested) for requested in args.backend or ())
    if urls:
        args.backend = list(urls)
    names = args.backend or [entry.name for entry in registry.entries()]
    if chosen is not None and chosen.backend not in names and not args.backend:
        names.append(chosen.backend)
    results = {}
    for name in names:
        spec = urls.get(name) or (
            chosen.url if chosen and chosen.backend == name and chosen.url else name
        )
        server = spec != name
        result = _check_backend(registry.get(name), spec, directory, args, probe=not server)
        result["server"] = server
        results[name] = result
        report["backends"].append(result)
        lines.extend(_describe_check(result))
    lines.extend(f"problem: {problem}" for problem in report["problems"])
    report["sharing"] = sharing_notes(fs.fstype)
    lines.extend(f"sharing: {note}" for note in report["sharing"])
    report["platform"], platform_lines = _platform_report()
    lines.extend(["", *platform_lines])
    report["ok"], verdict = _doctor_verdict(args, chosen, results, fs.fstype)
    lines.extend(["", f"verdict: {verdict}"])
    _emit(args, report, lines)
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _doctor_verdict(
    args: argparse.Namespace,
    chosen: Selection | None,
    results: dict[str, dict[str, Any]],
    fstype: str,
) -> tuple[bool, str]:
    """Whether locks work here (with the named backends, else the chosen one), and why."""
    from lockkit._autodetect import CLIENT_SIDE_EXCL  # noqa: PLC0415

    checked = list(args.backend) if args.backend else [chosen.backend] if chosen else []
    if not checked or not all(results[name]["works"] for name in checked):
        return False, "locks do NOT work here"
    verdict = f"locks work here with {', '.join(checked)}"
    if fstype in CLIENT_SIDE_EXCL and not all(results[name]["server"] for name in checked):
        verdict += " (among this client's processes only: see the sharing note)"
    return True, verdict


def _platform_report() -> tuple[dict[str, Any], list[str]]:
    """The operating-system facilities lockkit found, and the fallback for each missing one."""
    import platform  # noqa: PLC0415

    from lockkit._platform import features  # noqa: PLC0415

    found = features()
    system = f"{platform.system() or sys.platform} {platform.release()}".strip()
    data = {
        "system": system,
        "features": [
            {
                "name": feature.name,
                "available": feature.available,
                "detail": feature.detail,
                "fallback": None if feature.available else feature.fallback,
            }
            for feature in found
        ],
    }
    width = max(len(feature.name) for feature in found)
    lines = [f"Platform features ({system})"]
    for feature in found:
        mark = "yes" if feature.available else "NO "
        lines.append(f"  {feature.name:<{width}}  {mark}  {feature.detail}")
        if not feature.available:
            lines.append(f"  {'':<{width}}       instead: {feature.fallback}")
    return data, lines


def _check_backend(
    cls: Any,  # noqa: ANN401
    spec: str,
    directory: str,
    args: argparse.Namespace,
    *,
    probe: bool,
) -> dict[str, Any]:
    from lockkit._lock import Lock  # noqa: PLC0415
    from lockkit._stress import run_increments  # noqa: PLC0415
    from lockkit.spec import Support  # noqa: PLC0415

    support = cls.probe(directory) if probe else Support(ok=True, reason="configured server")
    result: dict[str, Any] = {
        "name": cls.name,
        "probe": {"ok": support.ok, "reason": support.reason, "preference": support.preference},
        "lock": None,
        "notes": [],
        "stress": None,
        "works": False,
    }
    if not support.ok:
        return result
    path = os.path.join(directory, f".lockkit-doctor-{cls.name}.lock")  # noqa: PTH118
    try:
        start = time.perf_counter()
        # A fallback warning (hardlink on a filesystem without link()) is reported as a
        # note of this check, not printed raw.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LockkitWarning)
            lock = Lock(path, backend=spec, timeout=10)
            with lock:
                held = lock.inspect()
        elapsed = time.perf_counter() - start
        result["notes"] = [str(w.message) for w in caught if w.category is LockkitWarning]
        result["lock"] = {
            "ok": held is not None,
            "ms": round(elapsed * 1000, 3),
            "holder_seen": held is not None,
        }
        stress = run_increments(
            directory,
            spec,
            processes=args.processes,
            increments=args.increments,
            name=f".lockkit-doctor-{cls.name}",
        )
    except (LockError, OSError) as exc:
        result["lock"] = {"ok": False, "error": str(exc)}
        return result
    finally:
        _remove_quietly(path)
        # Server backends keep per-lock keys (Redis: the fencing counter) that would
        # outlive the check; file locks leave nothing.
        if spec != cls.name:  # chosen by URL: a server backend
            with contextlib.suppress(LockError, OSError):
                forget = getattr(Lock(path, backend=spec).backend, "forget_keys", None)
                if forget is not None:
                    forget(path)
                    forget(os.path.join(directory, f".lockkit-doctor-{cls.name}.lock"))  # noqa: PTH118
    result["stress"] = {
        "processes": args.processes,
        "increments": args.increments,
        "expected": stress.expected,
        "count": stress.final,
        "lost": stress.lost,
        "ops_per_second": round(stress.ops_per_second),
        "errors": list(stress.errors),
        "warnings": sorted({w for seen in stress.warnings for w in seen}),
        "fallback_reports_per_process": [len(seen) for seen in stress.warnings],
    }
    result["works"] = stress.lost == 0 and not stress.errors
    return result


def _describe_check(result: dict[str, Any]) -> list[str]:
    name = result["name"]
    probe = result["probe"]
    lines = [f"{name}", f"  probe   {'ok' if probe['ok'] else 'no'}: {probe['reason']}"]
    lock = result["lock"]
    if lock is not None:
        if lock["ok"]:
            lines.append(f"  lock    acquired and released in {lock['ms']} ms")
        else:
            lines.append(f"  lock    FAILED: {lock.get('error', 'holder not visible')}")
    stress = result["stress"]
    if stress is not None:
        lines.append(
            f"  stress  {stress['processes']} processes x {stress['increments']} increments: "
            f"count {stress['count']}/{stress['expected']}, {stress['lost']} lost, "
            f"{stress['ops_per_second']} ops/s"
        )
        lines.extend(f"  error   {error}" for error in stress["errors"])
    notes = set(result["notes"]) | set(stress["warnings"] if stress else ())
    lines.extend(f"  note    {note}" for note in sorted(notes))
    return lines


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108


# -- status and break ----------------------------------------------------------------------


def _inspect_target(args: argparse.Namespace) -> tuple[Any, str, Any]:
    """Resolve the backend for PATH and inspect it: ``(backend, name, info)``."""
    from lockkit._registry import get_registry  # noqa: PLC0415
    from lockkit._select import parse_spec, select  # noqa: PLC0415

    registry = get_registry()
    if args.backend:
        backend = registry.backend(*parse_spec(args.backend))
    else:
        chosen = select(os.path.abspath(args.path))  # noqa: PTH100
        backend = registry.backend(chosen.backend, chosen.url)
    name = backend.normalize_name(args.path)
    info = backend.inspect(name)
    if args.backend is None and info is not None and info.backend != backend.name:
        # Ask the backend that wrote the lock: only it knows, e.g., whether a filelock
        # file is actually locked.
        try:
            backend = registry.backend(info.backend)
        except LockError:
            pass
        else:
            info = backend.inspect(name)
    return backend, name, info


def _describe_info(name: str, info: Any) -> dict[str, Any]:  # noqa: ANN401
    from lockkit._settings import load_settings  # noqa: PLC0415
    from lockkit._stale import judge  # noqa: PLC0415

    if info is None:
        return {"lock": name, "held": False}
    settings = load_settings()
    verdict = judge(info, stale_after=settings.stale if settings else None)
    owner = info.owner
    return {
        "lock": name,
        "held": True,
        "backend": info.backend,
        "holder": None
        if owner is None
        else {
            "pid": owner.pid,
            "host": owner.host,
            "created": owner.created.isoformat() if owner.created else None,
        },
        "problem": info.problem or None,
        "age_seconds": None if info.age is None else round(info.age, 3),
        "expires": info.expires.isoformat() if info.expires else None,
        "machine_view": verdict.view,
        "stale": verdict.stale,
        "rule": verdict.rule,
        "reason": verdict.reason,
    }


def _status_lines(report: dict[str, Any]) -> list[str]:
    if not report["held"]:
        return [f"lock     {report['lock']}", "state    free"]
    holder = report["holder"]
    who = (
        f"pid {holder['pid']}" + (f" on host {holder['host']}" if holder["host"] else "")
        if holder
        else f"unknown ({report['problem']})"
    )
    age = report["age_seconds"]
    lines = [
        f"lock     {report['lock']}",
        "state    held",
        f"holder   {who} ({report['machine_view']} machine view)",
        f"backend  {report['backend']}",
        f"age      {'?' if age is None else f'{age:.1f} s'}",
    ]
    if report["expires"]:
        lines.append(f"expires  {report['expires']}")
    verdict = "STALE" if report["stale"] else "live"
    lines.append(f"verdict  {verdict} (rule {report['rule']}): {report['reason']}")
    return lines


def _status(args: argparse.Namespace) -> int:
    _, name, info = _inspect_target(args)
    report = _describe_info(name, info)
    _emit(args, report, _status_lines(report))
    return EXIT_OK


def _break(args: argparse.Namespace) -> int:
    from lockkit._registry import get_registry  # noqa: PLC0415

    backend, name, info = _inspect_target(args)
    report = _describe_info(name, info)
    report["removed"] = False
    if info is None:
        report["message"] = "not locked: nothing to remove"
        _emit(args, report, [report["message"]])
        return EXIT_OK
    if not report["stale"] and not args.force:
        report["message"] = (
            f"refusing to break a live lock ({report['reason']}); pass --force if you are "
            "sure its holder is gone"
        )
        _emit(args, report, [*_status_lines(report), f"error: {report['message']}"])
        return EXIT_FAILED
    if not backend.break_lock(name, info):
        report["message"] = _why_not_broken(backend, name)
        _emit(args, report, [*_status_lines(report), f"error: {report['message']}"])
        return EXIT_FAILED
    report["removed"] = True
    registry = get_registry()
    if registry.has_event_hooks:
        registry.stale_broken(name, backend.name, info, report["reason"])
    report["message"] = "removed"
    _emit(args, report, [*_status_lines(report), "removed"])
    return EXIT_OK
