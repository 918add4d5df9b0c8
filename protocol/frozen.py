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
``repr``, ordering, ``dataclasses.replace``, and assignment raising ``FrozenInstanceError``) and
replaces its ``__init__`` with one that writes the fields into ``__dict__``, generated from the
fields as ``dataclasses`` generates its own. It takes only what that ``__init__`` can build
faithfully: a frozen dataclass without ``__slots__``, ``__post_init__``, default factories,
keyword-only, init-less or pseudo-fields (``ClassVar``, ``InitVar``); anything else is a
``TypeError`` when the class is defined.

It also changes how a value pickles: as its class and its field values in order, so that
unpickling calls that ``__init__``, instead of pickle's default (an empty object, then its
``__dict__`` set key by key, every key interned). The Raft entries are pickled records: per
record of a two-agent task, 2.3 instead of 4.6 us to unpickle, 6.0 instead of 6.5 to pickle,
64 instead of 88 bytes (microbenchmark); in a follower under load, unpickling and building the
records went from 18 to 14 % of its CPU (py-spy). Pickles of the default form (journals and
snapshots written before) still load. A value is final: subclassing one is a ``TypeError`` (its
pickle would name the base class and drop the subclass's fields).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` an ``__init__`` that writes ``__dict__`` directly and a
    ``__reduce__`` that pickles it as its class and field values; the class becomes final.

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
    values = "".join(f"d[{f.name!r}], " for f in fields)
    lines += ["def __reduce__(self):", "    d = self.__dict__", f"    return _cls, ({values})"]
    made: dict[str, Any] = {}
    exec("\n".join(lines), {**defaults, "_cls": cls}, made)  # the source holds field names only
    for method, made_one in made.items():
        made_one.__qualname__ = f"{name}.{method}"
        made_one.__module__ = cls.__module__
    made["__init__"].__annotations__ = dict(cls.__init__.__annotations__)  # the same signature
    cls.__init__ = made["__init__"]  # type: ignore[method-assign]
    cls.__reduce__ = made["__reduce__"]  # type: ignore[method-assign]
    cls.__init_subclass__ = classmethod(_final)  # type: ignore[assignment]
    return cls


def _final(subclass: type, /, **kwargs: Any) -> None:
    raise TypeError(f"{subclass.__qualname__}: a fast_init value is final; make a dataclass of its own")
