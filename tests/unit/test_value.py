"""The cold path's frozen value classes behave as the attrs classes they replaced."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest

from lockkit import Lease, LockInfo, Owner
from lockkit._select import Selection
from lockkit._value import evolve, field, fields, frozen


@frozen
class _Point:
    x: int
    y: int = 0
    secret: str = field(default="", repr=False)
    handle: object = field(default=None, eq=False, repr=False)


def test_construction_defaults_and_repr_leave_out_hidden_fields() -> None:
    point = _Point(1, secret="hunter2")  # noqa: S106 - a test value
    assert (point.x, point.y, point.secret) == (1, 0, "hunter2")
    assert repr(point) == "_Point(x=1, y=0)"
    assert "hunter2" not in repr(point)


def test_equality_and_hash_skip_eq_false_fields_and_other_classes() -> None:
    assert _Point(1, handle=object()) == _Point(1, handle=object())
    assert hash(_Point(1, 2)) == hash(_Point(1, 2))
    assert _Point(1, 2) != _Point(1, 3)
    assert _Point(1) != (1, 0)  # type: ignore[comparison-overlap]


def test_assignment_and_deletion_are_refused() -> None:
    point = _Point(1)
    with pytest.raises(AttributeError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.x
    assert not hasattr(point, "__dict__")


def test_evolve_pickle_and_copy_round_trip() -> None:
    owner = Owner.current()
    lease = Lease("/tmp/a.lock", "excl", owner, fencing_token=3)
    assert pickle.loads(pickle.dumps(lease)) == lease  # noqa: S301 - our own bytes
    assert copy.deepcopy(lease) == lease
    moved = evolve(lease, fencing_token=4)
    assert (moved.fencing_token, moved.owner, lease.fencing_token) == (4, owner, 3)
    with pytest.raises(TypeError, match="no field nope"):
        evolve(lease, nope=1)
    if sys.version_info >= (3, 13):
        assert copy.replace(lease, ttl=5.0).ttl == 5.0  # type: ignore[attr-defined]


def test_public_values_keep_their_fields_in_order() -> None:
    assert [f.name for f in fields(LockInfo)][:3] == ["name", "backend", "owner"]
    assert "token" not in repr(Owner.current())


def test_a_redacting_repr_hides_the_password() -> None:
    selection = Selection("redis", "redis://user:s3cret@host:6379/0")
    assert "s3cret" not in repr(selection)


def test_a_required_field_after_a_default_is_refused() -> None:
    with pytest.raises(TypeError, match="has no default but follows one with"):

        @frozen
        class _Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_a_factory_gives_each_instance_its_own_default() -> None:
    @frozen
    class _Bag:
        items: dict[str, int] = field(factory=dict)

    first, second = _Bag(), _Bag()
    first.items["a"] = 1
    assert second.items == {}
    assert _Bag({"b": 2}).items == {"b": 2}


def test_attrs_functions_accept_the_values_plugins_built_on_attrs_use() -> None:
    attrs = pytest.importorskip("attrs")
    lease = Lease("/tmp/a.lock", "excl", Owner.current(), fencing_token=3)
    moved = attrs.evolve(lease, name="/tmp/b.lock")
    assert (moved.name, moved.owner, moved.fencing_token) == ("/tmp/b.lock", lease.owner, 3)
    assert attrs.has(Lease)
    assert attrs.fields(LockInfo).owner.name == "owner"
    assert [a.name for a in attrs.fields(Lease)] == [f.name for f in fields(Lease)]
    assert attrs.asdict(LockInfo("n", "excl", None))["name"] == "n"

    @frozen
    class _WithFactory:
        items: dict[str, int] = field(factory=dict)

    assert attrs.evolve(_WithFactory(), items={"a": 1}).items == {"a": 1}
