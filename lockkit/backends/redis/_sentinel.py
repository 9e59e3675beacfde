"""Redis behind Sentinel: ``redis+sentinel://`` URLs, the primary found and followed.

A URL names the sentinels and the service (Sentinel's "master name")::

    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?options]

``rediss+sentinel://`` speaks TLS to the sentinels and the servers alike (``valkey+``
spellings are accepted). The user name and password are the servers'; sentinels that
want their own are given ``sentinel_username=`` and ``sentinel_password=``. Other
options are redis-py's, for both (``socket_timeout``, ``ssl_ca_certs``...).

**Following a failover.** Connections are redis-py's ``SentinelManagedConnection``:
each one asks the sentinels for the primary when it connects, and one that meets a
demoted primary (``READONLY``, or ``UNBLOCKED``) drops itself, so the next command asks
again. `RedisBackend.call` re-runs a command that failed so (`transient`) until the
acquisition's deadline, or ``failover_timeout`` for a release; every lock script is
safe to re-run (a re-sent acquisition recognises its own key, see `._scripts`).

What a failover does to a held lock: replication is asynchronous, so a primary that
dies right after granting a lock can be replaced by a replica that never saw it, and
a second holder can get it. ``min_replicas=N`` (see `RedisBackend`) closes that gap
with ``WAIT``; `failover_warnings` says when it is open.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from lockkit._redact import redact_url
from lockkit.errors import SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "SCHEMES",
    "Topology",
    "async_pool",
    "describe",
    "failover_warnings",
    "is_sentinel_url",
    "online_replicas",
    "pool_kwargs",
    "sync_pool",
    "transient",
]

SCHEMES = ("redis+sentinel", "rediss+sentinel", "valkey+sentinel", "valkeys+sentinel")
"""URL schemes of a Sentinel-managed service."""

_PREFIXES = tuple(f"{scheme}://" for scheme in SCHEMES)
_DEFAULT_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names a Sentinel-managed service."""
    return url[:20].lower().startswith(_PREFIXES)


