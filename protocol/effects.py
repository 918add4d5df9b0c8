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
    """Deliver ``message`` to ``to`` (an agent id, a client id, or ``"mca"`` for the leader).

    ``lazy``: nobody waits for it (a release after a completed session): the host may hold it
    for up to ``protocol.batching.LAZY_SECONDS`` so that it rides with the next message to the
    same peer instead of costing a write of its own."""

    to: str
    message: Message
    lazy: bool = False


@fast_init
@dataclass(frozen=True)
class Append:
    """Append ``entry`` to the decision log. The host reports ``Applied`` once it is applied.

    ``lazy``: nobody waits for it (``protocol.batching``): it may wait up to ``LAZY_SECONDS``
    for the next record that is not, and join that one's Raft entry."""

    entry: Entry
    lazy: bool = False


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
