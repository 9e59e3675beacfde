"""Typed reports that render as text and as JSON from one description of their fields.

A report is an ``@attrs.frozen`` subclass of `Report`. Each field says, in its
``metadata`` (built by `show`), how it appears:

* in JSON under its name (or ``key``), or not at all (``key=None``);
* in text as a ``label`` column followed by its value, through a ``text`` function, or
  not at all (neither given);
* only ``when`` a condition on the report holds (in both renderings).

Nested reports and lists of them render recursively, so ``--json`` and the text can
never disagree on which fields exist or what they hold: both read the same attributes
in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import attrs

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = ["Report", "Show", "emit", "show"]

_META = "lockkit.cli.show"

TextFn = Callable[[Any, Any], "str | Sequence[str] | None"]
"""``text(report, value)``: the field's text, as one line, several, or ``None`` for none."""


@attrs.frozen
class Show:
    """How one field of a `Report` is rendered.

    Attributes:
        key: The JSON key; ``""`` for the field's name, ``None`` to leave it out of JSON.
        label: The text label (a column of the report's `Report.label_width`).
        text: Renders the value as text; default: ``str(value)``, or the nested
            report's lines. A field with neither ``label`` nor ``text`` is JSON only.
        when: The field exists only when this returns true for the report.
        inline: A nested report whose JSON keys and text lines are the parent's own.
    """

    key: str | None = ""
    label: str | None = None
    text: TextFn | None = None
    when: Callable[[Any], bool] | None = None
    inline: bool = False

    def present(self, report: Report) -> bool:
        """Whether the field exists in ``report``."""
        return self.when is None or self.when(report)

    @property
    def in_text(self) -> bool:
        """Whether the field appears in the text rendering."""
        return self.inline or self.label is not None or self.text is not None


def show(
    label: str | None = None,
    *,
    key: str | None = "",
    text: TextFn | None = None,
    when: Callable[[Any], bool] | None = None,
    inline: bool = False,
) -> dict[str, Show]:
    """The ``metadata`` of a report field: ``attrs.field(metadata=show("age", ...))``.

    Args:
        label: The text label; ``None`` for no label.
        key: The JSON key; ``""`` for the field's name, ``None`` for text only.
        text: ``text(report, value)`` renders the value as text.
        when: ``when(report)`` says whether the field exists at all.
        inline: Merge a nested report's JSON and text into this one.
    """
    return {_META: Show(key=key, label=label, text=text, when=when, inline=inline)}


_PLAIN = Show()


class Report:
    """Base of the command line's reports: `to_json` and `render_text` over attrs fields.

    Attributes:
        label_width: Width of the label column in the text rendering.
    """

    __slots__ = ()
    label_width: ClassVar[int] = 0

    def _fields(self) -> list[tuple[str, Show]]:
        fields = attrs.fields(cast("type[AttrsInstance]", type(self)))
        return [(field.name, field.metadata.get(_META, _PLAIN)) for field in fields]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, in field order."""
        out: dict[str, Any] = {}
        for name, spec in self._fields():
            if spec.key is None or not spec.present(self):
                continue
            value = getattr(self, name)
            if spec.inline:
                out.update(value.to_json())
            else:
                out[spec.key or name] = jsonable(value)
        return out

    def lines(self) -> list[str]:
        """The report as lines of text, in field order."""
        out: list[str] = []
        for name, spec in self._fields():
            if not spec.in_text or not spec.present(self):
                continue
            value = getattr(self, name)
            rendered = spec.text(self, value) if spec.text is not None else _text(value)
            if rendered is None:
                continue
            items = [rendered] if isinstance(rendered, str) else list(rendered)
            if spec.label is not None:
                items = [f"{spec.label:<{self.label_width}} {item}" for item in items]
            out.extend(items)
        return out

    def render_text(self) -> str:
        """The text rendering, one string."""
        return "\n".join(self.lines())


def jsonable(value: object) -> object:
    """``value`` with every nested `Report` replaced by its JSON dict."""
    if isinstance(value, Report):
        return value.to_json()
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def _text(value: object) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, Report):
        return value.lines()
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            rendered = _text(item)
            if rendered is not None:
                out.extend([rendered] if isinstance(rendered, str) else rendered)
        return out
    return str(value)


def emit(report: Report, *, as_json: bool) -> None:
    """Print ``report`` on standard output, as JSON or as text."""
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render_text())
