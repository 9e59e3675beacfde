"""Frozen value classes for the cold path: the part of ``attrs.frozen`` lockkit uses there.

A fresh process's first lock (a cron job, a git hook, every ``lockkit run``) pays for
every module it imports. ``import attrs`` alone costs about twice a bare interpreter's
start-up (measured in the ``cold`` benchmark section), more than all of a lock's own
work, so the value objects a first lock builds (`lockkit.Owner`, `lockkit.Lease`,
`lockkit.LockInfo`, the selection and the backends' records) are declared with
`frozen` instead. Everything else (the CLI's reports, settings, the registry's records)
stays on attrs.

A `frozen` class behaves like an ``@attrs.frozen`` one for what lockkit and its users
do with it: keyword or positional construction with defaults, slots, ``==`` and
``hash`` over the compared fields, a ``repr`` that leaves out (or redacts) chosen fields,
``AttributeError`` on assignment, pickling and copying, and `evolve` (also
``copy.replace`` on Python 3.13+). It does not run validators or converters.

attrs' own functions accept these classes too: ``attrs.evolve``, ``attrs.fields``,
``attrs.asdict`` and ``attrs.has`` read ``__attrs_attrs__``, which is made from the
fields on first access (by then the caller has imported attrs), so plugins written
against attrs-based values keep working.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing is part of what this module avoids
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _T = TypeVar("_T")


__all__ = ["FrozenInstanceError", "evolve", "field", "fields", "frozen"]

_NOTHING: Any = object()
_BIND = object.__setattr__.__get__  # object.__setattr__ bound to one instance


class FrozenInstanceError(AttributeError):
    """Assigning to, or deleting, a field of a frozen value."""


class Field:
    """One field of a value class: its name, default and how it is shown and compared."""

    __slots__ = ("default", "eq", "factory", "name", "repr")

    def __init__(
        self,
        default: Any,  # noqa: ANN401 - any value
        *,
        repr: bool | Callable[[Any], str],  # noqa: A002 - attrs' name for it
        eq: bool,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        """Describe a field (`frozen` fills in its name)."""
        self.name = ""
        self.default = default
        self.factory = factory
        self.repr = repr
        self.eq = eq


def _field(
    *,
    default: Any = _NOTHING,  # noqa: ANN401 - any value
    repr: bool | Callable[[Any], str] = True,  # noqa: A002 - attrs' name for it
    eq: bool = True,
    factory: Callable[[], Any] | None = None,
) -> Any:  # noqa: ANN401 - stands in for the field's value, as attrs.field does
    """Declare a field with options, as ``attrs.field`` does.

    For example ``token: str = field(default="", repr=False)``.

    Args:
        default: The value when the caller gives none.
        repr: ``False`` leaves the field out of ``repr``; a callable formats its value.
        eq: ``False`` leaves it out of ``==`` and ``hash`` (a private handle, say).
        factory: Makes the default for each instance (``factory=dict``).
    """
    return Field(default, repr=repr, eq=eq, factory=factory)


def fields(cls: type) -> tuple[Field, ...]:
    """The fields of a value class, in declaration order (base classes' first)."""
    found: tuple[Field, ...] = cls.__value_fields__  # type: ignore[attr-defined]
    return found


def evolve(value: _T, **changes: Any) -> _T:  # noqa: ANN401
    """A copy of ``value`` with ``changes`` applied, as ``attrs.evolve``."""
    cls = type(value)
    args = {spec.name: getattr(value, spec.name) for spec in fields(cls)}
    unknown = set(changes) - set(args)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise TypeError(f"{cls.__qualname__} has no field {names}")
    args.update(changes)
    return cls(**args)


class _AttrsAttributes:
    """``__attrs_attrs__``, made on first access: what attrs' functions look for."""

    def __get__(self, instance: object, owner: type) -> tuple[Any, ...]:
        import attr  # noqa: PLC0415 - whoever asks for attrs' view has attrs loaded

        specs = fields(owner)
        made: tuple[Any, ...] = tuple(
            attr.Attribute(  # type: ignore[call-arg]
                name=spec.name,
                default=(
                    attr.Factory(spec.factory)
                    if spec.factory is not None
                    else (attr.NOTHING if spec.default is _NOTHING else spec.default)
                ),
                validator=None,
                repr=spec.repr,
                cmp=None,
                hash=None,
                init=True,
                inherited=False,
                eq=spec.eq,
                order=False,
                alias=spec.name,
            )
            for spec in specs
        )
        # A tuple with the fields by name too, as attrs.fields(cls).name gives them.
        by_name: dict[str, Any] = {spec.name: _item(i) for i, spec in enumerate(specs)}
        attributes: tuple[Any, ...] = type(f"{owner.__name__}Attributes", (tuple,), by_name)(made)
        type.__setattr__(owner, "__attrs_attrs__", attributes)  # made once per class
        return attributes


def _item(index: int) -> property:
    """A property reading item ``index`` of a tuple."""
    return property(lambda self: self[index])


def _frozen_setattr(self: object, name: str, _value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _repr(self: object) -> str:
    shown = []
    for spec in fields(type(self)):
        if spec.repr is False:
            continue
        value = getattr(self, spec.name)
        text = repr(value) if spec.repr is True else spec.repr(value)
        shown.append(f"{spec.name}={text}")
    return f"{type(self).__qualname__}({', '.join(shown)})"


def _compared(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, spec.name) for spec in fields(type(self)) if spec.eq)


def _eq(self: object, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    same: bool = _compared(self) == _compared(other)
    return same


def _ne(self: object, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    differ: bool = _compared(self) != _compared(other)
    return differ


def _hash(self: object) -> int:
    return hash((type(self).__qualname__, *_compared(self)))


def _reduce(self: object) -> tuple[type, tuple[object, ...]]:
    # Slots and a refusing __setattr__ defeat pickle's default; rebuild through __init__.
    return type(self), tuple(getattr(self, spec.name) for spec in fields(type(self)))


def _make_init(cls_name: str, specs: tuple[Field, ...]) -> Callable[..., None]:
    # Generated once per class, like attrs' own __init__: a Lease and an Owner are built
    # on every acquisition, and a generic *args/**kwargs binder costs several times more.
    params = []
    defaults: dict[str, object] = {}
    lines = []
    for spec in specs:
        value = spec.name
        if spec.factory is not None:
            defaults[f"_factory_{spec.name}"] = spec.factory
            params.append(f"{spec.name}=_NOTHING")
            value = f"_factory_{spec.name}() if {spec.name} is _NOTHING else {spec.name}"
        elif spec.default is _NOTHING:
            params.append(spec.name)
        else:
            defaults[f"_default_{spec.name}"] = spec.default
            params.append(f"{spec.name}=_default_{spec.name}")
        lines.append(f"    _set({spec.name!r}, {value})\n")
    # attrs' own trick: one bound object.__setattr__ per instance, then a 2-argument call.
    body = "    _set = _bind(self)\n" + "".join(lines) if lines else ""
    source = f"def __init__(self, {', '.join(params)}):\n{body or '    pass'}\n"
    namespace: dict[str, Any] = {
        "_bind": object.__setattr__.__get__,
        "_NOTHING": _NOTHING,
        **defaults,
    }
    exec(compile(source, f"<lockkit value {cls_name}.__init__>", "exec"), namespace)  # noqa: S102
    init: Callable[..., None] = namespace["__init__"]
    return init


def _lazy_init(cls_name: str, specs: tuple[Field, ...]) -> Callable[..., None]:
    # Compiling an __init__ costs more than the rest of a class's creation, and most
    # value classes are never instantiated in a given process (a first lock builds a
    # handful): compile on the first instantiation, then replace this stand-in.
    def first_init(self: object, *args: object, **kwargs: object) -> None:
        init = _make_init(cls_name, specs)
        for owner in type(self).__mro__:
            if owner.__dict__.get("__init__") is first_init:
                owner.__init__ = init  # type: ignore[misc]
                break
        init(self, *args, **kwargs)

    first_init.__name__ = "__init__"
    first_init.__qualname__ = f"{cls_name}.__init__"
    return first_init


def _frozen(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen, slotted value class from its annotated class attributes."""
    inherited: tuple[Field, ...] = getattr(cls, "__value_fields__", ())
    own: list[Field] = []
    # The class's own annotations, not inherited ones: base value classes keep theirs.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _NOTHING)
        spec = value if isinstance(value, Field) else Field(value, repr=True, eq=True)
        spec.name = name
        own.append(spec)
    specs = (*(spec for spec in inherited if spec.name not in {s.name for s in own}), *own)
    seen_default = False
    for spec in specs:
        if spec.default is not _NOTHING or spec.factory is not None:
            seen_default = True
        elif seen_default:
            message = f"{cls.__qualname__}: field {spec.name!r} has no default but follows one with"
            raise TypeError(message)
    namespace = {
        key: value
        for key, value in cls.__dict__.items()
        if key not in {spec.name for spec in own} and key not in {"__dict__", "__weakref__"}
    }
    namespace["__slots__"] = tuple(spec.name for spec in own)
    namespace["__value_fields__"] = specs
    namespace["__init__"] = _lazy_init(cls.__qualname__, specs)
    namespace["__match_args__"] = tuple(spec.name for spec in specs)
    namespace["__setattr__"] = _frozen_setattr
    namespace["__delattr__"] = _frozen_delattr
    namespace.setdefault("__repr__", _repr)
    namespace["__eq__"] = _eq
    namespace["__ne__"] = _ne
    namespace["__hash__"] = _hash
    namespace["__reduce__"] = _reduce
    namespace["__replace__"] = evolve  # copy.replace() on Python 3.13+
    namespace["__attrs_attrs__"] = _AttrsAttributes()
    metaclass: Any = type(cls)
    made: type[_T] = metaclass(cls.__name__, cls.__bases__, namespace)
    made.__qualname__ = cls.__qualname__
    return made


# Type checkers are told these are attrs classes, and they are as far as attrs can
# tell at run time (`_AttrsAttributes`): mypy's attrs plugin then checks constructors,
# and plugins' ``attrs.evolve(lease, ...)`` type-checks as it runs.
if TYPE_CHECKING:
    from attrs import field, frozen
else:
    field, frozen = _field, _frozen
