"""Value types shared by every machine: tasks, assignments, decisions and timing.

Everything here is immutable and hashable, so entries and messages built from these values can
be compared, deduplicated and replayed without surprises. Parameters and outputs are tuples of
``(name, value)`` pairs rather than dicts for the same reason; ``params()`` turns them back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import SHOWN_CHARS_MAX, InvalidTask, shown
from protocol.frozen import fast_init

#: Largest number of subtasks one task may ask for; beyond this a task is a workload, not a task.
SUBTASKS_MAX = 16
#: Longest identifier (idempotency key, task type, capability) accepted at the boundary.
NAME_LENGTH_MAX = 128
#: Longest JSON document a subtask carries to its agent (its structured input), in characters.
DOCUMENT_LENGTH_MAX = 64 * 1024
#: Longest JSON document a result may carry (a meal plan, say), in characters. Results are
#: entries of the decision log, replicated to every replica: documents stay modest.
RESULT_DOCUMENT_LENGTH_MAX = 256 * 1024

Params = tuple[tuple[str, float], ...]


def params(values: Mapping[str, float]) -> Params:
    """Canonical, hashable form of a parameter mapping (sorted by name)."""
    return tuple(sorted((str(k), float(v)) for k, v in values.items()))


class Decision(StrEnum):
    """The two-phase decision for one session. Raft words never appear here."""

    COMMIT = "commit"
    ABORT = "abort"


@fast_init
@dataclass(frozen=True)
class SubtaskSpec:
    """One unit of work a single agent performs: a capability and the capacity it needs."""

    capability: str
    demand: int = 1
    inputs: Params = ()
    #: Structured input as JSON text (a profile, say), besides the named numbers in ``inputs``.
    document: str = ""


@fast_init
@dataclass(frozen=True)
class TaskSpec:
    """A task as submitted: what to do and how to tell that it succeeded."""

    task_type: str
    subtasks: tuple[SubtaskSpec, ...]
    success_criteria: tuple[str, ...]

    def validate(self) -> None:
        """Reject a malformed task with an error naming the field (nothing is appended)."""
        _check_name("task_type", self.task_type)
        if not self.subtasks:
            raise InvalidTask("subtasks", "a task needs at least one subtask")
        if len(self.subtasks) > SUBTASKS_MAX:
            raise InvalidTask("subtasks", f"at most {SUBTASKS_MAX} subtasks, got {len(self.subtasks)}")
        for i, sub in enumerate(self.subtasks):
            _check_name(f"subtasks[{i}].capability", sub.capability)
            if isinstance(sub.demand, bool) or not isinstance(sub.demand, int) or sub.demand < 1:
                raise InvalidTask(f"subtasks[{i}].demand", "must be a whole number of at least 1")
            for name, value in sub.inputs:
                _check_name(f"subtasks[{i}].inputs", name)
                if not isinstance(value, float) or not math.isfinite(value):
                    raise InvalidTask(f"subtasks[{i}].inputs[{name}]", "must be a finite number")
            if not isinstance(sub.document, str) or len(sub.document) > DOCUMENT_LENGTH_MAX:
                raise InvalidTask(
                    f"subtasks[{i}].document", f"must be text of at most {DOCUMENT_LENGTH_MAX} characters"
                )
        if not self.success_criteria:
            raise InvalidTask("success_criteria", "a session needs explicit success criteria, e.g. 'all_subtasks_ok'")
        for criterion in self.success_criteria:
            if criterion not in SUCCESS_CRITERIA:
                known = ", ".join(sorted(SUCCESS_CRITERIA))
                raise InvalidTask("success_criteria", f"unknown criterion {shown(criterion)}; known: {known}")


#: What an agent's numbers and words may be: they go into the log, every replica's ledger, its
#: snapshots, the read model (names become document keys) and the clients' views.
PARAMS_MAX = 64
TEXT_LENGTH_MAX = 2_000


def name_problem(value: object) -> str:
    """What is wrong with a name ('' when nothing): every name the runtime takes (keys, agent
    and subtask ids, capabilities, task types, parameter names, principals) is 1 to
    ``NAME_LENGTH_MAX`` printable characters, checked here and nowhere else."""
    if not isinstance(value, str) or not value or len(value) > NAME_LENGTH_MAX or not value.isprintable():
        return f"must be 1 to {NAME_LENGTH_MAX} printable characters"
    return ""


def params_refusal(field: str, values: Params) -> str:
    """Why an agent's named numbers cannot travel ('' when they can)."""
    if len(values) > PARAMS_MAX:
        return f"{field}: {len(values)} parameters; at most {PARAMS_MAX}"
    for name, value in values:
        if name_problem(name) or name.startswith("$") or "." in name:
            return (
                f"{field}: the name {shown(name)} is not 1 to {NAME_LENGTH_MAX} printable characters "
                "without '.' or a leading '$'"
            )
        if not math.isfinite(value):
            # A long name is cut like any quoted value: the refusal must not echo a caller's input.
            where = f"{field}.{name}" if len(name) <= SHOWN_CHARS_MAX else f"{field}[{shown(name)}]"
            return f"{where}: {value} is not a finite number"
    return ""


