"""A small client of etcd's v3 JSON gateway (``POST /v3/...``), on ``http.client``.

Only what the lock backend needs: unary calls (kv, lease, auth) over pooled keep-alive
connections, and one streaming call, the watch. No dependency beyond the standard
library; ``http.client``, ``ssl`` and ``json`` are imported on the first call, never
when the plugin is imported.

Endpoints are tried in turn: a call that cannot connect to one, or whose connection
breaks, moves on to the next, and fails with `lockkit.errors.BackendUnavailable` (the
URL shown without its password) once every endpoint has failed. A call that reaches a
server but gets an error answer raises `GatewayError` with etcd's gRPC code.
"""

from __future__ import annotations

import _thread
import base64
import contextlib
import os
import time
import weakref
from typing import TYPE_CHECKING, Any

from lockkit.errors import BackendUnavailable

if TYPE_CHECKING:
    import http.client
    import ssl

__all__ = ["Gateway", "GatewayError", "Watch", "b64", "unb64"]

# gRPC status codes the gateway returns in {"code": ...}.
NOT_FOUND = 5
UNAUTHENTICATED = 16
_UNAVAILABLE_CODES = frozenset({4, 14})  # DeadlineExceeded, Unavailable
MAX_IDLE = 8
"""Idle connections kept per backend; more are closed when given back."""


def b64(data: bytes) -> str:
    """Bytes as the gateway's JSON wants them (base64)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Base64 text from the gateway as bytes."""
    return base64.b64decode(text)


class GatewayError(Exception):
    """etcd answered a call with an error.

    Attributes:
        code: The gRPC status code (5: not found, 16: unauthenticated...).
        message: etcd's message (``etcdserver: requested lease not found``).
    """

    def __init__(self, code: int, message: str) -> None:
        """An error answer with gRPC ``code`` and ``message``."""
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


def _net_errors() -> tuple[type[BaseException], ...]:
    import http.client  # noqa: PLC0415 - imported on first use

    return (OSError, http.client.HTTPException, ValueError)


# Connections a forked child inherited from its parent, kept referenced so that no
# finalizer or garbage collection touches them.
_INHERITED: list[object] = []


def _close_idle(idle: list[tuple[int, http.client.HTTPConnection]]) -> None:
    for _, conn in idle:
        conn.close()
    idle.clear()