class Topology:
    """What `pool_kwargs` read from a ``redis+sentinel://`` URL.

    Attributes:
        sentinels: ``(host, port)`` of every sentinel, in the URL's order.
        service: The service (master) name the sentinels monitor.
        connection: redis-py keyword arguments for the servers' connections.
        sentinel: redis-py keyword arguments for the sentinels' connections.
        manager: The redis-py ``Sentinel`` asking them (set by `sync_pool`, `async_pool`).
    """

    __slots__ = ("connection", "manager", "sentinel", "sentinels", "service")

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        service: str,
        connection: dict[str, Any],
        sentinel: dict[str, Any],
    ) -> None:
        """Hold the parts (`pool_kwargs` builds them)."""
        self.sentinels = sentinels
        self.service = service
        self.connection = connection
        self.sentinel = sentinel
        self.manager: Any = None  # the redis-py Sentinel, once a pool was built

    def __repr__(self) -> str:
        """The sentinels and the service; never a password."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"<Topology sentinels={hosts} service={self.service!r}>"


def _hosts(text: str, url: str) -> list[tuple[str, int]]:
    found = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            port = int(port_text) if port_text else _DEFAULT_PORT
        except ValueError:
            port = -1
        if not host or not 0 < port < 65536:  # noqa: PLR2004 - the port range
            raise SettingsError(
                f"invalid sentinel address {item!r} in Redis URL {redact_url(url)}: "
                "give host:port pairs separated by commas"
            )
        found.append((host, port))
    return found


def pool_kwargs(url: str) -> Topology:
    """Parse a ``redis+sentinel://`` URL (options as redis-py's ``from_url`` reads them).

    Raises:
        SettingsError: No sentinel, no service name, a bad port, db or option (the URL
            is shown without its password).
    """
    from redis import connection  # redis-py is imported lazily

    parse_url: Any = connection.parse_url
    scheme, _, rest = url.partition("://")
    tls = scheme.lower().startswith(("rediss", "valkeys"))
    # The authority ends at the first "/" after the userinfo (a password may hold one
    # only percent-encoded, as in any URL).
    at = rest.rfind("@", 0, rest.find("/", rest.rfind("@") + 1) if "/" in rest else len(rest))
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    authority, slash, path = hostpart.partition("/")
    path, _, query = path.partition("?")
    if not slash and "?" in authority:
        authority, _, query = authority.partition("?")
    sentinels = _hosts(authority, url)
    if not sentinels:
        raise SettingsError(
            f"Redis URL {redact_url(url)} names no sentinel: "
            "redis+sentinel://host:26379[,host:26379...]/service"
        )
    service, _, db_text = urllib.parse.unquote(path).partition("/")
    if not service:
        raise SettingsError(
            f"Redis URL {redact_url(url)} names no service: add the name the sentinels "
            "monitor (`sentinel monitor NAME ...`) as its path, redis+sentinel://host:26379/NAME"
        )
    # redis-py parses the userinfo, db and options (typed) from an ordinary URL.
    plain = f"redis://{userinfo + '@' if userinfo else ''}127.0.0.1/{db_text}"
    try:
        if db_text and not db_text.isdigit():
            raise ValueError(f"the database {db_text!r} is not a number")  # noqa: TRY301
        options = parse_url(f"{plain}?{query}" if query else plain)
    except ValueError as exc:
        reason = str(exc) if not userinfo else "it cannot be parsed (percent-encode the password)"
        raise SettingsError(f"invalid Redis URL {redact_url(url)}: {reason}") from None
    options.pop("host", None)
    options.pop("port", None)
    options.pop("connection_class", None)
    sentinel: dict[str, Any] = {
        key: value
        for key, value in options.items()
        if key.startswith(("socket_", "ssl_")) or key == "protocol"
    }
    for ours in ("username", "password"):
        value = options.pop(f"sentinel_{ours}", None)
        if value is not None:
            sentinel[ours] = value
    if tls:
        options["ssl"] = True
        sentinel["ssl"] = True
    return Topology(sentinels, service, options, sentinel)


def _retry_none() -> Any:  # noqa: ANN401 - a redis-py Retry
    # lockkit decides retries (`transient`); redis-py's own would multiply timeouts.
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def sync_pool(url: str, bounded: Any, options: dict[str, Any]) -> tuple[Any, Topology]:  # noqa: ANN401
    """The primary's connection pool, and the `Topology` (its ``manager`` set).

    Args:
        url: The ``redis+sentinel://`` URL.
        bounded: `._conn.bounded_class`, applied to every connection class.
        options: Defaults for the servers' connections (overridden by the URL's).
    """
    from redis import sentinel as module

    return _pool(module, url, bounded, options, _retry_none)


def async_pool(url: str, bounded: Any, options: dict[str, Any]) -> tuple[Any, Topology]:  # noqa: ANN401
    """`sync_pool` for ``redis.asyncio`` (a pool of one event loop)."""
    from redis.asyncio import sentinel as module

    # redis.asyncio's connections take their own Retry class: redis-py's default.
    return _pool(module, url, bounded, options, None)


def _pool(
    module: Any,  # noqa: ANN401 - redis.sentinel or redis.asyncio.sentinel
    url: str,
    bounded: Any,  # noqa: ANN401
    options: dict[str, Any],
    retry: Callable[[], Any] | None,
) -> tuple[Any, Topology]:
    """The pool of ``module``'s Sentinel for ``url``; see `sync_pool`.

    ``retry`` makes the retry policy of the servers' and the sentinels' connections
    (a fresh one each: redis-py updates it per connection); ``None``: none is set.
    """
    topology = pool_kwargs(url)
    connection = {**options, **topology.connection}
    sentinel_kwargs = {
        **{k: v for k, v in options.items() if k.startswith("socket_")},
        **topology.sentinel,
    }
    if retry is None:
        connection.pop("retry", None)
    else:
        connection["retry"] = retry()
        sentinel_kwargs["retry"] = retry()
    manager = module.Sentinel(topology.sentinels, sentinel_kwargs=sentinel_kwargs, **connection)
    for client in manager.sentinels:
        client.connection_pool.connection_class = bounded(client.connection_pool.connection_class)
    pool = module.SentinelConnectionPool(topology.service, manager, **manager.connection_kwargs)
    pool.connection_class = bounded(pool.connection_class)
    topology.manager = manager
    return pool, topology


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is what a failover looks like, so the command may be re-run.

    No primary known yet (``MasterNotFoundError``), a primary that is gone (a refused,
    reset or timed-out connection), one demoted (``READONLY``, which redis-py turns into
    a ``ConnectionError``), one loading its data after a restart, one refusing writes
    because too few replicas are connected (``NOREPLICAS``, ``min-replicas-to-write``),
    or a cluster electing a master's replica (``CLUSTERDOWN``, ``TRYAGAIN``).
    """
    from redis import exceptions

    if isinstance(exc, (exceptions.ConnectionError, exceptions.TimeoutError, OSError)):
        return True
    if isinstance(exc, (exceptions.ReadOnlyError, exceptions.BusyLoadingError)):
        return True
    return isinstance(exc, exceptions.ResponseError) and str(exc).startswith(
        ("NOREPLICAS", "MASTERDOWN", "UNBLOCKED", "CLUSTERDOWN", "TRYAGAIN")
    )


