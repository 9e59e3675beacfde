"""Turns (`lockkit.backends._turn`): what a planted, stale or foreign turn file does.

A turn only decides who tries first on a share; these tests check that nothing in the
turn file can hold others off for long, that it is never followed or read past its
type, that nothing but a dead turn is ever removed, and that a turn belongs to one
waiter (thread or task), not to a whole process.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import os
import pathlib
import threading
from collections.abc import Callable

import attrs
import pytest

import lockkit
from lockkit._info import Owner
from lockkit.backends import _turn
from lockkit.backends._file import encode_payload
from lockkit.errors import InvalidLockName

pytestmark = pytest.mark.fs


def _plant(lock: pathlib.Path, expires_in: float, backend: str = "turn") -> pathlib.Path:
    turn = pathlib.Path(str(lock) + _turn.TURN_SUFFIX)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)
    other = attrs.evolve(Owner.current(), pid=os.getpid() + 1)
    turn.write_bytes(encode_payload(other, backend, expires))
    return turn


def _in_another_waiter(call: Callable[[], object]) -> object:
    """Run ``call`` as another thread or task would: in a context of its own."""
    return contextvars.Context().run(call)


def test_a_live_turn_of_another_waiter_is_seen(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, 0.5)
    turn = _turn.look(str(lock))
    assert turn is not None
    assert not turn.mine
    assert 0 < turn.left <= 0.5


def test_a_turn_belongs_to_one_waiter_not_to_its_process(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / "a.lock")

    def claim() -> None:
        _turn.claim(lock, _turn.claim_token(lock), None)
        mine = _turn.look(lock)
        assert mine is not None
        assert mine.mine

    _in_another_waiter(claim)
    # This thread is another waiter of the same process: it must step aside too.
    turn = _turn.look(lock)
    assert turn is not None
    assert not turn.mine
    _turn.give_back(lock)  # not ours: left alone
    assert os.path.exists(lock + _turn.TURN_SUFFIX)


def test_our_own_turn_is_given_back(tmp_path: pathlib.Path) -> None:
    lock = str(tmp_path / "a.lock")
    _turn.claim(lock, _turn.claim_token(lock), None)
    assert _turn.due(lock)
    _turn.give_back(lock)
    _turn.forget(lock)
    assert os.listdir(tmp_path) == []
    assert not _turn.due(lock)


@pytest.mark.parametrize("expires_in", [-1.0, 3600.0], ids=["expired", "from-the-future"])
def test_a_dead_turn_counts_for_nothing_and_is_replaced(
    tmp_path: pathlib.Path, expires_in: float
) -> None:
    lock = tmp_path / "a.lock"
    _plant(lock, expires_in)
    assert _turn.look(str(lock)) is None
    _turn.claim(str(lock), _turn.claim_token(str(lock)), None)
    turn = _turn.look(str(lock))
    assert turn is not None
    assert turn.mine
    _turn.forget(str(lock))


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
    _turn.claim(str(lock), _turn.claim_token(str(lock)), None)
    assert other.read_bytes() == before
    _turn.forget(str(lock))


def test_a_symlink_at_the_turn_is_neither_followed_nor_trusted(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "a.lock"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, str(lock) + _turn.TURN_SUFFIX)
    assert _turn.look(str(lock)) is None
    _turn.claim(str(lock), _turn.claim_token(str(lock)), None)
    assert victim.read_text() == "precious"
    assert os.path.islink(str(lock) + _turn.TURN_SUFFIX)  # not a turn: left alone
    _turn.forget(str(lock))


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
    name = "/nowhere/a.lock"

    def count() -> tuple[bool, bool]:
        for _ in range(5):
            _turn.waited(name, noticed=True)
        before = _turn.due(name)
        for _ in range(_turn.TURN_AFTER):
            _turn.waited(name, noticed=False)
        return before, _turn.due(name)

    assert _in_another_waiter(count) == (False, True)
    assert not _turn.due(name)  # another waiter's count is not ours
