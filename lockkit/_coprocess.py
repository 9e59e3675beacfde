"""``lockkit coprocess``: one long-lived process that takes locks for another program.

A Node program, a shell script (``coproc``) or anything else that can write and read
lines keeps one ``lockkit coprocess`` open and sends it requests as JSON Lines on its
standard input; the answers come back one JSON object per line on standard output. The
caller pays Python's start-up once, not once per lock as with ``lockkit run``.

Every acquisition is an `lockkit.AsyncLock` of its own, so backend selection, settings,
stale rules, TTL renewal and the ``lockkit_*`` hooks are those of `lockkit.Lock`: the
co-process is the holder (its pid is in the lock file). ``AsyncLock`` rather than
``Lock`` because a waiting acquisition must neither block the requests behind it nor
need a thread of its own, and must be cancellable; one task per acquisition waits for
the lock, holds it, and releases it when asked (the lock belongs to the task that took
it).

The protocol (version `PROTOCOL`) is specified in ``docs/how-to/coprocess.md``.
When the caller goes away (end of input), or on SIGTERM, SIGINT or SIGHUP, every lock
is released and the process exits. Killed with SIGKILL, its locks are freed by the
kernel (``filelock``) or broken by the next user under the stale rules (its pid is dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import threading

# Not `typing.TYPE_CHECKING`: `import typing` is a cost the co-process's start need not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lockkit._asynclock import AsyncLock
    from lockkit._info import LockInfo

__all__ = ["EXIT_OUTPUT_GONE", "IN_FLIGHT", "MAX_LINE", "PROTOCOL", "CoProcess", "serve"]

PROTOCOL = 1
"""The protocol version announced in the ``hello`` line; raised on incompatible changes."""

MAX_LINE = 64 * 1024
"""The longest request line, in bytes (newline included); a longer one is refused."""

EXIT_OUTPUT_GONE = 128 + 13
"""Exit status when standard output's reader went away (as after SIGPIPE)."""

IN_FLIGHT = 32
"""Request lines read but not yet taken by the event loop, at most.

The reader thread stops reading when this many wait (while the loop is stuck writing to
a standard output nobody reads, say), so memory stays bounded whatever the caller sends,
and the loop's wake-up pipe (one byte per line handed over) never fills: a stop signal's
wake-up byte, written to that same pipe, is never dropped.
"""

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)
# Idle lock objects kept for reuse, at most: choosing the backend and reading the settings
# costs more than a local lock and unlock, so a name locked again reuses its object.
_MAX_IDLE = 256
_IDS = (str, int, float)
# Raised by plugin code (a backend calling sys.exit): answered as errors, never fatal.
# The co-process's own SIGINT never raises KeyboardInterrupt: the loop handles it.
_PLUGIN_EXITS = (SystemExit, KeyboardInterrupt)


class _BadRequest(Exception):
    """A request the protocol refuses; its message goes to the caller as ``BadRequest``."""


class _Holding:
    """One acquisition: the lock object, its handle, and the releases asked of it."""

    __slots__ = ("answered", "handle", "key", "key_id", "lock", "lost", "name", "releases", "task")

    def __init__(self, name: str, key: tuple[Any, ...], lock: AsyncLock, key_id: str) -> None:
        self.name = name  # as the caller wrote it; `lock.name` is the canonical one
        self.key = key
        self.lock = lock
        self.key_id = key_id  # the acquire's id, as JSON
        self.handle = ""  # set when granted
        self.answered = False
        self.lost = False
        # Ids of release requests (None: the co-process is shutting down).
        self.releases: asyncio.Queue[object] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


