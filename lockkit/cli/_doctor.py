"""``lockkit doctor [DIR]``: the filesystem, the configuration, the choice, and proof.

It shows what a lock in ``DIR`` would use and why, then takes and releases a lock with
every backend that works there (or those named by ``--backend``) and runs a short
multi-process increment check with each. Exits 0 when the chosen (or every named)
backend locks correctly, 1 otherwise. A backend that raises anything while being checked
fails its own check, with the error named; it never ends the report with a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import attrs

from lockkit.cli._report import Report, emit, show
from lockkit.errors import BackendUnavailable, LockError, LockkitWarning

if TYPE_CHECKING:
    import argparse

    from lockkit._fsinfo import FsInfo
    from lockkit._select import Selection

__all__ = [
    "BackendCheck",
    "Chosen",
    "ConfigReport",
    "DoctorReport",
    "FeatureRow",
    "Filesystem",
    "LockCheck",
    "PlatformReport",
    "ProbeResult",
    "SettingsFound",
    "StressCheck",
    "run_doctor",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


# -- the report ---------------------------------------------------------------------------


@attrs.frozen
class Filesystem(Report):
    """The filesystem ``DIR`` is on.

    Attributes:
        type: The filesystem type (``ext4``, ``nfs4``, ``fuse.sshfs``...).
        mount_point: Where it is mounted, if found.
        source: What is mounted there, if found.
    """

    type: str
    mount_point: str | None
    source: str | None

    def text(self) -> str:
        """``ext4 (mounted at / from /dev/vda)``."""
        return f"{self.type} (mounted at {self.mount_point or '?'} from {self.source or '?'})"


@attrs.frozen
class SettingsFound(Report):
    """The settings file that was found, with lockkit's values in it (URLs redacted).

    Attributes:
        file: Its path.
        found_by: The variable or rule that found it.
        values: lockkit's settings from it.
    """

    file: str
    found_by: str
    values: dict[str, Any]


def _settings_text(_: ConfigReport, found: SettingsFound | None) -> str:
    if found is None:
        return "no settings file (LOCKKIT_SETTINGS, openclaw.json)"
    shown = ", ".join(f"{key}={value}" for key, value in found.values.items())
    return f"{found.file} (found by {found.found_by}): {shown or 'no lockkit section'}"


@attrs.frozen
class ConfigReport(Report):
    """Where configuration came from, with every URL redacted.

    Attributes:
        environment: The lockkit variables that are set.
        settings: The settings file, or ``None`` when there is none.
    """

    label_width = 11

    environment: dict[str, str] = attrs.field(
        metadata=show(
            "config",
            text=lambda _, v: [f"{name}={value} (environment)" for name, value in v.items()],
        )
    )
    settings: SettingsFound | None = attrs.field(metadata=show("config", text=_settings_text))


@attrs.frozen
class Chosen(Report):
    """The backend a lock in ``DIR`` would use, and why.

    Attributes:
        backend: Its name.
        source: What chose it (see `lockkit._select.Selection`).
        detail: Where exactly, or the auto-detection evidence.
        description: The whole choice in one line.
    """

    backend: str
    source: str
    detail: str
    description: str


@attrs.frozen
class ProbeResult(Report):
    """A backend's own probe of ``DIR``.

    Attributes:
        ok: Whether the backend can work there.
        reason: The evidence.
        preference: How much auto-detection prefers it there.
    """

    ok: bool
    reason: str
    preference: int


def _taken(check: LockCheck) -> bool:
    return check.error is None


@attrs.frozen
class LockCheck(Report):
    """Taking and releasing one real lock.

    Attributes:
        ok: The lock was taken, its holder seen, and released.
        ms: How long that took, in milliseconds (without ``error``).
        holder_seen: Whether ``inspect`` saw the holder (without ``error``).
        error: Why it failed, when it raised.
    """

    ok: bool
    ms: float | None = attrs.field(default=None, metadata=show(when=_taken))
    holder_seen: bool = attrs.field(default=False, metadata=show(when=_taken))
    error: str | None = attrs.field(default=None, metadata=show(when=lambda c: not _taken(c)))

    def text(self) -> str:
        """``acquired and released in 1.2 ms``, or what went wrong."""
        if self.ok:
            return f"acquired and released in {self.ms} ms"
        return f"FAILED: {self.error or 'holder not visible'}"


@attrs.frozen
class StressCheck(Report):
    """The increment check: processes adding 1 to a counter under the lock.

    Attributes:
        processes: How many processes.
        increments: Increments each.
        expected: ``processes * increments``.
        count: The counter at the end.
        lost: Updates lost (any means the backend does not exclude there).
        ops_per_second: Increments per second, all processes together.
        errors: Per failed process, its error.
        warnings: The lockkit warnings the processes met (each once).
        fallback_reports_per_process: How many warnings each process emitted.
    """

    processes: int
    increments: int
    expected: int
    count: int
    lost: int
    ops_per_second: int
    errors: list[str]
    warnings: list[str]
    fallback_reports_per_process: list[int]

    def lines(self) -> list[str]:
        """The summary line, then one line per error."""
        return [
            (
                f"  stress  {self.processes} processes x {self.increments} increments: "
                f"count {self.count}/{self.expected}, {self.lost} lost, "
                f"{self.ops_per_second} ops/s"
            ),
            *(f"  error   {error}" for error in self.errors),
        ]


def _stress_text(check: BackendCheck, stress: StressCheck | None) -> list[str]:
    # The notes follow the stress line: those met while locking and those the stress
    # processes met, each once.
    notes = set(check.notes) | set(stress.warnings if stress else ())
    return [*(stress.lines() if stress else ()), *(f"  note    {note}" for note in sorted(notes))]


def _probe_text(_: BackendCheck, probe: ProbeResult) -> str:
    return f"  probe   {'ok' if probe.ok else 'no'}: {probe.reason}"


@attrs.frozen
class BackendCheck(Report):
    """``doctor``'s check of one backend.

    Attributes:
        name: The backend.
        probe: Its probe of ``DIR`` (a configured server is not probed).
        lock: Taking one lock, unless the probe failed.
        topology: The deployment behind a server URL, as the backend describes it
            (its ``topology()``: a Sentinel's primary and replicas, a cluster's masters).
        notes: Warnings met while locking (a fallback, say), and the topology's.
        stress: The increment check, if the lock could be taken.
        works: Whether it locks correctly here.
        server: Whether it was checked through a server URL.
    """

    name: str = attrs.field(metadata=show(text=lambda _, v: v))
    probe: ProbeResult = attrs.field(metadata=show(text=_probe_text))
    lock: LockCheck | None = attrs.field(
        default=None,
        metadata=show(text=lambda _, v: None if v is None else f"  lock    {v.text()}"),
    )
    topology: list[str] = attrs.field(
        factory=list, metadata=show(text=lambda _, v: [f"  topology {line}" for line in v])
    )
    notes: list[str] = attrs.field(factory=list)  # in text with the stress lines
    stress: StressCheck | None = attrs.field(default=None, metadata=show(text=_stress_text))
    works: bool = False
    server: bool = False


@attrs.frozen
class FeatureRow(Report):
    """One operating-system facility lockkit uses where it finds it.

    Attributes:
        name: Its short name.
        available: Whether this process can use it.
        detail: What was found.
        fallback: What lockkit does instead, when it is missing (else ``None``).
    """

    name: str
    available: bool
    detail: str
    fallback: str | None


def _features_text(report: PlatformReport, rows: list[FeatureRow]) -> list[str]:
    width = max((len(row.name) for row in rows), default=0)
    lines = [f"Platform features ({report.system})"]
    for row in rows:
        lines.append(f"  {row.name:<{width}}  {'yes' if row.available else 'NO '}  {row.detail}")
        if not row.available:
            lines.append(f"  {'':<{width}}       instead: {row.fallback}")
    return lines


@attrs.frozen
class PlatformReport(Report):
    """The platform and the facilities found on it.

    Attributes:
        system: ``Linux 6.8.0``.
        features: One row per facility.
    """

    system: str
    features: list[FeatureRow] = attrs.field(metadata=show(text=_features_text))


def _chosen_text(report: DoctorReport, chosen: Chosen | None) -> str:
    return f"NONE: {report.chosen_error}" if chosen is None else chosen.description


@attrs.frozen
class DoctorReport(Report):
    """What ``lockkit doctor`` prints.

    Attributes:
        directory: The directory checked.
        filesystem: Its filesystem.
        config: The configuration found.
        chosen: The backend a lock there would use, or ``None`` when none could be chosen.
        backends: One check per backend.
        problems: Plugins that could not be loaded.
        chosen_error: Why nothing could be chosen (only then).
        sharing: Notes on filesystems other hosts or clients may reach.
        cache: What became of the cached auto-detection verdict for this filesystem
            (doctor always probes afresh, and saves the new verdict where it may).
        platform: The platform's facilities.
        ok: The verdict: locks work here.
        verdict: The verdict in words (text only).
    """

    label_width = 11

    directory: str = attrs.field(metadata=show("directory"))
    filesystem: Filesystem = attrs.field(metadata=show("filesystem", text=lambda _, v: v.text()))
    config: ConfigReport = attrs.field(metadata=show(text=lambda _, v: v.lines()))
    chosen: Chosen | None = attrs.field(metadata=show("chosen", text=_chosen_text))
    backends: list[BackendCheck] = attrs.field(
        metadata=show(text=lambda _, v: ["", *(line for check in v for line in check.lines())])
    )
    problems: list[str] = attrs.field(
        metadata=show(text=lambda _, v: [f"problem: {problem}" for problem in v])
    )
    chosen_error: str | None = attrs.field(metadata=show(when=lambda r: r.chosen is None))
    sharing: list[str] = attrs.field(
        metadata=show(text=lambda _, v: [f"sharing: {note}" for note in v])
    )
    cache: str = attrs.field(metadata=show(text=lambda _, v: [f"cache: {v}"]))
    platform: PlatformReport = attrs.field(metadata=show(text=lambda _, v: ["", *v.lines()]))
    ok: bool
    verdict: str = attrs.field(metadata=show(key=None, text=lambda _, v: ["", f"verdict: {v}"]))


# -- the command --------------------------------------------------------------------------


def run_doctor(args: argparse.Namespace) -> int:
    """``lockkit doctor``: 0 locks work here, 1 they do not, 2 bad input."""
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
    # Scan and probe afresh: whatever the caches say is what this run rewrites.
    registry.forget_record()
    cache = _reprobe(directory, fs)
    config = _config_report()
    problems = [problem.describe() for problem in registry.problems()]
    chosen: Selection | None = None
    chosen_error: str | None = None
    try:
        with warnings.catch_warnings():
            # What auto-detection warns about is printed as a sharing note below.
            warnings.simplefilter("ignore", LockkitWarning)
            chosen = select(os.path.join(directory, "lockkit-doctor.lock"))  # noqa: PTH118
    except LockError as exc:
        chosen_error = str(exc)
    # --backend takes a name or a server URL (redis://...): check that server.
    urls = dict(parse_spec(requested) for requested in args.backend or ())
    if urls:
        args.backend = list(urls)
    names = args.backend or [entry.name for entry in registry.entries()]
    if chosen is not None and chosen.backend not in names and not args.backend:
        names.append(chosen.backend)
    results: dict[str, BackendCheck] = {}
    for name in names:
        spec = urls.get(name) or (
            chosen.url if chosen and chosen.backend == name and chosen.url else name
        )
        server = spec != name
        cls = registry.get(name)
        results[name] = attrs.evolve(
            _check_backend(cls, spec, directory, args, probe=not server), server=server
        )
    ok, verdict = _doctor_verdict(args, chosen, results, fs.fstype)
    report = DoctorReport(
        directory=directory,
        filesystem=Filesystem(fs.fstype, fs.mount_point, fs.source),
        config=config,
        chosen=None
        if chosen is None
        else Chosen(chosen.backend, chosen.source, chosen.detail, chosen.describe()),
        backends=list(results.values()),
        problems=problems,
        chosen_error=chosen_error,
        sharing=sharing_notes(fs.fstype),
        cache=cache,
        platform=_platform_report(),
        ok=ok,
        verdict=verdict,
    )
    emit(report, as_json=args.json)
    return EXIT_OK if ok else EXIT_FAILED


def _reprobe(directory: str, fs: FsInfo) -> str:
    """Probe ``directory`` afresh, replacing any cached verdict; say what happened."""
    from lockkit import _cache  # noqa: PLC0415
    from lockkit._autodetect import VERDICTS, detect, not_cached_because  # noqa: PLC0415

    why_not = not_cached_because(fs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LockkitWarning)
            detection = detect(directory, refresh=True)
    except LockError:
        detection = None
    where = os.path.join(_cache.cache_dir() or "", VERDICTS)  # noqa: PTH118
    if why_not:
        return f"auto-detection re-probed; verdicts here are not cached: {why_not}"
    if detection is None:
        return f"auto-detection re-probed: nothing works here; removed any verdict from {where}"
    if detection.cached == "saved":
        return f"auto-detection re-probed; verdict {detection.backend!r} saved in {where}"
    return f"auto-detection re-probed; the verdict could not be saved in {where}"


def _default_directory() -> str:
    """OpenClaw's state directory when it exists (the reference deployment), else ``.``."""
    from lockkit._settings import openclaw_state_dir  # noqa: PLC0415

    state = openclaw_state_dir()
    return state if os.path.isdir(state) else "."  # noqa: PTH112


