"""The task types a cluster accepts, and the boundary check that turns a client's request into
a ``TaskSpec`` (or an ``InvalidTask`` naming the field, before anything is appended).

A task type turns the request's JSON payload into subtasks. Most take named numbers
(``numbers(payload)``); a type with structured input (the wellness plan's profile) validates it
itself and hands each subtask its part as a JSON document. It also says, per capability whose
results carry a document, where those documents go in the read model, under which domain event,
and how ``mca submit`` shows them (``ResultKind``). ``echo`` and ``echo_pair`` are built in
(``CATALOG``); every other task type comes from a plugin named in cluster.yaml
(``task_type_plugins``, loaded by ``mca.config``; the API a plugin imports is ``mca.tasks``, and
docs/task-types.md shows one). The runtime knows no task type beyond these two.

Every JSON text that crosses the boundary (a payload, an agent's result document) is read by
``load_json``, so that any input, however hostile, ends in a value or an ``InvalidTask`` whose
message is short and names the part to fix, never in another exception. It refuses, before or
while parsing:

- nesting deeper than ``DOCUMENT_DEPTH_MAX``, counted on the text before ``json.loads`` sees it
  (deep input would otherwise be a ``RecursionError``, and the document store refuses past 100);
- integers outside 64 bits, judged by their digit count before any conversion (Python refuses to
  convert more than 4,300 digits, and a float cannot hold 401);
- numbers a float cannot hold (``1e400``) and the non-JSON ``NaN`` and ``Infinity``;
- text holding a lone surrogate (raw, or as a ``\\ud800`` escape), which no UTF-8 store accepts.

The hooks of ``json.loads`` cannot raise with a path (they see one number, not where it is), so
they leave a marker in place and a walk of the parsed value names the path of the first one;
the walk runs only when there is something to find. Values quoted back in messages are cut."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Any

from protocol.errors import SHOWN_CHARS_MAX, InvalidTask, shown
from protocol.model import SubtaskSpec, TaskSpec, params

#: Largest payload accepted, in bytes of UTF-8 JSON.
PAYLOAD_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class ResultKind:
    """Where the result documents of one capability go, and how people read them."""

    #: The read-model collection that holds them (one document per subtask, ``_id`` its id).
    collection: str
    #: The domain event added to the session's history when such a result is accepted.
    event: str
    #: The document (parsed JSON) as text for ``mca submit`` and ``mca get``; None: indented JSON.
    render: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class TaskType:
    """One kind of task a cluster accepts (see the module notes)."""

    name: str
    description: str
    #: The payload (a parsed JSON object) to subtasks; raises ``InvalidTask`` naming the field.
    subtasks: Callable[[Mapping[str, Any]], tuple[SubtaskSpec, ...]]
    default_criteria: tuple[str, ...] = ("all_subtasks_ok",)
    #: By capability: where the documents of its results go and how they read. A capability not
    #: listed by any task type of the cluster has its documents in ``results`` (``OTHER_RESULTS``).
    results: Mapping[str, ResultKind] = field(default_factory=dict)
    #: Named example payloads; ``mca demo`` submits them when the cluster's agents can serve them.
    examples: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
    #: The payload's JSON Schema, shown on the A2A agent card (``mca.a2a``); None: read off the
    #: first example (named numbers for the built-in types).
    input_schema: Mapping[str, Any] | None = None


#: The read model's own collections (``mca.readmodel``): no task type's results may go there.
RESERVED_COLLECTIONS = frozenset({"coordination_sessions", "agent_capabilities", "events", "meta"})
#: Where the documents of results whose capability no task type lists go, and their event.
OTHER_RESULTS = ("results", "ResultRecorded")
# A collection name any MongoDB-protocol store takes (no "$", no "system." prefix, no dots), and
# an event name in the style of the runtime's own (``TaskCompleted``).
_COLLECTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_EVENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def task_type_problem(task_type: object) -> str:
    """Why ``task_type`` cannot join a catalog (empty: it can). The name and the default
    criteria are checked as the boundary checks a submitted task's."""
    if not isinstance(task_type, TaskType):
        return f"is {type(task_type).__name__}, not an mca.tasks.TaskType"
    if not isinstance(task_type.name, str) or not callable(task_type.subtasks):
        return "needs a name (text) and a subtasks function"
    if not isinstance(task_type.results, Mapping) or not all(isinstance(c, str) for c in task_type.results):
        return f"task type {shown(task_type.name)}: results must map capabilities (text) to ResultKinds"
    try:
        TaskSpec(task_type.name, (SubtaskSpec("any"),), task_type.default_criteria).validate()
    except InvalidTask as exc:
        where = "name" if exc.field == "task_type" else "default_criteria"
        return f"task type {shown(task_type.name)}: {where}: {exc.problem}"
    for capability, kind in task_type.results.items():
        where = f"task type {shown(task_type.name)}: results[{shown(capability)}]"
        if not isinstance(kind, ResultKind):
            return f"{where}: is {type(kind).__name__}, not an mca.tasks.ResultKind"
        if not isinstance(kind.collection, str) or not _COLLECTION.fullmatch(kind.collection):
            return f"{where}.collection: {shown(kind.collection)} is not 1 to 64 letters, digits and _"
        if kind.collection in RESERVED_COLLECTIONS:
            return f"{where}.collection: {shown(kind.collection)} is one of the read model's own; choose another"
        if not isinstance(kind.event, str) or not _EVENT.fullmatch(kind.event):
            return f"{where}.event: {shown(kind.event)} is not 1 to 64 letters, digits and _"
    return ""


