"""Turns (`lockkit.backends._turn`): what a planted, stale or foreign turn file does.

A turn only decides who tries first on a share; these tests check that nothing in the
turn file can hold others off for longer than `TURN_TTL`, and that it is never followed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib

import attrs
import pytest

from lockkit._info import Owner
from lockkit.backends import _turn
from lockkit.backends._file import encode_payload

pytestmark = pytest.mark.fs


def _plant(lock: pathlib.Path, owner: Owner, expires_in: float) -> pathlib.Path:
    turn = pathlib.Path(str(lock) + _turn.TURN_SUFFIX)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)
    turn.write_bytes(encode_payload(owner, "turn", expires))
    return turn


def _someone_else() -> Owner:
    return attrs.evolve(Owner.current(), pid=os.getpid() + 1)


def test_a_live_turn_of_another_process_is_seen(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, _someone_else(), 0.5)
    turn = _turn.look(str(lock), Owner.current())
    assert turn is not None
    assert not turn.mine
    assert 0 < turn.left <= 0.5


def test_our_own_turn_is_ours(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    _turn.claim(str(lock), Owner.current(), None)
    turn = _turn.look(str(lock), Owner.current())  # a new token: the same process
    assert turn is not None
    assert turn.mine
    _turn.give_back(str(lock), Owner.current())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("expires_in", [-1.0, 3600.0], ids=["expired", "from-the-future"])
def test_a_stale_or_far_future_turn_counts_for_nothing(
    tmp_path: pathlib.Path, expires_in: float
) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, _someone_else(), expires_in)
    assert _turn.look(str(lock), Owner.current()) is None
    # And a waiter may replace it with its own.
    _turn.claim(str(lock), Owner.current(), None)
    turn = _turn.look(str(lock), Owner.current())
    assert turn is not None
    assert turn.mine


def test_a_symlink_at_the_turn_is_neither_followed_nor_trusted(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, str(lock) + _turn.TURN_SUFFIX)
    assert _turn.look(str(lock), Owner.current()) is None
    _turn.claim(str(lock), Owner.current(), None)
    assert victim.read_text() == "precious"
    # The link was replaced by a regular turn file of ours, never written through.
    assert not os.path.islink(str(lock) + _turn.TURN_SUFFIX)


def test_garbage_in_the_turn_is_no_turn(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    pathlib.Path(str(lock) + _turn.TURN_SUFFIX).write_text(json.dumps({"pid": "x"}))
    assert _turn.look(str(lock), Owner.current()) is None


def test_a_waiter_counts_only_the_waits_no_release_ended() -> None:
    name, waiter = "/nowhere/a.lock", 12345
    for _ in range(5):
        _turn.waited(name, waiter, noticed=True)
    assert not _turn.due(name, waiter)
    for _ in range(_turn.TURN_AFTER):
        _turn.waited(name, waiter, noticed=False)
    assert _turn.due(name, waiter)
    _turn.forget(name, waiter)
    assert not _turn.due(name, waiter)