def _config_report() -> ConfigReport:
    """Where configuration came from, with every URL redacted."""
    from lockkit._redact import redact_url  # noqa: PLC0415
    from lockkit._settings import load_settings, settings_file  # noqa: PLC0415

    env = {
        name: redact_url(os.environ[name])
        for name in ("LOCKKIT_BACKEND", "LOCKKIT_URL", "LOCKKIT_SETTINGS")
        if os.environ.get(name)
    }
    found = settings_file()
    if found is None:
        return ConfigReport(env, None)
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
    return ConfigReport(env, SettingsFound(path, origin, values))


def _doctor_verdict(
    args: argparse.Namespace,
    chosen: Selection | None,
    results: dict[str, BackendCheck],
    fstype: str,
) -> tuple[bool, str]:
    """Whether locks work here (with the named backends, else the chosen one), and why."""
    from lockkit._autodetect import CLIENT_SIDE_EXCL  # noqa: PLC0415

    checked = list(args.backend) if args.backend else [chosen.backend] if chosen else []
    if not checked or not all(results[name].works for name in checked):
        return False, "locks do NOT work here"
    verdict = f"locks work here with {', '.join(checked)}"
    if fstype in CLIENT_SIDE_EXCL and not all(results[name].server for name in checked):
        verdict += " (among this client's processes only: see the sharing note)"
    return True, verdict