def result_kinds(catalog: Mapping[str, TaskType]) -> dict[str, ResultKind]:
    """What the task types of ``catalog`` say of their results, by capability. Raises
    ``ValueError`` when two task types say different things of one capability."""
    kinds: dict[str, ResultKind] = {}
    said_by: dict[str, str] = {}
    for task_type in catalog.values():
        for capability, kind in task_type.results.items():
            if kinds.setdefault(capability, kind) != kind:
                raise ValueError(
                    f"task types {said_by[capability]!r} and {task_type.name!r} put the results of "
                    f"capability {capability!r} in different collections or under different events"
                )
            said_by.setdefault(capability, task_type.name)
    return kinds


def result_routes(catalog: Mapping[str, TaskType]) -> dict[str, tuple[str, str]]:
    """``result_kinds`` as the read model's projection takes them: capability -> (collection, event)."""
    return {c: (k.collection, k.event) for c, k in result_kinds(catalog).items()}


def render_result(catalog: Mapping[str, TaskType], capability: str, document: Any) -> str:
    """A result document for people: as its capability's task type renders it, else (or if the
    renderer cannot read it: the document comes from an agent) as indented JSON."""
    kind = next((t.results[capability] for t in catalog.values() if capability in t.results), None)
    if kind is not None and kind.render is not None:
        try:
            return kind.render(document)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            note = f"(not readable as {capability}: {type(exc).__name__}: {exc})"[:200]
            return f"{note}\n{json.dumps(document, indent=2)}"
    return json.dumps(document, indent=2)


#: How deep arrays and objects may nest in a payload or result document (the document store
#: refuses past 100 levels; ``json.loads`` would hit Python's recursion limit near 1,000).
DOCUMENT_DEPTH_MAX = 64
_INT64 = (-(2**63), 2**63 - 1)
#: Digits of the longest 64-bit integer: a longer digit string is refused without converting it.
_INT64_DIGITS = 19
#: Longest path of keys named in a message before its middle is left out.
_PATH_CHARS_MAX = 120

# One token per match, left to right: a string (brackets inside it are text, not structure) or a
# bracket. An unterminated string runs to the end of the text, so every match moves forward and
# the scan stays linear however the quotes and backslashes are arranged.
_STRUCTURE = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
# A \u escape of a surrogate: a lone one (or a pair, which json.loads joins) may be in the value.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Control characters (C0 and C1); in JSON text they can only come as \u escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_ESCAPE = re.compile(r"\\u00(?:[01][0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])")


