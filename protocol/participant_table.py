"""Theory of operation: the two-phase participant, per subtask (runs inside every agent).

Each subtask an agent hears of has one of these states. ``absent`` means the agent knows
nothing of it (in this incarnation); the last four are tombstones, kept for the incarnation's
life so that late and duplicated messages are answered consistently.

    absent   --prepare, capable and room--> prepared (reserved under a lease, voted yes)
    absent   --prepare, refused-----------> refused  (voted no: final for this incarnation)
    prepared --commit--> committed (executing) --execution done--> executed (result sent)
    prepared --abort---> aborted (released)
    committed/executed --release--> released, or compensated when the session did not complete

``absent`` also absorbs a ``commit`` or ``result_accepted`` meant for this incarnation for a
subtask it does not hold. That happens only after a restart: the coordinator sent it on
learning the new incarnation, the first ``RegisterReply`` (which listed the subtask) was lost,
and the one the agent did receive was computed after the session ended. Such a message is
stale by construction (a session never returns to executing), so it is dropped; the session's
``release`` still reaches the agent and compensates if needed.

A yes vote binds: from ``prepared`` only the coordinator's ``commit`` or ``abort`` (or a final
``release`` with compensation, when the session failed before this agent heard the commit)
moves on. When the lease runs out the agent asks for the decision and keeps waiting; it never
aborts alone. Pairs missing from a row are contradictions (a commit after an abort of the same
subtask): the coordinator group is broken, and ``IllegalTransition`` says so.
"""

from __future__ import annotations

from enum import StrEnum


class Held(StrEnum):
    ABSENT = "absent"
    PREPARED = "prepared"
    COMMITTED = "committed"
    EXECUTED = "executed"
    REFUSED = "refused"
    ABORTED = "aborted"
    RELEASED = "released"
    COMPENSATED = "compensated"


class Cue(StrEnum):
    PREPARE_OK = "prepare_ok"
    PREPARE_REFUSED = "prepare_refused"
    PREPARE = "prepare"
    COMMIT = "commit"
    ABORT = "abort"
    RELEASE = "release"
    RELEASE_COMPENSATE = "release_compensate"
    LEASE_EXPIRED = "lease_expired"
    EXECUTION_DONE = "execution_done"
    RESULT_ACCEPTED = "result_accepted"
    RESULT_RETRY = "result_retry"


H, C = Held, Cue

#: States that hold capacity.
RESERVING = frozenset({H.PREPARED, H.COMMITTED, H.EXECUTED})

PARTICIPANT_TRANSITIONS: dict[Held, dict[Cue, Held]] = {
    H.ABSENT: {
        C.PREPARE_OK: H.PREPARED,
        C.PREPARE_REFUSED: H.REFUSED,
        C.COMMIT: H.ABSENT,
        C.RESULT_ACCEPTED: H.ABSENT,
        C.ABORT: H.ABORTED,
        C.RELEASE: H.RELEASED,
        C.RELEASE_COMPENSATE: H.COMPENSATED,
        C.LEASE_EXPIRED: H.ABSENT,
        C.RESULT_RETRY: H.ABSENT,
    },
    H.PREPARED: {
        C.PREPARE: H.PREPARED,
        C.COMMIT: H.COMMITTED,
        C.ABORT: H.ABORTED,
        C.RELEASE_COMPENSATE: H.COMPENSATED,
        C.LEASE_EXPIRED: H.PREPARED,
        C.RESULT_RETRY: H.PREPARED,
    },
    H.COMMITTED: {
        C.PREPARE: H.COMMITTED,
        C.COMMIT: H.COMMITTED,
        C.RELEASE: H.RELEASED,
        C.RELEASE_COMPENSATE: H.COMPENSATED,
        C.EXECUTION_DONE: H.EXECUTED,
        C.RESULT_ACCEPTED: H.COMMITTED,
        C.LEASE_EXPIRED: H.COMMITTED,
        C.RESULT_RETRY: H.COMMITTED,
    },
    H.EXECUTED: {
        C.PREPARE: H.EXECUTED,
        C.COMMIT: H.EXECUTED,
        C.RELEASE: H.RELEASED,
        C.RELEASE_COMPENSATE: H.COMPENSATED,
        C.RESULT_ACCEPTED: H.EXECUTED,
        C.RESULT_RETRY: H.EXECUTED,
        C.LEASE_EXPIRED: H.EXECUTED,
    },
    H.REFUSED: {
        C.PREPARE: H.REFUSED,
        C.ABORT: H.ABORTED,
        C.LEASE_EXPIRED: H.REFUSED,
        C.RESULT_RETRY: H.REFUSED,
    },
    H.ABORTED: {
        C.PREPARE: H.ABORTED,
        C.ABORT: H.ABORTED,
        C.LEASE_EXPIRED: H.ABORTED,
        C.RESULT_RETRY: H.ABORTED,
    },
    H.RELEASED: {
        C.PREPARE: H.RELEASED,
        C.COMMIT: H.RELEASED,
        C.RELEASE: H.RELEASED,
        C.RESULT_ACCEPTED: H.RELEASED,
        C.EXECUTION_DONE: H.RELEASED,
        C.LEASE_EXPIRED: H.RELEASED,
        C.RESULT_RETRY: H.RELEASED,
    },
    H.COMPENSATED: {
        C.PREPARE: H.COMPENSATED,
        C.COMMIT: H.COMPENSATED,
        C.RELEASE_COMPENSATE: H.COMPENSATED,
        C.RESULT_ACCEPTED: H.COMPENSATED,
        C.EXECUTION_DONE: H.COMPENSATED,
        C.LEASE_EXPIRED: H.COMPENSATED,
        C.RESULT_RETRY: H.COMPENSATED,
    },
}
