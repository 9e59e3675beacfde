"""A lockkit backend plugin: locks as etcd keys bound to leases (``etcd://host:port``).

Select it with ``LOCKKIT_URL=etcd://127.0.0.1:2379`` (several members comma-separated,
``etcds://`` or ``?tls=1`` for TLS, ``user:password@`` for etcd's authentication). It
speaks to etcd's v3 JSON gateway (``/v3/...``, etcd 3.4 or later) with the standard
library's ``http.client``: no gRPC, no protobuf, nothing imported until a lock is used.

**Key.** Lock ``name`` is the key ``prefix + name`` (``?prefix=``, default
``lockkit/``); a path under ``root`` becomes relative to it, as for every server backend.

**Acquire.** Grant a lease of the lock's ``ttl`` (default 10 s, renewed by the core
every third of it), then one transaction: *if the key's create revision is 0 (it does
not exist), put the holder's payload bound to that lease, else read the key*. The
lease expires on the server if the holder stops renewing it, and etcd deletes the key
with it.

**Fencing.** The token is the key's create revision: etcd's revision counter, which
grows with every write to the cluster and is never reused, survives restarts (it is in
the raft log) and is the same on every member. A key created later has a larger one, so
tokens strictly increase from holder to holder.

**Renewal and loss.** The core renews every ``ttl / 3``: a lease keep-alive, which must
answer a TTL above zero, then a transaction that rewrites the payload only if the key
still has our create revision (which also gives the holding a new version, the mod
revision). A keep-alive that etcd refuses, a key that is gone or was re-created, or a
server that does not answer before the lease would end (stopped, frozen, unreachable)
makes the lock *lost*: ``Lock.is_held()`` turns false and ``on_lost`` fires.

**Crash.** A holder killed with SIGKILL stops renewing: etcd deletes its key when the
lease expires, at most ``ttl`` later (``released_on_crash`` is therefore off: the
server frees the lock, but only after the TTL). A waiter on the same machine does not
wait that long: the core sees the holder's pid is dead and breaks the lock at once.

**Waiting.** A waiter watches the key for its deletion from the revision at which its
attempt saw it held, so no deletion in between is missed: a release, an expiry or a
break wakes it at once, without polling.

**Release and break** compare the create revision (and, to break, the mod revision)
in a transaction before deleting, so they never remove a lock that changed hands; the
lease is revoked afterwards.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar, Self

from lockkit.errors import BackendUnavailable, InvalidLockName, SettingsError
from lockkit.spec import Backend, Capabilities, Support, Waiter, hookimpl

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from lockkit import Lease, LockInfo, Owner
    from lockkit_etcd._client import Gateway, Watch

__all__ = ["DEFAULT_TTL", "EtcdBackend", "EtcdWaiter", "lockkit_register_backends", "parse_url"]

__version__ = "0.1.0"

DEFAULT_TTL = 10.0
"""Seconds a lease lives without renewal when the lock has no ``ttl`` of its own."""
DEFAULT_PREFIX = "lockkit/"
"""The prefix of every lock's key when the URL names none."""
DEFAULT_TIMEOUT = 5.0
"""Seconds one call may take before the server counts as unresponsive."""
DEFAULT_PORT = 2379
_OUR_OPTIONS = ("prefix", "ttl", "timeout", "root", "tls", "ca", "cert", "key")
_IDENTITY_PARTS = 2  # (create revision, mod revision)
_TRUE = ("1", "true", "yes", "on")


def _utc_in(seconds: float) -> dt.datetime:
    import datetime as dt  # noqa: PLC0415 - not on the import path of `lockkit backends`

    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _lease_seconds(ttl: float) -> int:
    """Lease TTLs are whole seconds in etcd (the server raises them to its minimum)."""
    return max(1, math.ceil(ttl))


class _Held:
    """A lease's handle: the etcd lease its key is bound to, and who may use it."""

    __slots__ = ("key", "lease_id", "pid", "token", "ttl")

    def __init__(self, key: bytes, lease_id: int, token: str, ttl: float) -> None:
        self.key = key
        self.lease_id = lease_id
        self.token = token
        self.ttl = ttl
        self.pid = os.getpid()


