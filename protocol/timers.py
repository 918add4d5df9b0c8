"""Theory of operation: the protocol's timers, as values.

A machine asks for a timer with ``SetTimer(key, at)`` and hears ``TimerFired(key)`` when it is
due; the host only keeps keys and times. A key says whose timer it is and what for, so it is a
small frozen dataclass per purpose (hashable, comparable, printable in a trace) rather than a
tuple whose layout every reader must know. The coordinator's timers name their session, so the
leader routes them to its coordinator; the participant's name their subtask.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.frozen import fast_init


@fast_init
@dataclass(frozen=True)
class Retry:
    """Coordinator: resend whatever of the session still waits for an answer."""

    session_id: str


@fast_init
@dataclass(frozen=True)
class PrepareDeadline:
    """Coordinator: the votes are late; abort."""

    session_id: str


@fast_init
@dataclass(frozen=True)
class ExecutionDeadline:
    """Coordinator: the subtask's result is late; fail it."""

    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class Lease:
    """Participant: a yes vote's lease ran out; ask for the decision."""

    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class ResultRetry:
    """Participant: resend the result (or ask again) until the coordinator has it."""

    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class RegisterRetry:
    """Participant: register again until the MCA answers."""


CoordinatorTimer = Retry | PrepareDeadline | ExecutionDeadline
ParticipantTimer = Lease | ResultRetry | RegisterRetry
TimerKey = CoordinatorTimer | ParticipantTimer
