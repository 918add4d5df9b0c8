"""``protocol.frozen.fast_init``: the same values as the dataclass's own ``__init__`` builds,
only cheaper; and a class it cannot build faithfully is refused when it is defined."""

from __future__ import annotations

import copyreg
import dataclasses
import inspect
import io
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from typing import ClassVar

import pytest

import protocol.effects
import protocol.entries
import protocol.events
import protocol.ledger
import protocol.messages
import protocol.model
import protocol.participant
import protocol.timers
from protocol.frozen import fast_init


@dataclass(frozen=True)
class Plain:
    name: str
    count: int = 1
    parts: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True)
class Fast:
    name: str
    count: int = 1
    parts: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("a",), {}), (("a", 2), {}), (("a",), {"parts": ("x",)}), ((), {"name": "b", "count": 0, "parts": ("y", "z")})],
)
def test_fast_init_builds_what_the_dataclass_builds(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    plain, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)  # type: ignore[arg-type]
    assert vars(fast) == vars(plain)
    assert repr(fast) == repr(plain).replace("Plain", "Fast")
    assert fast == Fast(*args, **kwargs) and hash(fast) == hash(Fast(*args, **kwargs))  # type: ignore[arg-type]
    assert fast != Fast("other")
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert dataclasses.replace(fast, count=7) == Fast(fast.name, 7, fast.parts)


def test_a_fast_init_value_stays_frozen() -> None:
    value = Fast("a")
    with pytest.raises(FrozenInstanceError):
        value.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del value.count
    assert value == Fast("a", 1, ())


class _DefaultForm(pickle.Pickler):
    """Pickles values the way pickle does by default (an empty object, then its ``__dict__``):
    how journals and snapshots written before ``fast_init`` hold them."""

    def reducer_override(self, obj: object) -> object:
        if not isinstance(obj, Fast):
            return NotImplemented
        return copyreg.__newobj__, (type(obj),), dict(vars(obj))  # type: ignore[attr-defined]


def test_a_value_pickles_as_its_class_and_fields_and_the_default_form_still_loads() -> None:
    value = Fast("a", 2, ("x",))
    assert value.__reduce__() == (Fast, ("a", 2, ("x",)))
    assert len(pickle.dumps(value)) < len(pickle.dumps(Plain("a", 2, ("x",))))
    buffer = io.BytesIO()
    _DefaultForm(buffer, protocol=4).dump(value)
    assert buffer.getvalue() != pickle.dumps(value, protocol=4)
    assert pickle.loads(buffer.getvalue()) == value


def test_a_value_is_final() -> None:
    with pytest.raises(TypeError, match="final"):

        class Sub(Fast):  # would pickle as a Fast and lose its own fields
            pass


def test_fast_init_takes_the_arguments_the_dataclass_takes() -> None:
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast("a", 1, (), "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast("a", nothing=1)  # type: ignore[call-arg]
    assert inspect.signature(Fast) == inspect.signature(Plain)


def _classes_of(*modules: object) -> list[type]:
    return [
        c
        for module in modules
        for c in vars(module).values()
        if isinstance(c, type) and c.__module__ == getattr(module, "__name__", None) and dataclasses.is_dataclass(c)
    ]


PROTOCOL_VALUES = [
    c
    for c in _classes_of(
        protocol.effects,
        protocol.entries,
        protocol.events,
        protocol.ledger,
        protocol.messages,
        protocol.model,
        protocol.participant,
        protocol.timers,
    )
    # (a value with a default factory, the ledger's mutable records, keeps the dataclass's init)
    if all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(c))
]


@pytest.mark.parametrize("cls", PROTOCOL_VALUES, ids=lambda c: c.__name__)
def test_every_protocol_value_takes_its_fields_in_order_with_their_defaults(cls: type) -> None:
    """The generated ``__init__`` of each value of the protocol (fast or not) has the fields as
    parameters, in order, with the dataclass's defaults: nothing is lost by the replacement."""
    parameters = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in dataclasses.fields(cls)]
    assert [p.default for p in parameters] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(cls)
    ]


def test_the_hot_values_of_the_protocol_are_fast() -> None:
    fast = {c.__name__ for c in PROTOCOL_VALUES if "__dict__" in vars(c)["__init__"].__code__.co_names}
    assert {"Assignment", "Applied", "SessionEventRecord", "Prepare", "Vote", "Finished", "Send", "Retry"} <= fast


@pytest.mark.parametrize(
    "make",
    [
        lambda: dataclass(type("Open", (), {"__annotations__": {"a": "int"}})),
        lambda: dataclass(frozen=True)(
            type("Factory", (), {"__annotations__": {"a": "list[int]"}, "a": field(default_factory=list)})
        ),
        lambda: dataclass(frozen=True)(
            type("Post", (), {"__annotations__": {"a": "int"}, "__post_init__": lambda self: None})
        ),
        lambda: dataclass(frozen=True)(type("Counted", (), {"__annotations__": {"a": "int", "n": ClassVar[int]}})),
        lambda: dataclass(frozen=True, kw_only=True)(type("Keywords", (), {"__annotations__": {"a": "int"}})),
        lambda: dataclass(frozen=True, slots=True)(type("Slotted", (), {"__annotations__": {"a": "int"}})),
        lambda: type("NotADataclass", (), {}),
    ],
)
def test_fast_init_refuses_what_it_could_not_build_faithfully(make: object) -> None:
    with pytest.raises(TypeError, match="fast_init"):
        fast_init(make())  # type: ignore[operator]
