"""What a Sentinel failover does to a lock granted just before it: measured, not argued.

Each trial takes a lock on the primary and kills the primary (SIGKILL) the moment the
acquisition has returned, the worst moment for asynchronous replication; once the
sentinels have promoted a replica, a second client asks for the same lock. Two kinds of
failure:

* **process**: only the primary's process dies. What it wrote to its replicas' sockets
  before it answered still reaches them (the kernel delivers it).
* **partition**: the replicas' links are cut (``CLIENT KILL TYPE replica``, the replicas
  paused for the few milliseconds until the primary is killed), as when the primary's
  machine or network fails: the write never leaves it.

It counts

* **double holders**: the second client got the lock while the first never released
  it (the promoted replica had not received the first grant);
* **token regressions**: the second holder's fencing token is not above the first's.

Run with and without ``min_replicas=1``::

    python -m benchmarks.failover [--trials N]

Not part of ``python -m benchmarks``: each trial is a real failover (about 7 s).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import time

from benchmarks.redissentinel import SentinelDeployment, command, running_sentinel
from benchmarks.redisserver import find_binary


def _cut_replicas(deployment: SentinelDeployment, primary: int) -> list[int]:
    """Pause the replicas and cut their links; their pids, for `_resume`."""
    paused = []
    for server in deployment.servers:
        if server.port != primary and server.process is not None:
            os.kill(server.process.pid, signal.SIGSTOP)
            paused.append(server.process.pid)
    command(primary, "CLIENT", "KILL", "TYPE", "replica")
    return paused


def _resume(paused: list[int]) -> None:
    for pid in paused:
        os.kill(pid, signal.SIGCONT)
    paused.clear()


def _trials(
    url: str, trials: int, deployment: SentinelDeployment, *, partition: bool
) -> tuple[int, int, int]:
    import lockkit  # noqa: PLC0415 - after the servers started

    doubles = regressions = refused = 0
    for trial in range(trials):
        name = f"failover/{time.time_ns()}/{trial}"
        first = lockkit.Lock(name, backend=url, timeout=0)
        first.acquire()
        first.release()  # connected and scripts loaded: the next attempt is one round trip
        tokens: list[int] = []
        paused: list[int] = []

        def grant(
            port: int,
            first: lockkit.Lock = first,
            tokens: list[int] = tokens,
            paused: list[int] = paused,
        ) -> None:
            if partition:
                paused.extend(_cut_replicas(deployment, port))
            try:
                first.acquire()
            except lockkit.LockError:
                return  # not confirmed in time: no lock, nothing to lose
            assert first.lease is not None
            assert first.lease.fencing_token is not None
            tokens.append(first.lease.fencing_token)

        try:
            deployment.fail_over(before_kill=grant, after_kill=functools.partial(_resume, paused))
        finally:
            _resume(paused)
        if not tokens:
            refused += 1
            continue
        second = lockkit.Lock(name, backend=url, timeout=0)
        try:
            second.acquire()
        except lockkit.LockTimeout:
            pass  # the promoted replica had the first grant: one holder
        else:
            doubles += 1
            assert second.lease is not None
            regressions += (second.lease.fencing_token or 0) <= tokens[0]
            second.release()
        first.release()
    return doubles, regressions, refused


def main(argv: list[str]) -> None:
    """Print the counts of each mode (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover")
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args(argv)
    binary = find_binary()
    if binary is None:
        sys.exit("no redis-server on PATH")
    modes: list[tuple[str, dict[str, object]]] = [
        ("without min_replicas", {}),
        ("min_replicas=1", {"min_replicas": 1, "replica_timeout": 0.2}),
    ]
    with running_sentinel(binary, die_with_parent=True) as deployment:
        for partition in (False, True):
            for label, options in modes:
                started = time.monotonic()
                doubles, regressions, refused = _trials(
                    deployment.url(**options), args.trials, deployment, partition=partition
                )
                kind = "partition" if partition else "process killed"
                print(
                    f"{kind}, {label}: {args.trials} failovers, {doubles} double holders, "
                    f"{regressions} token regressions, {refused} acquisitions refused "
                    f"({time.monotonic() - started:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
