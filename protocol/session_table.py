"""Theory of operation: the session machine.

Rule 1 (after h11's ``_state.py``): everything that decides a session's state lives in this
table. One submitted task is one coordination session. The ledger fires these events when the
matching decision-log entry is applied, so the table runs identically on every replica.

    initialized --planned--> negotiating --decided_commit--> executing --finished_ok--> completed
    any non-terminal ----------------------------------------------------------------> failed
    any non-terminal --cancelled-----------------------------------------------------> cancelled

``failed`` is reached by ``decided_abort`` before execution (a no vote, a timeout, no capable
agent) and by ``finished_failed`` after it (a subtask failed or the success criteria were not
met; the participants then compensate). Terminal states have no transitions at all.
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    INITIALIZED = "initialized"
    NEGOTIATING = "negotiating"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SessionEvent(StrEnum):
    PLANNED = "planned"
    DECIDED_COMMIT = "decided_commit"
    DECIDED_ABORT = "decided_abort"
    FINISHED_OK = "finished_ok"
    FINISHED_FAILED = "finished_failed"
    CANCELLED = "cancelled"


S, E = SessionState, SessionEvent

SESSION_TRANSITIONS: dict[SessionState, dict[SessionEvent, SessionState]] = {
    S.INITIALIZED: {
        E.PLANNED: S.NEGOTIATING,
        E.DECIDED_ABORT: S.FAILED,
        E.CANCELLED: S.CANCELLED,
    },
    S.NEGOTIATING: {
        E.DECIDED_COMMIT: S.EXECUTING,
        E.DECIDED_ABORT: S.FAILED,
        E.CANCELLED: S.CANCELLED,
    },
    S.EXECUTING: {
        E.FINISHED_OK: S.COMPLETED,
        E.FINISHED_FAILED: S.FAILED,
        E.CANCELLED: S.CANCELLED,
    },
    S.COMPLETED: {},
    S.FAILED: {},
    S.CANCELLED: {},
}

TERMINAL_STATES = frozenset(s for s, moves in SESSION_TRANSITIONS.items() if not moves)
