"""Typed CLI reports: the text and the JSON come from the same fields."""

from __future__ import annotations

import json

import attrs
import pytest

from lockkit.cli._report import Report, emit, show
from lockkit.cli._status import BreakReport, Holder, StatusReport


@attrs.frozen
class Inner(Report):
    label_width = 4

    size: int = attrs.field(metadata=show("size", text=lambda _, v: f"{v} B"))


@attrs.frozen
class Outer(Report):
    label_width = 6

    name: str = attrs.field(metadata=show("name"))
    secret_text: str = attrs.field(metadata=show("note", key=None))
    hidden: int = attrs.field(metadata=show(key="renamed"))
    inner: Inner = attrs.field(metadata=show(text=lambda _, v: v.lines()))
    maybe: str | None = attrs.field(metadata=show("maybe", when=lambda r: r.maybe is not None))
    rows: list[Inner] = attrs.field(factory=list)


def test_json_and_text_read_the_same_fields() -> None:
    report = Outer("n", "only in text", 3, Inner(10), None, [Inner(1)])
    assert report.to_json() == {
        "name": "n",
        "renamed": 3,
        "inner": {"size": 10},
        "rows": [{"size": 1}],
    }
    assert report.lines() == ["name   n", "note   only in text", "size 10 B"]
    with_maybe = attrs.evolve(report, maybe="here")
    assert with_maybe.to_json()["maybe"] == "here"
    assert with_maybe.lines()[-1] == "maybe  here"


def test_emit_prints_json_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    report = Inner(5)
    emit(report, as_json=True)
    assert json.loads(capsys.readouterr().out) == {"size": 5}
    emit(report, as_json=False)
    assert capsys.readouterr().out == "size 5 B\n"


def test_a_free_status_has_only_its_two_keys_and_three_lines() -> None:
    report = StatusReport.of("a.lock", "excl (from --backend)", None, None)
    assert report.to_json() == {"lock": "a.lock", "held": False}
    assert report.lines() == ["lock     a.lock", "chosen   excl (from --backend)", "state    free"]


def test_a_held_status_keeps_the_json_keys_scripts_read() -> None:
    report = StatusReport(
        lock="a",
        chosen="redis at redis://h (from LOCKKIT_URL)",
        held=True,
        backend="redis",
        holder=Holder(pid=7, host="vm", created=None),
        problem=None,
        age_seconds=1.25,
        expires=None,
        machine_view="same",
        stale=True,
        rule="pid-dead",
        reason="holder pid 7 is not running",
    )
    data = report.to_json()
    assert list(data) == [
        "lock",
        "held",
        "backend",
        "holder",
        "problem",
        "age_seconds",
        "expires",
        "machine_view",
        "stale",
        "rule",
        "reason",
    ]
    assert data["holder"] == {"pid": 7, "host": "vm", "created": None}
    assert "chosen" not in data
    assert report.lines() == [
        "lock     a",
        "chosen   redis at redis://h (from LOCKKIT_URL)",
        "state    held",
        "backend  redis",
        "holder   pid 7 on host vm (same machine view)",
        "age      1.2 s",
        "verdict  STALE (rule pid-dead): holder pid 7 is not running",
    ]
    broken = BreakReport(report, removed=True, message="removed")
    assert broken.to_json() == {**data, "removed": True, "message": "removed"}
    assert broken.lines()[-1] == "removed"
    refused = BreakReport(report, removed=False, message="no")
    assert refused.lines()[-1] == "error: no"