class Gateway:
    """Calls to one etcd cluster through its JSON gateway.

    Thread-safe: a connection is used by one call at a time. A forked child starts
    with an empty pool and never touches its parent's connections.

    Attributes:
        endpoints: ``(host, port)`` of each member, tried in order.
        shown: The URL without its password, for messages.
        timeout: Seconds one call may take (connect, send, answer).
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        *,
        shown: str,
        timeout: float,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        """Prepare calls to ``endpoints``; nothing connects yet."""
        self.endpoints = endpoints
        self.shown = shown
        self.timeout = timeout
        self.tls = tls
        self._tls_files = (ca_file, cert_file, key_file)
        self._context: ssl.SSLContext | None = None
        self._user = user
        self._password = password
        self._token: str | None = None
        self._idle: list[tuple[int, http.client.HTTPConnection]] = []
        self._lock = _thread.allocate_lock()
        self._pid = os.getpid()
        self._preferred = 0  # the endpoint that answered last
        # Idle connections are closed with the gateway, or at exit, never left to the GC.
        self._finalizer = weakref.finalize(self, _close_idle, self._idle)

    # -- connections --------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            import ssl  # noqa: PLC0415 - only TLS URLs need it

            ca_file, cert_file, key_file = self._tls_files
            context = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                context.load_cert_chain(cert_file, key_file)
            self._context = context
        return self._context

    def connect(self, index: int, timeout: float) -> http.client.HTTPConnection:
        """A new connection to endpoint ``index`` (connected, so refusals show here)."""
        import http.client  # noqa: PLC0415 - imported on first use

        host, port = self.endpoints[index]
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.connect()
        return conn

    def _get(self) -> tuple[int, http.client.HTTPConnection] | None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the parent's connections are its own; drop ours.
                # The parent's connections: never used, closed or collected here.
                _INHERITED.append(self._idle)
                self._idle, self._pid, self._token = [], os.getpid(), None
                self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _close_idle, self._idle)
            return self._idle.pop() if self._idle else None

    def _put(self, index: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < MAX_IDLE:
                self._idle.append((index, conn))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _close_idle(idle)

    # -- calls --------------------------------------------------------------------------

    def call(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` and return the decoded answer.

        Authenticates first when the URL has a user, and again once when etcd says the
        token is no longer valid.

        Raises:
            BackendUnavailable: No endpoint answered within ``timeout``.
            GatewayError: etcd answered with an error.
        """
        if self._user is not None and self._token is None:
            self._authenticate(timeout)
        try:
            return self._call(path, body, timeout)
        except GatewayError as exc:
            if exc.code != UNAUTHENTICATED or self._user is None:
                raise
        self._token = None  # expired (etcd's simple tokens live 5 minutes idle)
        self._authenticate(timeout)
        return self._call(path, body, timeout)

    def _authenticate(self, timeout: float | None) -> None:
        answer = self._call(
            "auth/authenticate", {"name": self._user, "password": self._password}, timeout
        )
        self._token = str(answer["token"])

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = self._token
        return headers

    def _call(self, path: str, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        import json  # noqa: PLC0415 - imported on first use

        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        data = json.dumps(body).encode()
        errors = _net_errors()
        last: BaseException | None = None
        # A reused connection may have died while idle (a server restart): one more
        # try on a fresh connection, then each endpoint once.
        pooled = self._get()
        tries = len(self.endpoints) + (pooled is not None)
        for attempt in range(tries):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if attempt == 0 and pooled is not None:
                index, conn = pooled
            else:
                index = (self._preferred + attempt - (pooled is not None)) % len(self.endpoints)
                try:
                    conn = self.connect(index, remaining)
                except errors as exc:
                    last = exc
                    continue
            try:
                conn.sock.settimeout(remaining)
                conn.request("POST", f"/v3/{path}", data, self._headers())
                response = conn.getresponse()
                text = response.read()
            except errors as exc:
                conn.close()
                last = exc
                continue
            if response.will_close:
                conn.close()
            else:
                self._put(index, conn)
            self._preferred = index
            answer: dict[str, Any] = json.loads(text) if text else {}
            if response.status != 200:  # noqa: PLR2004 - HTTP OK
                code = int(answer.get("code", 2))
                message = str(answer.get("message") or answer.get("error") or response.reason)
                if code in _UNAVAILABLE_CODES:
                    raise BackendUnavailable(f"etcd at {self.shown} is unavailable: {message}")
                raise GatewayError(code, message)
            return answer
        raise self.unavailable(last, limit)

    def unavailable(self, exc: BaseException | None, limit: float) -> BackendUnavailable:
        """The error for a call that no endpoint answered."""
        from lockkit._redact import redact_text  # noqa: PLC0415

        if exc is None:
            detail = f"no answer within {limit:g} s"
        else:
            detail = redact_text(str(exc).strip()) or type(exc).__name__
        return BackendUnavailable(f"cannot reach etcd at {self.shown}: {detail}")

    def watch(self, body: dict[str, Any], deadline: float) -> Watch:
        """Open a watch stream (``/v3/watch``) on a connection of its own.

        Raises:
            BackendUnavailable: No endpoint accepted the stream before ``deadline``.
        """
        import json  # noqa: PLC0415

        if self._user is not None and self._token is None:
            self._authenticate(None)
        errors = _net_errors()
        last: BaseException | None = None
        for attempt in range(len(self.endpoints)):
            index = (self._preferred + attempt) % len(self.endpoints)
            remaining = min(deadline - time.monotonic(), self.timeout)
            if remaining <= 0:
                break
            try:
                conn = self.connect(index, remaining)
                conn.request("POST", "/v3/watch", json.dumps(body).encode(), self._headers())
                response = conn.getresponse()
            except errors as exc:
                last = exc
                continue
            if response.status != 200:  # noqa: PLR2004
                conn.close()
                if response.status == 401:  # noqa: PLR2004 - an expired token
                    self._token = None
                raise GatewayError(UNAUTHENTICATED, f"watch refused: HTTP {response.status}")
            return Watch(conn, response)
        raise self.unavailable(last, self.timeout)


class Watch:
    """One open watch stream: `next` reads its messages; `close` ends it (any thread)."""

    def __init__(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        """Wrap the connection and its streaming response."""
        self.conn = conn
        self.response = response

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next message's ``result``, or ``None`` at ``deadline`` or if the stream ended."""
        import json  # noqa: PLC0415

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock = self.conn.sock
        if sock is None:
            return None
        try:
            # No limit for an endless wait: the stream itself is the wake-up.
            sock.settimeout(None if remaining == float("inf") else remaining)
            line = self.response.readline()
        except _net_errors():
            return None
        if not line.strip():
            return None
        message: dict[str, Any] = json.loads(line)
        result: dict[str, Any] = message.get("result") or {"canceled": True, "error": message}
        return result

    def close(self) -> None:
        """End the stream: shut the socket down, which also wakes a blocked `next`."""
        import socket  # noqa: PLC0415

        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