class CoProcess:
    """The protocol engine: reads requests from ``stdin_fd``, answers on ``stdout_fd``.

    Args:
        stdin_fd: Where requests come from (read in a thread: any file works).
        stdout_fd: Where answers go; nothing else is written there.
        backend: Default backend name or URL (``None``: selected as for `lockkit.Lock`).
        timeout: Default seconds an ``acquire`` waits when its request names none;
            ``None`` takes the settings' timeout, else waits forever.
        ttl: Default lock expiry in seconds (backends with the ``ttl`` capability).
        stale: Default age after which a lock of another machine is stale.
    """

    def __init__(
        self,
        stdin_fd: int,
        stdout_fd: int,
        *,
        backend: str | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        stale: float | None = None,
    ) -> None:
        """Remember the streams and defaults; `run` starts serving."""
        self._in = stdin_fd
        self._out = stdout_fd
        self._backend = backend
        self._timeout = timeout
        self._ttl = ttl
        self._stale = stale
        self._held: dict[str, _Holding] = {}
        # Acquire id (as JSON) -> its acquisition, while it waits; one per id.
        self._waiting: dict[str, _Holding] = {}
        # Every acquisition whose task has not ended: waiting, held or releasing.
        self._acquisitions: set[_Holding] = set()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: dict[tuple[Any, ...], list[AsyncLock]] = {}
        self._count = 0
        self._output_gone = False
        self._stop: asyncio.Future[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._live: dict[int, _Holding] = {}  # id(lock) -> its holding, held or releasing

    async def run(self) -> int:
        """Serve until end of input or a stop signal; release everything; the exit status."""
        from lockkit._version import __version__  # noqa: PLC0415

        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop = loop.create_future()
        for sig in _STOP_SIGNALS:
            # Only the main thread may set handlers; embedded elsewhere, signals keep theirs.
            if threading.current_thread() is threading.main_thread():
                loop.add_signal_handler(sig, self._finish, 128 + sig)
        threading.Thread(target=self._read, name="lockkit-coprocess-stdin", daemon=True).start()
        self._event("hello", protocol=PROTOCOL, lockkit=__version__, pid=os.getpid())
        status = await self._stop
        await self._shutdown()
        for sig in _STOP_SIGNALS:
            if threading.current_thread() is threading.main_thread():
                loop.remove_signal_handler(sig)
        return EXIT_OUTPUT_GONE if self._output_gone else status

    # -- input ---------------------------------------------------------------------------

    def _read(self) -> None:
        """The reader thread: hand each line to the loop; end of input stops serving."""
        loop = self._loop
        assert loop is not None  # set before the thread starts
        try:
            with open(self._in, "rb", closefd=False) as stream:
                while line := stream.readline(MAX_LINE):
                    if len(line) == MAX_LINE and not line.endswith(b"\n"):
                        while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                            pass  # skip to the end of the overlong line
                        line = b""  # refused by _on_line, without parsing
                    self._slots.acquire()  # released by _on_line: at most IN_FLIGHT wait
                    loop.call_soon_threadsafe(self._on_line, line)
        except (OSError, ValueError):
            pass  # input unreadable or closed: the caller is gone, as at end of input
        except RuntimeError:
            return  # the loop is closed: the co-process has stopped already
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finish, 0)

    def _finish(self, status: int) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(status)

    def _on_line(self, line: bytes) -> None:
        """Parse one request line and start what it asks; never raises."""
        self._slots.release()  # the reader may read one more line
        if self._stop is None or self._stop.done():
            return  # shutting down: nothing new starts
        if not line.strip():
            if line == b"":
                self._error(None, "BadRequest", f"request longer than {MAX_LINE} bytes")
            return  # blank lines are allowed between requests
        try:
            request = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            # NaN and Infinity are not JSON (Node's JSON.stringify writes null for them).
            constant = str(exc) if isinstance(exc, _NotJSON) else ""
            self._error(None, "BadRequest", f"not a JSON object on one line{constant}")
            return
        if not isinstance(request, dict):
            self._error(None, "BadRequest", "a request must be a JSON object")
            return
        rid = request.get("id")
        if (
            not isinstance(rid, _IDS)
            or isinstance(rid, bool)
            or (isinstance(rid, float) and not math.isfinite(rid))  # 1e400: Infinity
        ):
            self._error(None, "BadRequest", '"id" must be a string or a finite number')
            return
        try:
            self._dispatch(rid, request)
        except _BadRequest as exc:
            self._error(rid, "BadRequest", str(exc))
        except (Exception, *_PLUGIN_EXITS) as exc:  # noqa: BLE001 - an answer, never a crash
            self._failed(rid, exc)

    def _dispatch(self, rid: object, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "acquire":
            self._acquire(rid, request)
        elif op == "release":
            self._release(rid, request)
        elif op == "status":
            self._spawn(self._status(rid, request))
        elif op == "cancel":
            self._cancel(rid, request)
        elif op == "hello":
            from lockkit._version import __version__  # noqa: PLC0415

            self._answer(rid, protocol=PROTOCOL, lockkit=__version__, pid=os.getpid())
        elif isinstance(op, str):
            raise _BadRequest(
                f"unknown op {op[:40]!r}; ops: acquire, release, status, cancel, hello"
            )
        else:
            raise _BadRequest('"op" must be a string: acquire, release, status, cancel, hello')

    # -- acquire ---------------------------------------------------------------------------

    def _acquire(self, rid: object, request: dict[str, Any]) -> None:
        key_id = json.dumps(rid)
        if key_id in self._waiting:
            # Else a cancel could not say which one it means.
            raise _BadRequest(f"id {key_id[:80]} already in use by a waiting acquire")
        name = _name(request)
        timeout = _timeout(request, self._timeout)
        options = self._options(request)
        shared = request.get("shared", False)
        if not isinstance(shared, bool):
            raise _BadRequest('"shared" must be true or false')
        key = (name, *options, shared)
        holding = _Holding(name, key, self._lock(key), key_id)
        holding.task = self._spawn(self._hold(rid, holding, timeout))
        self._waiting[key_id] = holding
        self._acquisitions.add(holding)
        holding.task.add_done_callback(lambda task: self._ended(rid, holding, task))

    def _unwait(self, holding: _Holding) -> None:
        """Forget ``holding`` as the waiting acquire of its id (if it still is: ids recur)."""
        if self._waiting.get(holding.key_id) is holding:
            del self._waiting[holding.key_id]

    def _ended(self, rid: object, holding: _Holding, task: asyncio.Task[None]) -> None:
        self._unwait(holding)
        self._acquisitions.discard(holding)
        if task.cancelled() and not holding.answered:
            # Cancelled before it started (a stop in the same turn): answered all the same.
            self._error(rid, "Cancelled", f"acquire of {holding.name!r} was cancelled")

    def _options(self, request: dict[str, Any]) -> tuple[Any, ...]:
        backend = request.get("backend", self._backend)
        if backend is not None and (not isinstance(backend, str) or not backend):
            raise _BadRequest('"backend" must be a backend name or URL (a string) or null')
        ttl = _seconds(request, "ttl", self._ttl)
        stale = _seconds(request, "stale", self._stale)
        return backend, ttl, stale

    def _lock(self, key: tuple[Any, ...]) -> AsyncLock:
        """A free lock object for ``key``: an idle one, or a new one (may raise LockError)."""
        idle = self._idle.get(key)
        if idle:
            return idle.pop()
        from lockkit._asynclock import AsyncLock  # noqa: PLC0415

        name, backend, ttl, stale, shared = key
        lock = AsyncLock(name, backend=backend, ttl=ttl, stale=stale, on_lost=self._on_lost)
        if shared:
            if not lock.backend.capabilities.shared:
                from lockkit._rwlock import _shared_backends  # noqa: PLC0415
                from lockkit.errors import SharedLocksUnsupported  # noqa: PLC0415

                raise SharedLocksUnsupported(lock.backend.name, _shared_backends())
            lock._shared = True  # noqa: SLF001 - lockkit's own switch, as reader_lock sets it
        return lock

    def _reuse(self, key: tuple[Any, ...], lock: AsyncLock) -> None:
        if lock.locked:
            return  # still held (a failed release): never handed to another acquisition
        if sum(len(locks) for locks in self._idle.values()) >= _MAX_IDLE:
            self._idle.clear()
        self._idle.setdefault(key, []).append(lock)

    async def _hold(self, rid: object, holding: _Holding, wait: float | None) -> None:
        """Take the lock, answer, then release it each time a release asks (until it works)."""
        lock = holding.lock
        try:
            await lock.acquire(timeout=wait)
        except asyncio.CancelledError:
            self._reuse(holding.key, lock)
            holding.answered = True
            self._error(rid, "Cancelled", f"acquire of {holding.name!r} was cancelled")
            return
        except (Exception, *_PLUGIN_EXITS) as exc:  # noqa: BLE001 - every failure is an answer
            self._reuse(holding.key, lock)
            holding.answered = True
            self._failed(rid, exc)
            return
        self._count += 1
        holding.handle = f"h{self._count}"
        holding.answered = True
        self._held[holding.handle] = holding
        self._live[id(lock)] = holding
        self._unwait(holding)  # a cancel from now on finds nothing
        lease = lock.lease
        self._answer(
            rid,
            handle=holding.handle,
            name=lock.name,
            backend=lock.backend.name,
            fencing_token=lease.fencing_token if lease is not None else None,
            expires=_iso(lease.expires) if lease is not None else None,
        )
        await self._serve_releases(holding)

    async def _serve_releases(self, holding: _Holding) -> None:
        lock = holding.lock
        while True:
            release_id = await holding.releases.get()
            try:
                await lock.release()
            except (Exception, *_PLUGIN_EXITS) as exc:  # noqa: BLE001 - still held: retry later
                if release_id is None:
                    _warn(f"could not release {lock.name!r}: {_message(exc)}")
                    return
                self._held[holding.handle] = holding
                self._failed(release_id, exc)
                continue
            del self._live[id(lock)]
            if release_id is not None:
                self._answer(release_id, handle=holding.handle, name=lock.name, lost=holding.lost)
            self._reuse(holding.key, lock)
            return

    def _on_lost(self, lock: AsyncLock) -> None:
        """``on_lost``: from the renewer thread, or the loop's when a release finds it."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._lost(lock)
        else:
            loop.call_soon_threadsafe(self._lost, lock)

    def _lost(self, lock: AsyncLock) -> None:
        holding = self._live.get(id(lock))
        if holding is None or holding.lost:
            return
        holding.lost = True
        if holding.handle in self._held:
            self._event("lost", handle=holding.handle, name=lock.name)
        # else a release is under way: its answer says ``"lost": true``.

    # -- release, cancel, status -----------------------------------------------------------

    def _release(self, rid: object, request: dict[str, Any]) -> None:
        handle = request.get("handle")
        name = request.get("name")
        if handle is not None:
            if not isinstance(handle, str):
                raise _BadRequest('"handle" must be a string returned by acquire')
            holding = self._held.get(handle)
            if holding is None:
                self._error(rid, "LockNotHeld", f"no lock is held with handle {handle[:80]!r}")
                return
        elif isinstance(name, str):
            found = [h for h in self._held.values() if name in (h.name, h.lock.name)]
            if not found:
                self._error(rid, "LockNotHeld", f"lock {name!r} is not held by this co-process")
                return
            if len(found) > 1:
                raise _BadRequest(f"lock {name!r} is held {len(found)} times: give a handle")
            [holding] = found
        else:
            raise _BadRequest('release needs "handle" (from acquire) or "name"')
        # Out of the table at once: a second release of it is refused, not queued.
        del self._held[holding.handle]
        holding.releases.put_nowait(rid)

    def _cancel(self, rid: object, request: dict[str, Any]) -> None:
        if "target" not in request:
            raise _BadRequest('cancel needs "target": the id of a waiting acquire')
        holding = self._waiting.pop(json.dumps(request["target"]), None)
        if holding is not None and holding.task is not None:
            holding.task.cancel()  # the acquire answers Cancelled
        self._answer(rid, cancelled=holding is not None)

    async def _status(self, rid: object, request: dict[str, Any]) -> None:
        try:
            name = _name(request)
            key = (name, *self._options(request), False)
            lock = self._lock(key)
            try:
                info = await lock.inspect()
            finally:
                self._reuse(key, lock)
        except _BadRequest as exc:
            self._error(rid, "BadRequest", str(exc))
            return
        except (Exception, *_PLUGIN_EXITS) as exc:  # noqa: BLE001 - every failure is an answer
            self._failed(rid, exc)
            return
        mine = [h.handle for h in self._held.values() if h.lock.name == lock.name]
        self._answer(
            rid,
            name=lock.name,
            backend=lock.backend.name,
            held=bool(mine),
            handles=mine,
            holder=_holder(info),
        )

    # -- output ----------------------------------------------------------------------------

    def _answer(self, rid: object, **fields: object) -> None:
        self._write({"id": rid, "ok": True, **fields})

    def _error(self, rid: object, kind: str, message: str, **extra: object) -> None:
        from lockkit._redact import redact_text  # noqa: PLC0415

        error = {"type": kind, "message": redact_text(message), **extra}
        self._write({"id": rid, "ok": False, "error": error})

    def _failed(self, rid: object, exc: BaseException) -> None:
        """Answer with the error ``exc``: its type if a LockError, else a generic one."""
        from lockkit.errors import LockError, LockTimeout  # noqa: PLC0415

        if isinstance(exc, LockTimeout):
            self._error(rid, "LockTimeout", str(exc), holder=_holder(exc.holder))
        elif isinstance(exc, LockError):
            self._error(rid, type(exc).__name__, str(exc))
        elif isinstance(exc, OSError):
            self._error(rid, "BackendUnavailable", _message(exc))
        elif isinstance(exc, _PLUGIN_EXITS):
            # A plugin's sys.exit() must not take every other caller's locks down with it.
            _warn(f"a backend or plugin raised {_message(exc)}; the co-process keeps serving")
            self._error(rid, "BackendError", f"the backend raised {_message(exc)}")
        else:
            _warn(f"unexpected error (a bug in lockkit, please report it): {_message(exc)}")
            self._error(rid, "InternalError", f"unexpected error: {_message(exc)}")

    def _event(self, kind: str, **fields: object) -> None:
        self._write({"event": kind, **fields})

    def _write(self, message: dict[str, object]) -> None:
        if self._output_gone:
            return
        data = (json.dumps(message, ensure_ascii=False, default=str) + "\n").encode(
            "utf-8", "backslashreplace"
        )
        try:
            while data:
                data = data[os.write(self._out, data) :]
        except OSError:
            # The reader went away (EPIPE): nobody can use the locks any more.
            self._output_gone = True
            self._finish(0)

    # -- shutdown --------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:  # noqa: ANN401 - a coroutine
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _shutdown(self) -> None:
        """Cancel what waits, release what is held, wait for all of it.

        Every acquisition is reached through ``_acquisitions``, not through the ids it was
        asked with: ids are the caller's and may recur.
        """
        self._waiting.clear()
        for holding in list(self._acquisitions):
            if not holding.handle:
                assert holding.task is not None  # set as soon as it is created
                holding.task.cancel()  # waiting: answers Cancelled
            else:
                holding.releases.put_nowait(None)  # held: released (after any release asked)
        self._held.clear()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def serve(
    stdin_fd: int,
    stdout_fd: int,
    *,
    backend: str | None = None,
    timeout: float | None = None,
    ttl: float | None = None,
    stale: float | None = None,
) -> int:
    """Run a co-process on these descriptors until its caller goes; the exit status.

    0 at end of input, 128+N after signal N (SIGTERM, SIGINT, SIGHUP),
    `EXIT_OUTPUT_GONE` when standard output's reader went away. Every lock is released
    before it returns.
    """
    engine = CoProcess(stdin_fd, stdout_fd, backend=backend, timeout=timeout, ttl=ttl, stale=stale)
    return asyncio.run(engine.run())


# -- request fields ------------------------------------------------------------------------


class _NotJSON(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a request: Python's json takes them."""


def _no_constant(text: str) -> object:
    raise _NotJSON(f": {text} is not a JSON number")


def _name(request: dict[str, Any]) -> str:
    name = request.get("name")
    if not isinstance(name, str) or not name:
        raise _BadRequest('"name" must be a non-empty string (the lock)')
    return name


def _timeout(request: dict[str, Any], default: float | None) -> float | None:
    """``None`` (absent): the default; JSON null: forever; else seconds >= 0."""
    if "timeout" not in request:
        return default
    value = request["timeout"]
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadRequest(f'"timeout" must be a number of seconds >= 0 or null, got {value!r}')
    try:
        seconds = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise _BadRequest(
            '"timeout" must be a number of seconds >= 0 (null waits forever), got an integer'
            f" of {len(str(abs(value)))} digits"
        ) from None
    if not 0 <= seconds < math.inf:
        raise _BadRequest(
            f'"timeout" must be a number of seconds >= 0 (null waits forever), got {value!r}'
        )
    return seconds


def _seconds(request: dict[str, Any], field: str, default: float | None) -> float | None:
    """A ``ttl`` or ``stale`` field: checked as `lockkit.Lock` checks it."""
    from lockkit._numbers import check  # noqa: PLC0415

    if field not in request:
        return default
    value = request[field]
    if value is None:
        return None
    try:
        return check("ttl" if field == "ttl" else "stale", value, f'"{field}"')
    except (TypeError, ValueError) as exc:
        raise _BadRequest(str(exc)) from None


def _holder(info: LockInfo | None) -> dict[str, object] | None:
    """The holder as the answers show it: never its secret token."""
    if info is None:
        return None
    owner = info.owner
    return {
        "pid": owner.pid if owner is not None else None,
        "host": owner.host if owner is not None else None,
        "created": _iso(owner.created) if owner is not None else None,
        "expires": _iso(info.expires),
        "fencing_token": info.fencing_token,
        "shared": info.shared,
        "backend": info.backend,
        "description": info.describe(),
    }


def _iso(when: Any) -> str | None:  # noqa: ANN401 - a datetime or None
    return when.isoformat() if when is not None else None


def _message(exc: BaseException) -> str:
    from lockkit._redact import redact_text  # noqa: PLC0415

    text = str(exc)
    return redact_text(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # else nowhere to say it
        sys.stderr.write(f"lockkit coprocess: {message}\n")
        sys.stderr.flush()
