"""The lock-file payload: lockkit's own shape and every shape OpenClaw writes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lockkit._info import Owner
from lockkit.backends._file import MAX_PAYLOAD, decode_payload, encode_payload


def test_round_trip_keeps_every_owner_field() -> None:
    owner = Owner.current()
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    payload = decode_payload(encode_payload(owner, "excl", expires))
    decoded, decoded_expires = payload.owner, payload.expires
    assert payload.problem == ""
    assert payload.backend == "excl"
    assert decoded is not None
    assert decoded.pid == owner.pid
    assert decoded.host == owner.host
    assert decoded.boot_id == owner.boot_id
    assert decoded.pid_ns == owner.pid_ns
    assert decoded.start_time == owner.start_time
    assert decoded.token == owner.token
    assert owner.created is not None
    assert decoded.created is not None
    assert abs((decoded.created - owner.created).total_seconds()) < 0.001
    assert decoded_expires == expires


def test_payload_is_a_superset_of_openclaw_fields() -> None:
    data = json.loads(encode_payload(Owner.current(), "hardlink", None))
    for key in ("pid", "createdAt", "startTime", "starttime", "startedAt", "token"):
        assert key in data
    assert data["createdAt"].endswith("Z")
    assert isinstance(data["startedAt"], int)
    assert data["backend"] == "hardlink"
    assert data["version"] == 1


@pytest.mark.parametrize(
    ("payload", "start_time", "created"),
    [
        ({"pid": 41, "startedAt": 1_700_000_000_000, "token": "t"}, None, 1_700_000_000.0),
        (
            {"pid": 41, "createdAt": "2023-11-14T22:13:20.000Z", "starttime": 99},
            99,
            1_700_000_000.0,
        ),
        ({"pid": 41, "createdAt": "2023-11-14T22:13:20Z", "startTime": 98}, 98, 1_700_000_000.0),
    ],
    ids=["startedAt-ms", "createdAt-starttime", "createdAt-startTime"],
)
def test_openclaw_shapes_are_read(
    payload: dict[str, object], start_time: int | None, created: float
) -> None:
    decoded = decode_payload(json.dumps(payload).encode())
    owner, expires = decoded.owner, decoded.expires
    assert decoded.problem == ""
    assert decoded.backend == ""
    assert owner is not None
    assert owner.pid == 41
    assert owner.start_time == start_time
    assert owner.created is not None
    assert owner.created.timestamp() == created
    assert expires is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"pid": 12, "tok', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"pid": "12"}', "no valid pid"),
        (b'{"pid": true}', "no valid pid"),
        (b'{"pid": -3}', "no valid pid"),
        (b"x" * (MAX_PAYLOAD + 1), "larger than"),
    ],
)
def test_malformed_payloads_are_described_not_raised(data: bytes, problem: str) -> None:
    decoded = decode_payload(data)
    assert decoded.owner is None
    assert decoded.expires is None
    assert problem in decoded.problem


def test_bad_times_are_ignored() -> None:
    decoded = decode_payload(b'{"pid": 5, "createdAt": "yesterday", "expires": 1e300}')
    owner, expires = decoded.owner, decoded.expires
    assert decoded.problem == ""
    assert owner is not None
    assert owner.created is None
    assert expires is None