def describe(topology: Topology) -> list[str]:
    """Lines for `lockkit doctor`: the primary, its replicas and the sentinels.

    Raises redis-py's errors when no sentinel answers.
    """
    service = topology.service
    errors = []
    for client in topology.manager.sentinels:
        try:
            master = client.sentinel_master(service)
            replicas = client.sentinel_slaves(service)
            others = client.sentinel_sentinels(service)
        except Exception as exc:  # noqa: BLE001 - the next sentinel may answer
            errors.append(exc)
            continue
        head = (
            f"sentinel service {service!r}: primary {master['ip']}:{master['port']} "
            f"({', '.join(_flags(master))}), quorum {master.get('quorum', '?')}, "
            f"{1 + len(others)} sentinel(s) known"
        )
        lines = [head]
        lines.extend(
            f"  replica {replica['ip']}:{replica['port']} ({', '.join(_flags(replica))}, "
            f"link {replica.get('master-link-status', '?')})"
            for replica in replicas
        )
        if not replicas:
            lines.append("  no replica: a failover has nothing to promote")
        return lines
    raise errors[-1] if errors else RuntimeError("no sentinel")


def _flags(state: dict[str, Any]) -> list[str]:
    flags = state.get("flags", "")
    if isinstance(flags, str):
        return [flag for flag in flags.split(",") if flag]
    return sorted(flags) if flags else ["ok"]


def online_replicas(info: dict[str, Any]) -> int:
    """Replicas online, from a primary's ``INFO replication`` (redis-py's parsed dict)."""
    count = 0
    for key, value in info.items():
        if key.startswith("slave") and key[5:].isdigit():
            state = value.get("state") if isinstance(value, dict) else None
            if state is None and isinstance(value, str):
                state = "online" if "state=online" in value else "?"
            count += state == "online"
    return count


def failover_warnings(service: str, online: int, min_replicas: int) -> list[str]:
    """Why a failover of ``service`` could lose a held lock (empty when it cannot).

    Args:
        service: The service name, for the message.
        online: Replicas online at the primary (`online_replicas`): the sentinels' own
            view of the replicas' links is refreshed only every 10 s.
        min_replicas: The backend's option.
    """
    if min_replicas == 0:
        return [
            (
                f"Sentinel service {service!r}: without min_replicas a lock granted just "
                "before the primary fails may be missing on the replica promoted in its "
                "place, and a second holder can get it; add ?min_replicas=1 to the URL so "
                "an acquisition counts only once a replica has it (WAIT)"
            )
        ]
    if online < min_replicas:
        return [
            (
                f"Sentinel service {service!r} has {online} replica(s) online but "
                f"min_replicas={min_replicas}: acquisitions fail until enough replicas are up"
            )
        ]
    if online > min_replicas:
        return [
            (
                f"Sentinel service {service!r} has {online} replicas online and "
                f"min_replicas={min_replicas}: a lock is confirmed on {min_replicas} of them, "
                "and Sentinel promotes the most up-to-date replica it can reach; were that "
                "one cut off, a replica without the lock could be promoted "
                f"(min_replicas={online} rules that out)"
            )
        ]
    return []
