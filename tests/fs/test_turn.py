"""Turns (`lockkit.backends._turn`): what a planted, stale or foreign turn file does.

A turn only decides who tries first on a share; these tests check that nothing in the
turn file can hold others off for long, that it is never followed or read past its
type, that nothing but a dead turn is ever removed, and that a turn belongs to one
waiter (one acquisition's `FileWaiter`, so one thread or task), not to a whole process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import threading
from collections.abc import Callable

import pytest

import lockkit
from lockkit._info import Owner
from lockkit._value import evolve
from lockkit.backends import _file, _turn
from lockkit.backends._file import FileWaiter, encode_payload
from lockkit.backends.excl import ExclBackend
from lockkit.errors import InvalidLockName

pytestmark = pytest.mark.fs


def _plant(lock: pathlib.Path, expires_in: float, backend: str = "turn") -> pathlib.Path:
    turn = pathlib.Path(str(lock) + _turn.TURN_SUFFIX)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)
    other = evolve(Owner.current(), pid=os.getpid() + 1)
    turn.write_bytes(encode_payload(other, backend, expires))
    return turn


def test_a_live_turn_of_another_waiter_is_seen(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, 0.5)
    turn = _turn.look(str(lock))
    assert turn is not None
    assert not turn.mine
    assert 0 < turn.left <= 0.5


def test_a_turn_belongs_to_one_waiter_not_to_its_process(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / "a.lock")
    theirs = _turn.TurnState()
    _turn.claim(lock, theirs.claim_token(), None)
    mine = _turn.look(lock, theirs.token)
    assert mine is not None
    assert mine.mine
    # Another waiter of the same process (another thread or task, or no waiter at all)
    # must step aside too.
    for token in (_turn.TurnState().claim_token(), ""):
        turn = _turn.look(lock, token)
        assert turn is not None
        assert not turn.mine
        assert _turn.give_back(lock, token)  # no turn of this token is left...
        assert os.path.exists(lock + _turn.TURN_SUFFIX)  # ...and theirs is left alone


def test_our_own_turn_is_given_back(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / "a.lock")
    turns = _turn.TurnState()
    _turn.claim(lock, turns.claim_token(), None)
    assert turns.due()
    assert _turn.give_back(lock, turns.token)
    assert os.listdir(tmp_path) == []


def test_a_waiter_gives_its_turn_back_when_closed(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / "a.lock")
    waiter = _excl().waiter(lock)
    assert isinstance(waiter, FileWaiter)
    waiter.close()  # never waited: nothing to do
    waiter.turns = _turn.TurnState()
    _turn.claim(lock, waiter.turns.claim_token(), None)
    waiter.close()
    assert os.listdir(tmp_path) == []
    assert waiter.turns is None


def test_an_attempt_on_a_share_steps_aside_for_another_waiters_turn(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_file, "on_share", lambda directory: True)
    lock = str(tmp_path / "a.lock")
    backend = _excl()
    theirs, mine = backend.waiter(lock), backend.waiter(lock)
    theirs.turns = _turn.TurnState()
    _turn.claim(lock, theirs.turns.claim_token(), None)
    assert backend.try_acquire(lock, Owner.current(), None, waiter=mine) is None
    assert backend.try_acquire(lock, Owner.current(), None) is None  # no waiter, no turn
    lease = backend.try_acquire(lock, Owner.current(), None, waiter=theirs)
    assert lease is not None
    assert not theirs.turns.token  # given back with the win
    assert not os.path.exists(lock + _turn.TURN_SUFFIX)
    backend.release(lease)
    theirs.close()
    mine.close()


def _excl() -> ExclBackend:
    return ExclBackend()


@pytest.mark.parametrize("expires_in", [-1.0, 3600.0], ids=["expired", "from-the-future"])
def test_a_dead_turn_counts_for_nothing_and_is_replaced(
    tmp_path: pathlib.Path, expires_in: float
) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, expires_in)
    assert _turn.look(str(lock)) is None
    turns = _turn.TurnState()
    _turn.claim(str(lock), turns.claim_token(), None)
    turn = _turn.look(str(lock), turns.token)
    assert turn is not None
    assert turn.mine


def test_another_locks_file_at_the_turn_name_is_never_touched(tmp_path: pathlib.Path) -> None:
    # A lock may not be named "a.turn" (a reserved suffix), but another program's lock
    # file may sit there: a lock, not a turn.
    lock = tmp_path / "a"
    with pytest.raises(InvalidLockName, match="reserves"):
        lockkit.Lock(tmp_path / f"a{_turn.TURN_SUFFIX}", backend="excl")
    other = pathlib.Path(str(lock) + _turn.TURN_SUFFIX)
    other.write_bytes(encode_payload(Owner.current(), "excl", None))
    before = other.read_bytes()
    assert _turn.look(str(lock)) is None
    _turn.claim(str(lock), _turn.TurnState().claim_token(), None)
    assert other.read_bytes() == before


def test_a_symlink_at_the_turn_is_neither_followed_nor_trusted(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, str(lock) + _turn.TURN_SUFFIX)
    assert _turn.look(str(lock)) is None
    _turn.claim(str(lock), _turn.TurnState().claim_token(), None)
    assert victim.read_text() == "precious"
    assert os.path.islink(str(lock) + _turn.TURN_SUFFIX)  # not a turn: left alone


def _returns_promptly(call: Callable[[], object]) -> object:
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "blocked (opening a FIFO waits for a writer)"
    return result[0]


def test_a_fifo_at_the_turn_blocks_nobody(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    os.mkfifo(str(lock) + _turn.TURN_SUFFIX)
    assert _returns_promptly(lambda: _turn.look(str(lock))) is None


def test_a_fifo_at_the_lock_path_is_refused_promptly(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.lock"
    lock = lockkit.Lock(path, backend="excl")  # planted after the name was checked
    os.mkfifo(path)

    def acquire() -> object:
        try:
            lock.acquire(timeout=1)
        except InvalidLockName as exc:
            return exc
        return None

    error = _returns_promptly(acquire)
    assert isinstance(error, InvalidLockName)
    assert "is a FIFO, not a lock file" in str(error)


def test_garbage_in_the_turn_is_no_turn(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    pathlib.Path(str(lock) + _turn.TURN_SUFFIX).write_text(json.dumps({"pid": "x"}))
    assert _turn.look(str(lock)) is None


def test_a_waiter_counts_only_the_waits_no_release_ended() -> None:
    turns, other = _turn.TurnState(), _turn.TurnState()
    for _ in range(5):
        turns.waited(noticed=True)
    assert not turns.due()
    for _ in range(_turn.TURN_AFTER):
        turns.waited(noticed=False)
    assert turns.due()
    assert not other.due()  # another waiter's count is not ours