class _Refused:
    """A number ``json.loads`` met that the boundary refuses, left where it was so that the walk
    can name its path; ``problem`` says what is wrong with it."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def field_path(where: str, *keys: str | int) -> str:
    """The dotted path of a part of a JSON value: ``payload.profile.dislikes[0]``. A key that is
    not a short plain name is quoted (cut) in brackets; a path still longer than
    ``_PATH_CHARS_MAX`` keeps its first and last keys around "..." (64 levels of long keys would
    otherwise make a message of kilobytes)."""
    parts: list[str] = []
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif len(key) <= SHOWN_CHARS_MAX and _PLAIN_KEY.fullmatch(key):
            parts.append(f".{key}" if where or parts else key)
        else:
            parts.append(f"[{shown(key)}]")
    if len(parts) > 2 and sum(map(len, parts)) > _PATH_CHARS_MAX:
        parts = [parts[0], "...", parts[-1].removeprefix(".")]
    return where + "".join(parts)


def load_json(text: str, where: str) -> Any:
    """``text`` parsed as strict JSON whose every part every replica, store and client can hold,
    or ``InvalidTask`` naming the part at fault (``where`` names the whole: "payload"; "" leaves
    paths relative). See the module docstring for what is refused and why."""
    # Each bracket opens or closes a level; the deepest running total bounds the depth the parser
    # would reach (exactly, for valid JSON; the parser stops at the first error of invalid JSON).
    # Skipped when there are too few brackets to exceed the bound, as in most payloads.
    if text.count("[") + text.count("{") > DOCUMENT_DEPTH_MAX:
        tokens = _STRUCTURE.findall(text)
        if max(accumulate(map(_NESTING.get, tokens, repeat(0))), default=0) > DOCUMENT_DEPTH_MAX:
            raise InvalidTask(where, f"nested deeper than {DOCUMENT_DEPTH_MAX} levels")
    refused: list[_Refused] = []

    def refuse(problem: str) -> _Refused:
        refused.append(_Refused(problem))
        return refused[-1]

    def integer(digits: str) -> int | _Refused:
        count = len(digits) - digits.startswith("-")
        if count > _INT64_DIGITS:  # judged by length: never convert thousands of digits
            return refuse(f"an integer of {count} digits does not fit in 64 bits")
        value = int(digits)
        if not _INT64[0] <= value <= _INT64[1]:
            return refuse(f"integer {value} does not fit in 64 bits")
        return value

    def number(digits: str) -> float | _Refused:
        value = float(digits)  # never raises on a JSON number: too large is inf
        if not math.isfinite(value):
            said = digits if len(digits) <= SHOWN_CHARS_MAX else f"of {len(digits)} characters"
            return refuse(f"the number {said} is out of range (a 64-bit float)")
        return value

    def constant(name: str) -> _Refused:
        return refuse(f"{name} is not valid JSON; send a finite number")

    try:
        value = json.loads(text, parse_int=integer, parse_float=number, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise InvalidTask(where, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if refused or _SURROGATE.search(text) or _SURROGATE_ESCAPE.search(text) or _CONTROL_ESCAPE.search(text):
        fault = _fault(value, ())
        if fault is not None:
            path, problem = fault
            raise InvalidTask(field_path(where, *path), problem)
    return value


def _fault(value: Any, path: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """The path of the first refused part of a parsed value, in document order, and why. The
    recursion is bounded: ``load_json`` checked the depth before parsing."""
    if isinstance(value, _Refused):
        return path, value.problem
    if isinstance(value, str):
        return (path, "holds a lone surrogate, which is not text; send UTF-8") if _SURROGATE.search(value) else None
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return path, "a key holds a lone surrogate, which is not text; send UTF-8"
        if isinstance(key, str) and _CONTROL.search(key):
            # A NUL in a key is no field name to a document store (BSON refuses it outright).
            return path, "a key holds a control character"
        found = _fault(item, (*path, key))
        if found is not None:
            return found
    return None


def check_document(text: str) -> str:
    """Why ``text`` cannot be a result document (empty: it can): ``load_json``'s rules, so that
    every replica, the read model and every client can store it."""
    try:
        load_json(text, "")
    except InvalidTask as exc:
        return f"{exc.field}: {exc.problem}" if exc.field else exc.problem
    return ""


def numbers(payload: Mapping[str, Any]) -> dict[str, float]:
    """A payload of named numbers, checked: every value a finite number."""
    inputs: dict[str, float] = {}
    for name, value in payload.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidTask(field_path("payload", name), "must be a finite number")
        # A payload that came through load_json holds only 64-bit integers; a mapping built in
        # code may hold a larger one, which float() refuses with OverflowError.
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise InvalidTask(field_path("payload", name), "must be a finite number")
        inputs[name] = number
    return inputs


def _echo(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    return (SubtaskSpec("echo", 1, params(numbers(payload))),)


def _echo_pair(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    inputs = params(numbers(payload))
    return (SubtaskSpec("echo", 1, inputs), SubtaskSpec("echo", 1, inputs))


CATALOG: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("echo", "one agent with capability 'echo' returns the payload's numbers", _echo),
        TaskType("echo_pair", "two 'echo' subtasks committed together (a two-agent task)", _echo_pair),
    )
}


def task_from_request(
    task_type: str, payload: str, success_criteria: tuple[str, ...], catalog: Mapping[str, TaskType] = CATALOG
) -> TaskSpec:
    """Validate a submission and build its task. Raises ``InvalidTask`` naming the field."""
    kind = catalog.get(task_type)
    if kind is None:
        known = ", ".join(sorted(catalog))
        raise InvalidTask("task_type", f"unknown task type {shown(task_type)}; this cluster accepts: {known}")
    # Characters first: a text longer in characters is longer in bytes, and is not encoded at all.
    # "surrogatepass" counts a lone surrogate (refused by load_json, with its path) instead of
    # raising UnicodeEncodeError here.
    if len(payload) > PAYLOAD_BYTES_MAX or len(payload.encode("utf-8", "surrogatepass")) > PAYLOAD_BYTES_MAX:
        raise InvalidTask("payload", f"larger than {PAYLOAD_BYTES_MAX} bytes")
    document = load_json(payload, "payload") if payload.strip() else {}
    if not isinstance(document, dict):
        raise InvalidTask("payload", f"must be a JSON object, got {_kind(document)}")
    task = TaskSpec(task_type, kind.subtasks(document), success_criteria or kind.default_criteria)
    task.validate()
    return task


def _kind(value: Any) -> str:
    """What a parsed JSON value is, in words (not the value: it may be large)."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return "a number"