def _endpoints(authority: str, shown: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (``[IPv6]:port`` too) as ``(host, port)`` pairs."""
    endpoints: list[tuple[str, int]] = []
    for part in authority.split(","):
        host, port_text = part, ""
        if part.startswith("["):
            host, _, tail = part[1:].partition("]")
            port_text = tail.removeprefix(":")
        elif ":" in part:
            host, _, port_text = part.rpartition(":")
        if not host or (port_text and not port_text.isdigit()):
            raise SettingsError(f"bad etcd endpoint {part!r} in {shown}: use host:port")
        endpoints.append((host, int(port_text) if port_text else DEFAULT_PORT))
    return endpoints


def _seconds(options: dict[str, str], shown: str) -> dict[str, float]:
    """The ``ttl`` and ``timeout`` options as `EtcdBackend` arguments."""
    kwargs: dict[str, float] = {}
    for key, setting in (("ttl", "default_ttl"), ("timeout", "timeout")):
        if key in options:
            try:
                value = float(options[key])
            except ValueError:
                value = math.nan
            if not (value > 0 and math.isfinite(value)):
                raise SettingsError(
                    f"{key}={options[key]!r} in etcd URL {shown} must be a positive number "
                    "of seconds"
                )
            kwargs[setting] = value
    return kwargs


def parse_url(url: str) -> dict[str, Any]:
    """Split an ``etcd://`` or ``etcds://`` URL into the `EtcdBackend` arguments.

    Raises:
        SettingsError: Not an etcd URL, a bad port, or a bad option value.
    """
    import urllib.parse  # noqa: PLC0415

    from lockkit._redact import redact_url  # noqa: PLC0415

    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in EtcdBackend.schemes:
        raise SettingsError(f"not an etcd URL: {shown} (etcd://host:port[,host:port...])")
    # The userinfo runs to the last "@" before the query: a password may hold anything.
    query_at = rest.find("?", rest.rfind("@") + 1)
    authority, query_text = (rest, "") if query_at < 0 else (rest[:query_at], rest[query_at + 1 :])
    authority = authority.rstrip("/")
    user = password = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user_text, _, password_text = userinfo.partition(":")
        user = urllib.parse.unquote(user_text)
        password = urllib.parse.unquote(password_text)
    endpoints = _endpoints(authority, shown)
    options = dict(urllib.parse.parse_qsl(query_text, keep_blank_values=True))
    unknown = sorted(set(options) - set(_OUR_OPTIONS))
    if unknown:
        raise SettingsError(
            f"unknown option(s) {', '.join(unknown)} in etcd URL {shown}; known: "
            f"{', '.join(_OUR_OPTIONS)}"
        )
    kwargs: dict[str, Any] = {
        "endpoints": endpoints,
        "shown": shown,
        "user": user,
        "password": password,
        "tls": scheme == "etcds" or options.get("tls", "").lower() in _TRUE,
    }
    kwargs.update(_seconds(options, shown))
    for key, setting in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
        if options.get(key):
            kwargs[setting] = options[key]
            kwargs["tls"] = True
    if "prefix" in options:
        kwargs["prefix"] = options["prefix"]
    if options.get("root"):
        kwargs["root"] = options["root"]
    return kwargs


def _create_txn(key: bytes, value: str, lease_id: int) -> dict[str, Any]:
    """If ``key`` does not exist, put ``value`` bound to the lease; else read the key."""
    from lockkit_etcd._client import b64  # noqa: PLC0415

    encoded = b64(key)
    return {
        "compare": [{"target": "CREATE", "key": encoded, "create_revision": "0"}],
        "success": [{"request_put": {"key": encoded, "value": value, "lease": str(lease_id)}}],
        "failure": [{"request_range": {"key": encoded}}],
    }


class EtcdWaiter(Waiter):
    """Waits by watching the key for its deletion, from the revision last seen held.

    It also keeps the lease granted for a failed attempt, so the next attempt of the
    same acquisition reuses it while it is young; `close` revokes one nobody took.
    """

    __slots__ = ("backend", "lease", "revision", "stream")

    def __init__(self, backend: EtcdBackend, name: str) -> None:
        """A waiter for ``name``; it watches on the first `wait`, not here."""
        super().__init__(name)
        self.backend = backend
        self.revision = 0  # the revision at which an attempt saw the key held
        self.lease: tuple[int, float, float] | None = None  # (id, ttl, granted at)
        self.stream: Watch | None = None

    def wait(self, deadline: float) -> bool:
        """Block until the key is deleted (``True``) or ``deadline`` passes (``False``)."""
        from lockkit_etcd._client import b64  # noqa: PLC0415

        if self.revision == 0:
            # No attempt told us what it saw: the base class's bounded poll.
            return super().wait(deadline)
        backend = self.backend
        request = {
            "create_request": {
                "key": b64(backend.key(self.name)),
                "start_revision": str(self.revision + 1),
                "filters": ["NOPUT"],
            }
        }
        try:
            stream = backend.gateway.watch(request, deadline)
        except Exception:  # noqa: BLE001 - the next attempt reports an unreachable server
            return False
        self.stream = stream
        try:
            while True:
                result = stream.next(deadline)
                if result is None:
                    return False  # the deadline, or the stream broke
                if result.get("canceled") or result.get("compact_revision"):
                    return True  # history compacted away: look again
                if result.get("events"):
                    return True  # a DELETE (puts are filtered out)
        finally:
            self.stream = None
            stream.close()

    def close(self) -> None:
        """End a watch in progress and revoke a lease no attempt took."""
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()
        lease, self.lease = self.lease, None
        if lease is not None:
            self.backend.revoke(lease[0])


class EtcdBackend(Backend):
    """etcd keys bound to leases, created by a transaction only if absent."""

    name: ClassVar[str] = "etcd"
    description: ClassVar[str] = (
        "etcd keys bound to leases: fencing by create revision, waits by watching the key"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        across_hosts=True, released_on_crash=False, ttl=True, fencing=True, notify=True
    )
    schemes: ClassVar[tuple[str, ...]] = ("etcd", "etcds")
    eager_waiter: ClassVar[bool] = True
    """The first attempt of a caller that will wait already records the revision to
    watch from."""

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        *,
        shown: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        default_ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        user: str | None = None,
        password: str | None = None,
        root: str | None = None,
    ) -> None:
        """Connect lazily to the etcd members at ``endpoints``.

        Args:
            endpoints: ``(host, port)`` of each member; calls go to the first that answers.
            shown: The URL without its password, for messages.
            prefix: Put before every lock name to make its key.
            default_ttl: Lifetime of a lease that has no ``ttl`` of its own; the core
                renews it every third of that.
            timeout: Seconds one call may take before the server counts as unresponsive.
            tls: Connect with HTTPS.
            ca_file: CA certificates to trust (default: the system's).
            cert_file: A client certificate (with ``key_file``), for etcd's
                ``--client-cert-auth``.
            key_file: The client certificate's key.
            user: etcd user name, when authentication is enabled.
            password: Its password (never shown).
            root: Lock paths under this directory become names relative to it (default:
                the settings' ``root``, else OpenClaw's state directory).
        """
        from lockkit_etcd._client import Gateway  # noqa: PLC0415

        if not endpoints:
            raise SettingsError("an etcd URL needs at least one host:port")
        scheme = "etcds" if tls else "etcd"
        self.shown = shown or f"{scheme}://" + ",".join(f"{h}:{p}" for h, p in endpoints)
        self.prefix = prefix
        self.default_ttl = default_ttl
        self.timeout = timeout
        self.root = root or _default_root()
        self.gateway: Gateway = Gateway(
            endpoints,
            shown=self.shown,
            timeout=timeout,
            tls=tls,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            user=user,
            password=password,
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from ``etcd://[user:password@]host:port[,host:port...][?options]``.

        Options: ``prefix`` (default ``lockkit/``), ``ttl`` (default lease seconds, 10),
        ``timeout`` (seconds per call, 5), ``tls=1`` (or the ``etcds://`` scheme),
        ``ca``, ``cert`` and ``key`` (files; any of them implies TLS) and ``root``.
        """
        return cls(**parse_url(url))

    def __repr__(self) -> str:
        """Show the servers without the password."""
        return f"<EtcdBackend {self.shown} prefix={self.prefix!r}>"

    def close(self) -> None:
        """Close the idle connections."""
        self.gateway.close()

    # -- names and keys --------------------------------------------------------------------

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """A path under ``root`` becomes relative to it; other names are kept as they are."""
        text = os.fspath(name)
        if not text or "\0" in text:
            raise InvalidLockName(f"lock name {text!r} is empty or contains NUL")
        if os.path.isabs(text):
            relative = os.path.relpath(text, self.root)
            if not relative.startswith(os.pardir):
                text = relative.replace(os.sep, "/")
        return text

    def key(self, name: str) -> bytes:
        """The etcd key of lock ``name``."""
        return (self.prefix + name).encode()

    # -- calls -----------------------------------------------------------------------------

    def _call(
        self, path: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """A gateway call; an error answer other than "not found" is `BackendUnavailable`."""
        from lockkit_etcd._client import GatewayError  # noqa: PLC0415

        try:
            return self.gateway.call(path, body, timeout=timeout)
        except GatewayError as exc:
            raise BackendUnavailable(f"etcd at {self.shown} refused {path}: {exc}") from None

    def grant(self, ttl: float) -> int:
        """A new lease of ``ttl`` seconds (whole, at least the server's minimum)."""
        answer = self._call("lease/grant", {"TTL": str(_lease_seconds(ttl))})
        return int(answer["ID"])

    def revoke(self, lease_id: int) -> None:
        """Revoke a lease (deleting the keys bound to it); errors are ignored."""
        from lockkit_etcd._client import GatewayError  # noqa: PLC0415

        # Not found: already expired; unreachable: it expires by itself.
        with contextlib.suppress(GatewayError, BackendUnavailable):
            self.gateway.call("lease/revoke", {"ID": str(lease_id)})

    def _payload(self, owner: Owner, expires: dt.datetime) -> str:
        from lockkit.backends._payload import encode_payload  # noqa: PLC0415
        from lockkit_etcd._client import b64  # noqa: PLC0415

        return b64(encode_payload(owner, self.name, expires))

    # -- operations --------------------------------------------------------------------------

    def try_acquire(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool = False,
        waiter: Waiter | None = None,
    ) -> Lease | None:
        """Grant a lease, then create the key bound to it only if it does not exist."""
        from lockkit.backends._payload import decode_payload  # noqa: PLC0415
        from lockkit_etcd._client import GatewayError, unb64  # noqa: PLC0415

        del shared  # not a capability: the core never asks
        ttl = ttl or self.default_ttl
        ours = waiter if isinstance(waiter, EtcdWaiter) else None
        key = self.key(name)
        lease_id = self._young_lease(ours, ttl)
        started = time.monotonic()
        expires = _utc_in(ttl)  # reckoned before the grant: the lease cannot end earlier
        if lease_id is None:
            lease_id = self.grant(ttl)
        txn = _create_txn(key, self._payload(owner, expires), lease_id)
        try:
            answer = self._call_txn(txn)
        except GatewayError as exc:
            # The lease is gone (expired while we waited): one more try with a new one.
            lease_id = self.grant(ttl)
            started = time.monotonic()
            expires = _utc_in(ttl)
            txn = _create_txn(key, self._payload(owner, expires), lease_id)
            try:
                answer = self._call_txn(txn)
            except GatewayError:
                self.revoke(lease_id)
                raise BackendUnavailable(f"etcd at {self.shown} refused the lock: {exc}") from None
        except BaseException:
            self.revoke(lease_id)
            raise
        revision = int(answer["header"]["revision"])
        if answer.get("succeeded"):
            return self._lease(name, owner, ttl, key, lease_id, revision, expires)
        kvs = answer["responses"][0]["response_range"].get("kvs") or []
        if kvs:
            held = decode_payload(unb64(kvs[0].get("value", "")))
            if held.owner is not None and held.owner.token == owner.token:
                # Our own put, whose answer was lost and the call retried.
                fence = int(kvs[0]["create_revision"])
                return self._lease(name, owner, ttl, key, lease_id, fence, expires)
        if ours is not None:
            ours.revision = revision
            ours.lease = (lease_id, ttl, started)
        else:
            self.revoke(lease_id)
        return None

    def _young_lease(self, waiter: EtcdWaiter | None, ttl: float) -> int | None:
        """The lease a waiter kept from its last attempt, if young and of this ttl."""
        if waiter is None or waiter.lease is None:
            return None
        lease_id, lease_ttl, granted_at = waiter.lease
        waiter.lease = None
        # Only a young lease: the core renews it from the acquisition on.
        if lease_ttl == ttl and time.monotonic() - granted_at <= ttl / 4:
            return lease_id
        self.revoke(lease_id)
        return None

    def _call_txn(self, txn: dict[str, Any]) -> dict[str, Any]:
        """A transaction; a "lease not found" answer is raised as `GatewayError`."""
        from lockkit_etcd._client import NOT_FOUND, GatewayError  # noqa: PLC0415

        try:
            return self.gateway.call("kv/txn", txn)
        except GatewayError as exc:
            if exc.code == NOT_FOUND:
                raise
            raise BackendUnavailable(f"etcd at {self.shown} refused a transaction: {exc}") from None

    def _lease(  # noqa: PLR0917
        self,
        name: str,
        owner: Owner,
        ttl: float,
        key: bytes,
        lease_id: int,
        fence: int,
        expires: dt.datetime,
    ) -> Lease:
        from lockkit import Lease  # noqa: PLC0415

        return Lease(
            name,
            self.name,
            owner,
            expires=expires,
            fencing_token=fence,
            identity=(fence,),
            ttl=ttl,
            handle=_Held(key, lease_id, owner.token, ttl),
        )

    def _holding(self, lease: Lease) -> _Held | None:
        held = lease.handle
        if not isinstance(held, _Held):
            return None
        if held.pid != os.getpid() or held.token != lease.token:
            return None  # a parent's lease in a forked child, or a forged one
        return held

    def release(self, lease: Lease) -> bool:
        """Delete the key if it is still ours (same create revision), then revoke the lease."""
        from lockkit_etcd._client import b64  # noqa: PLC0415

        held = self._holding(lease)
        if held is None or lease.fencing_token is None:
            return False
        txn = {
            "compare": [
                {
                    "target": "CREATE",
                    "key": b64(held.key),
                    "create_revision": str(lease.fencing_token),
                }
            ],
            "success": [{"request_delete_range": {"key": b64(held.key)}}],
        }
        try:
            answer = self._call("kv/txn", txn)
        except BackendUnavailable as exc:
            # The lease ends by itself (the core no longer renews it): lost, not raised.
            import logging  # noqa: PLC0415

            logging.getLogger("lockkit").warning(
                "lockkit: releasing %s at %s failed; etcd frees it when its lease expires: %s",
                lease.name,
                self.shown,
                exc,
            )
            return False
        finally:
            self.revoke(held.lease_id)
        return bool(answer.get("succeeded"))

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Keep the lease alive and rewrite the payload if the key is still ours.

        With a ``ttl`` other than the lease's, the key moves to a new lease of that ttl
        (etcd leases keep the TTL they were granted with). ``False`` (lost) when etcd
        refuses the keep-alive, the key is gone or re-created, or the server does not
        answer before the lease would end.
        """
        import logging  # noqa: PLC0415

        from lockkit_etcd._client import GatewayError  # noqa: PLC0415

        held = self._holding(lease)
        if held is None or lease.fencing_token is None:
            return False
        log = logging.getLogger("lockkit")
        remaining = (lease.expires - _utc_in(0)).total_seconds() if lease.expires else ttl
        # Never past the lease's end: from then on, others may hold the lock.
        timeout = max(0.1, min(self.timeout, remaining - 0.5))
        try:
            ok = self._renew(lease, held, ttl, timeout)
        except (GatewayError, BackendUnavailable) as exc:
            log.warning("lockkit: lock %s is lost: %s", lease.name, exc)
            return False
        if not ok:
            log.warning(
                "lockkit: lock %s is lost: its etcd lease expired or its key changed hands",
                lease.name,
            )
        return ok

    def _renew(self, lease: Lease, held: _Held, ttl: float, timeout: float) -> bool:
        from lockkit_etcd._client import b64  # noqa: PLC0415

        old_id = held.lease_id
        if ttl == held.ttl:
            answer = self.gateway.call("lease/keepalive", {"ID": str(old_id)}, timeout=timeout)
            if int(answer.get("result", {}).get("TTL", 0)) <= 0:
                return False
            lease_id = old_id
        else:
            lease_id = self.grant(ttl)
        expires = _utc_in(ttl)
        txn = {
            "compare": [
                {
                    "target": "CREATE",
                    "key": b64(held.key),
                    "create_revision": str(lease.fencing_token),
                }
            ],
            "success": [
                {
                    "request_put": {
                        "key": b64(held.key),
                        "value": self._payload(lease.owner, expires),
                        "lease": str(lease_id),
                    }
                }
            ],
        }
        try:
            answer = self.gateway.call("kv/txn", txn, timeout=timeout)
        except BaseException:
            if lease_id != old_id:
                self.revoke(lease_id)
            raise
        if not answer.get("succeeded"):
            if lease_id != old_id:
                self.revoke(lease_id)
            return False
        if lease_id != old_id:
            held.lease_id, held.ttl = lease_id, ttl
            self.revoke(old_id)
        return True

    def inspect(self, name: str) -> LockInfo | None:
        """The holder's payload, fencing token and the time its lease has left."""
        from lockkit import LockInfo  # noqa: PLC0415
        from lockkit.backends._payload import decode_payload  # noqa: PLC0415
        from lockkit_etcd._client import b64, unb64  # noqa: PLC0415

        answer = self._call("kv/range", {"key": b64(self.key(name))})
        kvs = answer.get("kvs") or []
        if not kvs:
            return None
        kv = kvs[0]
        left = 0.0
        if kv.get("lease"):
            alive = self._call("lease/timetolive", {"ID": kv["lease"]})
            left = max(0.0, float(alive.get("TTL", -1)))
        payload = decode_payload(unb64(kv.get("value", "")))
        age = None
        if payload.owner is not None and payload.owner.created is not None:
            age = max(0.0, time.time() - payload.owner.created.timestamp())
        fence = int(kv["create_revision"])
        return LockInfo(
            name,
            self.name,
            payload.owner,
            expires=_utc_in(left),
            fencing_token=fence,
            identity=(fence, int(kv["mod_revision"])),
            age=age,
            problem=payload.problem,
        )

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete the key only while it is exactly ``expected`` (token, create and mod revision)."""
        from lockkit.backends._payload import decode_payload  # noqa: PLC0415
        from lockkit_etcd._client import b64, unb64  # noqa: PLC0415

        identity = expected.identity
        if identity is None or len(identity) != _IDENTITY_PARTS:
            return False
        create, mod = identity
        key = b64(self.key(name))
        # The token is inside the payload, which a compare cannot look into: read the
        # version judged stale, check its holder, then delete only that version.
        kvs = self._call("kv/range", {"key": key}).get("kvs") or []
        if not kvs or (int(kvs[0]["create_revision"]), int(kvs[0]["mod_revision"])) != (
            create,
            mod,
        ):
            return False
        holder = decode_payload(unb64(kvs[0].get("value", ""))).owner
        expected_token = expected.owner.token if expected.owner is not None else None
        if (holder.token if holder is not None else None) != expected_token:
            return False
        txn = {
            "compare": [
                {"target": "CREATE", "key": key, "create_revision": str(create)},
                {"target": "MOD", "key": key, "mod_revision": str(mod)},
            ],
            "success": [{"request_delete_range": {"key": key, "prev_kv": True}}],
        }
        answer = self._call("kv/txn", txn)
        if not answer.get("succeeded"):
            return False
        deleted = answer["responses"][0]["response_delete_range"]
        for kv in deleted.get("prev_kvs") or []:
            if kv.get("lease"):
                # The old holder learns of it at its next keep-alive.
                self.revoke(int(kv["lease"]))
        return True

    def waiter(self, name: str) -> Waiter:
        """A waiter that watches the key (see `EtcdWaiter`)."""
        return EtcdWaiter(self, name)

    @classmethod
    def probe(cls, location: str) -> Support:
        """A directory says nothing about etcd: it must be configured by URL."""
        del location
        return Support(ok=False, reason="needs a server URL: LOCKKIT_URL=etcd://host:2379")


def _default_root() -> str:
    from lockkit._settings import load_settings, openclaw_state_dir  # noqa: PLC0415

    settings = load_settings()
    return (settings.root if settings else None) or openclaw_state_dir()


@hookimpl
def lockkit_register_backends() -> Iterable[type[Backend]]:
    """Provide the ``etcd`` backend (nothing network-related is imported until used)."""
    return [EtcdBackend]