def _platform_report() -> PlatformReport:
    """The operating-system facilities lockkit found, and the fallback for each missing one."""
    import platform  # noqa: PLC0415

    from lockkit._platform import features  # noqa: PLC0415

    system = f"{platform.system() or sys.platform} {platform.release()}".strip()
    rows = [
        FeatureRow(f.name, f.available, f.detail, None if f.available else f.fallback)
        for f in features()
    ]
    return PlatformReport(system, rows)


def _failure(exc: BaseException) -> str:
    """An exception as one line: a `LockError` or `OSError` by its message, else typed."""
    if isinstance(exc, LockError | OSError):
        return str(exc)
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _topology(backend: object) -> tuple[list[str], list[str]]:
    """A server backend's ``topology()`` (lines, warnings), if it has one."""
    describe = getattr(backend, "topology", None)
    if describe is None:
        return [], []
    try:
        lines, warned = describe()
    except Exception as exc:  # noqa: BLE001 - a plugin's description is reported, not a crash
        return [], [f"the topology could not be read: {_failure(exc)}"]
    return [str(line) for line in lines], [str(warning) for warning in warned]


def _check_backend(
    cls: Any,  # noqa: ANN401 - any Backend class
    spec: str,
    directory: str,
    args: argparse.Namespace,
    *,
    probe: bool,
) -> BackendCheck:
    from lockkit._lock import Lock  # noqa: PLC0415
    from lockkit._stress import run_increments  # noqa: PLC0415
    from lockkit.spec import Support  # noqa: PLC0415

    try:
        support = cls.probe(directory) if probe else Support(ok=True, reason="configured server")
    except Exception as exc:  # noqa: BLE001 - a plugin's probe is reported, not a crash
        support = Support(ok=False, reason=f"the probe raised {_failure(exc)}")
    checked = BackendCheck(cls.name, ProbeResult(support.ok, support.reason, support.preference))
    if not support.ok:
        return checked
    path = os.path.join(directory, f".lockkit-doctor-{cls.name}.lock")  # noqa: PTH118
    unreachable = False
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
        notes = [str(w.message) for w in caught if w.category is LockkitWarning]
        taken = LockCheck(
            ok=held is not None, ms=round(elapsed * 1000, 3), holder_seen=held is not None
        )
        topology, warned = _topology(lock.backend)
        checked = attrs.evolve(checked, lock=taken, notes=notes + warned, topology=topology)
        stress = run_increments(
            directory,
            spec,
            processes=args.processes,
            increments=args.increments,
            name=f".lockkit-doctor-{cls.name}",
        )
    except Exception as exc:  # noqa: BLE001 - whatever the backend raised fails its check
        # A server that answered but refused (too few replicas confirmed) is described
        # too: its topology says why. One that did not answer is not asked again.
        answered = getattr(exc, "server_answered", False)
        unreachable = isinstance(exc, BackendUnavailable) and not answered
        failed = attrs.evolve(checked, lock=LockCheck(ok=False, error=_failure(exc)))
        if answered:
            with contextlib.suppress(Exception):
                topology, warned = _topology(Lock(path, backend=spec).backend)
                failed = attrs.evolve(failed, notes=warned, topology=topology)
        return failed
    finally:
        _remove_quietly(path)
        # Server backends keep per-lock keys (Redis: the fencing counter) that would
        # outlive the check; file locks leave nothing. A server that did not answer is
        # not asked again (it would cost its socket timeout once more).
        if spec != cls.name and not unreachable:  # chosen by URL: a server backend
            with contextlib.suppress(Exception):
                forget = getattr(Lock(path, backend=spec).backend, "forget_keys", None)
                if forget is not None:
                    forget(path)
    return attrs.evolve(
        checked,
        stress=StressCheck(
            processes=args.processes,
            increments=args.increments,
            expected=stress.expected,
            count=stress.final,
            lost=stress.lost,
            ops_per_second=round(stress.ops_per_second),
            errors=list(stress.errors),
            warnings=sorted({w for seen in stress.warnings for w in seen}),
            fallback_reports_per_process=[len(seen) for seen in stress.warnings],
        ),
        works=stress.lost == 0 and not stress.errors,
    )


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108
