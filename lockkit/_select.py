"""Which backend a lock uses: explicit argument > environment > settings file > auto-detect.

* ``Lock(path, backend=...)``: a name, a URL (``redis://...``), ``"auto"`` or an instance.
* ``LOCKKIT_BACKEND``: a name, a URL or ``auto``; ``LOCKKIT_URL`` supplies the URL for a
  named backend, or implies the backend by its scheme when ``LOCKKIT_BACKEND`` is unset.
* The settings file (see `lockkit._settings`): the first matching ``routes`` entry, then
  ``backend``/``url``.
* Auto-detection (see `lockkit._autodetect`).

The result is a `Selection`, kept on the lock (`Lock.selection`) and shown by
``lockkit doctor``; URLs in it are always shown without their password.
"""

from __future__ import annotations

import os

from lockkit._redact import redact_url, redacted_repr
from lockkit._settings import Settings, load_settings, openclaw_state_dir
from lockkit._value import field, frozen

TYPE_CHECKING = False  # not typing's: the cold path does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from lockkit._registry import Registry
    from lockkit.spec import Backend

__all__ = ["Selection", "choose", "parse_spec", "select"]


@frozen
class Selection:
    """The backend chosen for a lock, and where that choice came from.

    Attributes:
        backend: Backend name (``"auto"`` is resolved before a selection is made).
        url: Server URL, if any (its password never appears in ``repr``).
        source: ``argument``, ``LOCKKIT_BACKEND``, ``LOCKKIT_BACKEND=auto``,
            ``LOCKKIT_URL``, ``settings``, ``settings route`` or ``auto-detect`` (also for
            ``backend="auto"``); ``settings <file:line>`` or ``settings route '<glob>'``
            when the settings said ``auto``.
        detail: Where exactly (``file:line``) or why (the auto-detection evidence).
    """

    backend: str
    url: str | None = field(default=None, repr=redacted_repr)
    source: str = "argument"
    detail: str = ""

    def describe(self) -> str:
        """One line, safe to print: ``excl (from settings: /x/openclaw.json:12)``."""
        at = f" at {redact_url(self.url)}" if self.url else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.backend}{at} (from {self.source}{detail})"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a backend spec into ``(name, url)``: ``"rediss://h"`` -> ``("redis", "rediss://h")``.

    A URL's scheme names the backend that declares it in ``Backend.schemes`` (the
    registry loads only the entry point of that name), or else the backend of that name.
    """
    if "://" in spec:
        from lockkit._registry import get_registry  # noqa: PLC0415 - only for URLs

        scheme, rest = spec.split("://", 1)
        # ``dist:scheme://...`` picks one of two backends serving that scheme: the
        # backend gets the URL without the distribution.
        dist, _, scheme = scheme.lower().rpartition(":")
        url = f"{spec.split('://', 1)[0].rpartition(':')[2]}://{rest}"
        backend = get_registry().scheme_backend(scheme)
        return (f"{dist}:{backend}" if dist else backend), url
    return spec.strip(), None


def choose(
    name: str | os.PathLike[str],
    backend: str | Backend | None,
    settings: Settings | None,
    registry: Registry,
) -> tuple[Selection, Backend]:
    """The selection and backend instance for a lock, as `lockkit.Lock` makes them.

    Precedence: the ``backend`` argument (a name, URL, ``"auto"`` or an instance), then
    `select` (environment, settings file, auto-detection).

    Raises:
        UnknownBackend: The chosen name is not registered; when the deployment chose it,
            the message says where (an env var, a line of a settings file).
    """
    from lockkit.errors import UnknownBackend  # noqa: PLC0415

    raw = os.fspath(name)
    # Routes and auto-detection look at the absolute path; the backend validates it.
    where = os.path.abspath(raw) if raw and "\0" not in raw else raw  # noqa: PTH100
    if backend is not None and not isinstance(backend, str):
        return Selection(backend.name), backend
    if backend is None:
        selection = select(where, settings=settings)
    else:
        spec_name, url = parse_spec(backend)
        selection = auto(where) if spec_name == "auto" else Selection(spec_name, url)
    try:
        return selection, registry.backend(selection.backend, selection.url)
    except UnknownBackend as exc:
        if selection.source == "argument":
            raise
        # Say where the name came from: an env var or a line of a settings file.
        said = f"{selection.source}: {selection.detail}" if selection.detail else ""
        hint = f"{exc.hint} " if exc.hint else ""
        raise UnknownBackend(
            exc.requested, exc.available, f"{hint}It was chosen by {said or selection.source}."
        ) from None


def select(
    name: str, *, env: Mapping[str, str] | None = None, settings: Settings | None = None
) -> Selection:
    """Choose the backend for the lock ``name`` from environment, settings or detection.

    Args:
        name: The lock's canonical name (an absolute path for file locks).
        env: Environment to read (default: ``os.environ``).
        settings: Already loaded settings (default: loaded from ``env``).
    """
    env = os.environ if env is None else env
    chosen = env.get("LOCKKIT_BACKEND", "").strip()
    url = env.get("LOCKKIT_URL", "").strip() or None
    if chosen and chosen != "auto":
        backend, spec_url = parse_spec(chosen)
        return Selection(backend, spec_url or _url_for(backend, url), "LOCKKIT_BACKEND")
    if chosen == "auto":
        return auto(name, source="LOCKKIT_BACKEND=auto")
    if url:
        return Selection(parse_spec(url)[0], url, "LOCKKIT_URL")
    if settings is None:
        settings = load_settings(env)
    if settings is not None:
        found = _from_settings(name, settings, env)
        if found is not None:
            return found
    return auto(name)


def _from_settings(name: str, settings: Settings, env: Mapping[str, str]) -> Selection | None:
    root = settings.root or openclaw_state_dir(env)
    relative = _relative(name, root)
    if relative is not None:
        for route in settings.routes:
            if route.matches(relative):
                backend, url = parse_spec(route.backend)
                if backend == "auto":
                    return auto(name, source=f"settings route {route.pattern!r}")
                where = f"{settings.source}:{route.line}" if route.line else settings.source
                url = url or _url_for(backend, settings.url)
                return Selection(backend, url, "settings route", f"{where} ({route.pattern})")
    if settings.backend and settings.backend != "auto":
        backend, url = parse_spec(settings.backend)
        url = url or _url_for(backend, settings.url)
        return Selection(backend, url, "settings", settings.where("backend"))
    if settings.backend == "auto":
        return auto(name, source=f"settings {settings.where('backend')}")
    if settings.url:
        return Selection(
            parse_spec(settings.url)[0], settings.url, "settings", settings.where("url")
        )
    return None


def _url_for(backend: str, url: str | None) -> str | None:
    """``url`` if it is meant for ``backend`` (its scheme names it), else ``None``.

    ``LOCKKIT_BACKEND=excl`` with a left-over ``LOCKKIT_URL=redis://...`` means excl.
    """
    # A backend chosen as ``dist:name`` (one of two with that name) takes a URL whose
    # scheme names it: compare the names, without the distribution.
    if url is None or parse_spec(url)[0].rpartition(":")[2] != backend.rpartition(":")[2]:
        return None
    return url


def _relative(name: str, root: str) -> str | None:
    """``name`` relative to ``root`` with ``/`` separators, or ``None`` if outside it."""
    if not os.path.isabs(name):  # noqa: PTH117 - not a path: match the name itself
        return name
    try:
        relative = os.path.relpath(name, root)
    except ValueError:  # another drive on Windows
        return None
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, "/")


def auto(name: str, *, source: str = "auto-detect") -> Selection:
    """Auto-detect for the directory of the lock ``name``."""
    from lockkit._autodetect import detect  # noqa: PLC0415 - probing is the costly path
    from lockkit.backends._file import check_directory  # noqa: PLC0415

    path = os.path.abspath(name)  # noqa: PTH100
    # Probing would fail on the directory with a bare OSError, or advise a server: a
    # missing or unsearchable directory (or a symlink of another user on the way) is
    # refused here with the words the backends use.
    check_directory(path)
    directory = os.path.dirname(path)  # noqa: PTH120
    detection = detect(directory)
    detail = detection.reason if source == "auto-detect" else f"auto-detect, {detection.reason}"
    return Selection(detection.backend, None, source, detail)
