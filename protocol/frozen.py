"""Theory of operation: frozen dataclasses that are cheap to build.

Every message, effect, entry, event and timer key of the protocol is a frozen dataclass: a
value that can be compared, hashed, deduplicated and replayed. The runtime builds tens of them
per task on every replica and agent (a record applied builds its ``Applied``, its session
events, its assignments; a message unpacked from the wire builds the message and its parts).

``dataclass(frozen=True)`` makes assignment raise by overriding ``__setattr__``, so its
generated ``__init__`` must go around that and sets each field with ``object.__setattr__``:
2.6 us to build a six-field ``Assignment`` on this machine, against 1.0 us for the same
fields written into the instance's ``__dict__``. Those constructors were 7-11 % of the CPU of
the leader, the followers and the agents under load (py-spy).

``fast_init`` keeps everything the dataclass made (fields, defaults, equality, hashing,
``repr``, ordering, pickling, ``dataclasses.replace``, and assignment raising
``FrozenInstanceError``) and replaces only its ``__init__`` with one that writes the fields into
``__dict__``, generated from the fields as ``dataclasses`` generates its own. It takes only what
that ``__init__`` can build faithfully: a frozen dataclass without ``__slots__``,
``__post_init__``, default factories, keyword-only, init-less or pseudo-fields (``ClassVar``,
``InitVar``); anything else is a ``TypeError`` when the class is defined.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` an ``__init__`` that writes ``__dict__`` directly.

    Stack it over the dataclass decorator, so type checkers still see a dataclass::

        @fast_init
        @dataclass(frozen=True)
        class Settled:
            session_id: str
    """
    name = cls.__qualname__
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"fast_init: {name} is not a frozen dataclass")
    if "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"fast_init: {name} has __slots__ or __post_init__; its own __init__ is needed")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if len(fields) != len(cls.__dataclass_fields__):  # type: ignore[attr-defined]
        raise TypeError(f"fast_init: {name} has ClassVar or InitVar pseudo-fields")
    arguments: list[str] = []
    defaults: dict[str, Any] = {}
    for f in fields:
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"fast_init: field {name}.{f.name} needs the dataclass's own __init__")
        if f.default is dataclasses.MISSING:
            arguments.append(f.name)
        else:  # defaults are bound by name, never written into the source
            defaults[f"_default_{f.name}"] = f.default
            arguments.append(f"{f.name}=_default_{f.name}")
    lines = [f"def __init__({', '.join(['self', *arguments])}):"]
    lines.append("    d = self.__dict__")
    lines += [f"    d[{f.name!r}] = {f.name}" for f in fields]
    made: dict[str, Any] = {}
    exec("\n".join(lines), defaults, made)  # the source holds field names only
    init = made["__init__"]
    init.__qualname__ = f"{name}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)  # the same signature, types included
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
