"""What a Redis lock key holds, and the values made from it: offers, leases, `LockInfo`."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import attrs

from lockkit._info import Lease, LockInfo
from lockkit.backends._file import decode_payload, encode_payload

if TYPE_CHECKING:
    from lockkit._info import Owner

__all__ = ["Offer", "Reader", "from_inspect", "holder_info", "version_of", "version_text"]

# The version the scripts append to a holder's payload (see `._scripts`).
_VERSION = re.compile(rb',"fence":(\d+),"renewals":(\d+)\}\s*$')


def version_of(value: bytes) -> tuple[int, int] | None:
    """``(fence, renewals)`` of a key's value, or ``None`` for a value without one."""
    found = _VERSION.search(value[-64:])
    if found is None:
        return None
    return int(found[1]), int(found[2])


def version_text(identity: tuple[int, ...] | None) -> str:
    """An identity as the break script compares it: ``"fence.renewals"``, or ``""``."""
    if identity is None or len(identity) != 2:  # noqa: PLR2004 - (fence, renewals)
        return ""
    return f"{identity[0]}.{identity[1]}"


@attrs.frozen
class Reader:
    """The handle of a shared lease: its payload, which is its entry in the readers' set."""

    payload: str = attrs.field(repr=False)


@attrs.frozen
class Offer:
    """One attempt's terms: what a lease gets, and what a grant entry registers.

    Attributes:
        name: The lock.
        backend: The backend's name.
        owner: The holder to record.
        ttl: Seconds the key lives.
        ttl_ms: The same in milliseconds (at least 1).
        expires: When the key expires at the latest, reckoned before the attempt.
        payload: The JSON payload: the lease's handle, and the key's value before the
            scripts append its version.
    """

    name: str
    backend: str
    owner: Owner
    ttl: float
    ttl_ms: int
    expires: dt.datetime
    payload: str = attrs.field(repr=False)

    @classmethod
    def make(
        cls, backend: str, name: str, owner: Owner, ttl: float | None, default_ttl: float
    ) -> Offer:
        """The offer of one attempt at ``name`` (``ttl`` falls back to ``default_ttl``)."""
        ttl = ttl or default_ttl
        # Computed before the attempt: the key cannot outlive it.
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        payload = encode_payload(owner, backend, expires).decode()
        return cls(name, backend, owner, ttl, max(1, int(ttl * 1000)), expires, payload)

    def lease(self, fence: int) -> Lease:
        """The lease this offer becomes once the key holds its payload.

        For a grant, the key's expiry was set when the release granted it, after this
        offer was made: ``expires`` errs early (by at most one ``poll``), never late.
        """
        return Lease(
            self.name,
            self.backend,
            self.owner,
            expires=self.expires,
            fencing_token=fence,
            ttl=self.ttl,
            handle=self.payload,
        )

    def grant_entry(self, channel: str) -> str:
        """The queue entry through which a release can grant this offer the lock."""
        return f"{channel}\n{self.owner.token}\n{self.ttl_ms}\n{self.payload}"


def granted_fence(data: bytes, name: str, queued: Offer | None) -> int | None:
    """The fencing token if message ``data`` grants ``queued``'s entry the lock, else ``None``.

    A grant names the lock and the entry's token, so one meant for an earlier
    acquisition (a message left unread on a reused listener) is never taken for ours.
    """
    if queued is None:
        return None
    lock, _, rest = data.decode(errors="replace").rpartition("\n")
    lock, _, token = lock.rpartition("\n")
    if lock != name or token != queued.owner.token or not rest.isdigit():
        return None
    return int(rest)


def holder_info(
    name: str,
    backend: str,
    value: bytes,
    pttl: int | None,
    counter: bytes | int | None,
    *,
    shared: bool = False,
) -> LockInfo:
    """A `LockInfo` from what Redis holds for a lock: value, time to live, fence counter.

    The holder's own fencing token and version come from its value; a value without
    them (a reader's entry) reports the counter and no identity.
    """
    payload = decode_payload(value)
    expires = None
    if pttl is not None and pttl > 0:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=pttl)
    age = None
    if payload.owner is not None and payload.owner.created is not None:
        age = max(0.0, time.time() - payload.owner.created.timestamp())
    version = None if shared else version_of(value)
    fence = version[0] if version is not None else (int(counter) if counter is not None else None)
    return LockInfo(
        name=name,
        backend=backend,
        owner=payload.owner,
        expires=expires,
        fencing_token=fence,
        age=age,
        problem=payload.problem,
        shared=shared,
        identity=version,
    )


def from_inspect(name: str, backend: str, reply: list[Any]) -> LockInfo | None:
    """The holder `._scripts.INSPECT` found (its reply), or ``None`` when the lock is free."""
    if reply[0] is not None:
        value, pttl, counter = reply
        return holder_info(name, backend, value, pttl, counter)
    _, counter, member, score, seconds, micros = reply
    if member is None or score is None:
        return None
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    left = int(float(score)) - now_ms
    if left <= 0:
        return None  # a crashed reader's entry, past its expiry
    return holder_info(name, backend, member, left, counter, shared=True)