def text_refusal(field: str, text: str) -> str:
    """Why an agent's words (an error, a reason) cannot travel ('' when they can)."""
    return f"{field}: {len(text)} characters; at most {TEXT_LENGTH_MAX}" if len(text) > TEXT_LENGTH_MAX else ""


def _check_name(field: str, value: object) -> None:
    if problem := name_problem(value):
        raise InvalidTask(field, problem)


@fast_init
@dataclass(frozen=True)
class Assignment:
    """A subtask bound to the agent chosen to perform it."""

    subtask_id: str
    agent_id: str
    capability: str
    demand: int
    inputs: Params = ()
    document: str = ""


def assignments_of(session_id: str, task: TaskSpec, agents: tuple[str, ...]) -> tuple[Assignment, ...]:
    """The assignments of ``task`` in session ``session_id``, subtask ``i`` to ``agents[i]``."""
    return tuple(
        Assignment(f"{session_id}.{i}", agent, sub.capability, sub.demand, sub.inputs, sub.document)
        for i, (sub, agent) in enumerate(zip(task.subtasks, agents, strict=False))
    )


@fast_init
@dataclass(frozen=True)
class Outcome:
    """What one execution of a subtask produced."""

    ok: bool
    output: Params = ()
    error: str = ""
    #: A structured result as JSON text (a plan, say), besides the named numbers in ``output``.
    document: str = ""


def _all_subtasks_ok(outcomes: Sequence[Outcome]) -> str | None:
    return None if all(o.ok for o in outcomes) else "a subtask failed"


def _outputs_present(outcomes: Sequence[Outcome]) -> str | None:
    return None if all(o.output for o in outcomes) else "a subtask returned no output"


def _documents_present(outcomes: Sequence[Outcome]) -> str | None:
    return None if all(o.document for o in outcomes) else "a subtask returned no document"


def _outputs_agree(outcomes: Sequence[Outcome]) -> str | None:
    """Every named output that several subtasks report has the same value in each: how a
    session checks that its subtasks used the parameters it negotiated (the meal plan was
    built for the energy the workout plan spends)."""
    seen: dict[str, float] = {}
    for o in outcomes:
        for name, value in o.output:
            first = seen.setdefault(name, value)
            if abs(first - value) > 1e-6 * max(1.0, abs(first)):
                return f"subtasks disagree on {name}: {first:g} vs {value:g}"
    return None


#: Success criteria the ledger knows how to evaluate once every subtask has a result.
#: Each maps the accepted outcomes (in assignment order) to ``None`` when met, or a reason.
SUCCESS_CRITERIA: dict[str, Callable[[Sequence[Outcome]], str | None]] = {
    "all_subtasks_ok": _all_subtasks_ok,
    "outputs_present": _outputs_present,
    "documents_present": _documents_present,
    "outputs_agree": _outputs_agree,
}


@dataclass(frozen=True)
class Limits:
    """Bounds that keep the leader out of overload (DESIGN.md, "Admission with a bound").

    Past ``sessions_in_flight_max`` unsettled sessions a new submit is refused at once with
    ``RESOURCE_EXHAUSTED`` and a hint to retry after ``retry_after`` seconds (clients back off
    from there), instead of queueing without end: under overload, throughput holds and the wait
    is bounded by this queue, not by timeouts and resends.

    Sessions still settling (results in, releases not yet acknowledged) count too, so a client
    with 1,024 tasks in flight holds more unsettled sessions than that: at a bound of 1,024 it
    was refused now and then and ran at 61-75 % of the best throughput, at 2,048 at 96 %.
    """

    sessions_in_flight_max: int = 2048
    retry_after: float = 0.05


@dataclass(frozen=True)
class Timing:
    """Every duration the machines use, in seconds of the injected clock.

    The lease is longer than the prepare timeout so that, without faults, a decision reaches a
    participant before its lease runs out and it never needs to ask.
    """

    retry: float = 0.05
    #: Resends back off exponentially from ``retry`` up to this interval.
    retry_max: float = 1.0
    prepare_timeout: float = 0.5
    lease: float = 1.0
    execution_timeout: float = 3.0
    register_retry: float = 0.2
