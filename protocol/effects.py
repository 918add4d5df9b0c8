"""Effects: what a pure machine asks its host to do. The host (gRPC, pysyncobj, Ray, or the
simulator) performs them in the order given; the machines never perform I/O themselves."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.entries import Entry
from protocol.frozen import fast_init
from protocol.messages import Message
from protocol.model import Assignment, Params
from protocol.timers import TimerKey


@fast_init
@dataclass(frozen=True)
class Send:
    """Deliver ``message`` to ``to`` (an agent id, a client id, or ``"mca"`` for the leader)."""

    to: str
    message: Message


@fast_init
@dataclass(frozen=True)
class Append:
    """Append ``entry`` to the decision log. The host reports ``Applied`` once it is applied."""

    entry: Entry


@fast_init
@dataclass(frozen=True)
class SetTimer:
    """Fire ``TimerFired(key)`` at local time ``at``; setting a key again replaces it."""

    key: TimerKey
    at: float


@fast_init
@dataclass(frozen=True)
class CancelTimer:
    key: TimerKey


@fast_init
@dataclass(frozen=True)
class StartExecution:
    """Run the agent's work for a committed subtask; report ``ExecutionDone`` when it ends.

    ``attempt`` is the agent incarnation: an execution can run again after a restart, and side
    effects outside the result must be keyed by ``subtask_id`` so that a re-run is harmless.
    """

    session_id: str
    assignment: Assignment
    parameters: Params
    attempt: int


@fast_init
@dataclass(frozen=True)
class StopExecution:
    """Stop the execution of ``subtask_id`` if it is still running: its reservation is released
    (the session ended without needing it), so the capacity it occupies must be given back."""

    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class StartCompensation:
    """Undo the side effects of ``subtask_id``. Idempotent: it may run more than once."""

    session_id: str
    subtask_id: str


Effect = Send | Append | SetTimer | CancelTimer | StartExecution | StopExecution | StartCompensation
