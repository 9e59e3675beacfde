"""Redlock: fencing tokens strictly increase from holder to holder; is_held needs a quorum.

The counters of a Redlock live on independent servers. Taking the largest counter of
the quorum that said yes does not order holders: the next holder's quorum may lie
where the counters are low. The second round (`_FENCE`) raises every server's counter
to the token before the lease counts. See docs/how-to/distributed.md.
"""

from __future__ import annotations

import pytest

import lockkit
from lockkit._info import Owner
from lockkit.backends.redis import RedisBackend, RedlockBackend
from tests.helpers.fencing import run_fenced
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

FOREIGN = b'{"pid": 1, "token": "someone-else"}'


def _clients(servers: list[RedisServer]) -> list[object]:
    import redis

    return [redis.Redis.from_url(server.url) for server in servers]


def _keys(name: str) -> tuple[str, str]:
    """The lock key and the fencing counter (the layout in lockkit.backends.redis)."""
    return f"lockkit:{{{name}}}", f"lockkit:{{{name}}}:fence"


def _url(servers: list[RedisServer], query: str = "") -> str:
    return ",".join(server.url + query for server in servers)


def test_next_holder_on_other_servers_gets_a_larger_token(
    redlock_servers: list[RedisServer],
) -> None:
    # The interleaving that made tokens go backwards, set up by hand: A wins on s0 and
    # s1 where s0's counter is high; B then wins on s1 and s2, whose counters are low.
    s0, s1, s2 = _clients(redlock_servers)
    backend = RedisBackend([server.url for server in redlock_servers])
    key, fence = _keys("ordered")
    # Counters ahead of the servers' clocks (microseconds), so the clock floor of the
    # token (`_scripts`) does not mask the interleaving.
    ahead = 5 * 10**15
    for client, start in ((s0, 4), (s1, 2), (s2, 1)):
        client.set(fence, ahead + start)  # type: ignore[attr-defined]
    s2.set(key, FOREIGN)  # type: ignore[attr-defined] # an attempt being undone there
    a = lockkit.Lock("ordered", backend=backend)
    with a:
        assert a.lease is not None
        first = a.lease.fencing_token
    assert first == ahead + 5
    s2.delete(key)  # type: ignore[attr-defined]
    s0.set(key, FOREIGN)  # type: ignore[attr-defined]
    b = lockkit.Lock("ordered", backend=backend)
    with b:
        assert b.lease is not None
        second = b.lease.fencing_token
    assert second is not None
    assert second > first  # without the second round: ahead + max(3, 2)


def test_a_key_lost_between_the_rounds_is_not_a_lease(
    redlock_servers: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = _clients(redlock_servers)
    backend = RedisBackend([server.url for server in redlock_servers])
    key, _ = _keys("between")
    assert isinstance(backend, RedlockBackend)
    original = RedlockBackend._raise_fences  # noqa: SLF001 - the second round, made late

    def expire_first(self: RedlockBackend, *args: object) -> object:
        for client in clients[:2]:
            client.delete(key)  # type: ignore[attr-defined] # expired (a long pause)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(RedlockBackend, "_raise_fences", expire_first)
    assert backend.try_acquire("between", Owner.current(), 10) is None
    assert [client.exists(key) for client in clients] == [0, 0, 0]  # type: ignore[attr-defined]


def test_is_held_and_release_follow_the_quorum(redlock_servers: list[RedisServer]) -> None:
    # Another attempt's key on s0 (about to be undone): our lock lives on s1 and s2.
    s0, _, _ = _clients(redlock_servers)
    url = _url(redlock_servers, "?socket_connect_timeout=0.5")
    lost: list[object] = []
    lock = lockkit.Lock("quorum", backend=url, on_lost=lost.append)
    key, _ = _keys("quorum")
    s0.set(key, FOREIGN)  # type: ignore[attr-defined]
    lock.acquire()
    assert lock.is_held()  # the first server's key is not the holder: a quorum is
    info = lock.inspect()
    assert info is not None
    assert info.owner is not None
    assert lock.lease is not None
    assert info.owner.token == lock.lease.token
    redlock_servers[2].kill()  # s1 still has our key; s2 cannot say
    assert lock.is_held()
    lock.release()  # one copy deleted, one server unreachable: released, not lost
    assert lost == []


@pytest.mark.multiprocess
@pytest.mark.slow
def test_tokens_strictly_increase_under_contention(redlock_servers: list[RedisServer]) -> None:
    # 6 processes x 100 acquisitions. Without the second round this saw 7-10
    # non-increasing tokens per 1,200 acquisitions; without the quorum inspect, 5-7
    # spurious on_lost events.
    run = run_fenced(_url(redlock_servers), processes=6, acquisitions=100)
    assert run.escaped == ()
    assert run.errors == ()
    assert run.acquisitions == 600
    assert run.non_increasing == 0
    assert run.lost_updates == 0
    assert run.double_holders == 0
    assert run.not_held == 0
    assert run.lost_events == 0
