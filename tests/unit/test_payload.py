"""The lock-file payload: lockkit's own shape and every shape OpenClaw writes."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from lockkit import _info
from lockkit._info import Owner
from lockkit._value import evolve
from lockkit.backends import _payload
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


@pytest.mark.parametrize(
    "created",
    [
        dt.datetime(2026, 11, 29, 7, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 7, 0, 0, 999, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 7, 0, 0, 999_999, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 7, 0, 1, 1000, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 12, 0, 1, 5000, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        dt.datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=dt.UTC),
    ],
    ids=["whole-second", "under-a-ms", "last-us", "next-second", "other-zone", "before-1970"],
)
def test_time_stamps_are_exact_and_agree(created: dt.datetime) -> None:
    owner = evolve(Owner.current(), created=created)
    expires = created + dt.timedelta(seconds=30)
    raw = encode_payload(owner, "excl", expires)
    data = json.loads(raw)
    utc = created.astimezone(dt.UTC).replace(tzinfo=None)
    assert data["createdAt"] == utc.isoformat(timespec="milliseconds") + "Z"
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert data["startedAt"] == (created - epoch) // dt.timedelta(milliseconds=1)
    expires_utc = expires.astimezone(dt.UTC).replace(tzinfo=None)
    assert data["expires"] == expires_utc.isoformat(timespec="milliseconds") + "Z"
    # Still exactly what json.dumps writes for the same object.
    assert raw == json.dumps(data, separators=(",", ":")).encode()


@pytest.mark.parametrize("token", ['a"b', "back\\slash", "new\nline", "caf\u00e9", ""])
def test_foreign_tokens_are_escaped_like_json_dumps(token: str) -> None:
    owner = evolve(Owner.current(), token=token)
    raw = encode_payload(owner, "excl", None)
    assert json.loads(raw)["token"] == token
    assert raw == json.dumps(json.loads(raw), separators=(",", ":")).encode()


def test_tokens_are_unique_random_hex() -> None:
    tokens = [Owner.current().token for _ in range(500)]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)


def test_a_process_never_takes_tokens_drawn_by_another_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a forked child sees: its parent's pool, under the parent's pid.
    parent_pool = [f"{n:032x}" for n in range(8)]
    monkeypatch.setattr(_info, "_TOKENS", (os.getpid() + 1, list(parent_pool)))
    token = _info.new_token(os.getpid())
    assert token not in parent_pool
    drawn_by, pool = _info._TOKENS  # noqa: SLF001 - the pool is what is tested
    assert drawn_by == os.getpid()
    assert not set(pool) & set(parent_pool)


@pytest.mark.parametrize(
    "host",
    [
        "gw-1",
        "",
        'a"b',
        "a\\b",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "héte",
        "日本",
        "\u2028",
        "x" * 300,
    ],
)
def test_the_static_fields_are_exactly_what_json_dumps_writes(host: str) -> None:
    owner = evolve(Owner.current(), host=host, boot_id=f"id-{host}", pid_ns=None)
    static = {
        "pid": owner.pid,
        "host": owner.host,
        "bootId": owner.boot_id,
        "pidNs": owner.pid_ns,
        "startTime": owner.start_time,
        "starttime": owner.start_time,
        "backend": f"be{host}",
    }
    expected = json.dumps(static, separators=(",", ":"))[:-1] + ","
    assert _payload._static_prefix(owner, f"be{host}") == expected  # noqa: SLF001
