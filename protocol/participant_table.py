"""Theory of operation: the two-phase participant, per subtask (runs inside every agent).

Each subtask an agent hears of has one of these states. ``absent`` means the agent knows
nothing of it (in this incarnation); the last four are tombstones, kept for the incarnation's
life so that late and duplicated messages are answered consistently.

    absent   --prepare, capable and room--> prepared (reserved under a lease, voted yes)
    absent   --prepare, refused-----------> refused  (voted no: final for this incarnation)
    prepared --commit--> committed (executing) --execution done--> executed (result sent)
                         (the result answers the commit; a repeated commit is acknowledged)
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

Each row maps a cue to a ``Move``: the next state and the ``Participant`` method that acts
(see ``transitions.py``), or ``IGNORE`` for a late message or an outlived timer. A move to
``absent`` drops the subtask; it is always ``IGNORE``. ``diagram()`` draws the table in
Mermaid; docs/protocol.md carries the drawing, and tests/unit/test_protocol_diagrams.py keeps
the two equal (and rewrites the docs when run).
"""

from __future__ import annotations

from enum import StrEnum

from protocol.transitions import IGNORE, Move, mermaid


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

PARTICIPANT_TRANSITIONS: dict[Held, dict[Cue, Move[Held]]] = {
    H.ABSENT: {
        C.PREPARE_OK: Move(H.PREPARED, "_vote_yes"),
        C.PREPARE_REFUSED: Move(H.REFUSED, "_vote_no"),
        C.COMMIT: Move(H.ABSENT, IGNORE),  # stale after a restart (see above)
        C.RESULT_ACCEPTED: Move(H.ABSENT, IGNORE),
        C.ABORT: Move(H.ABORTED, "_abort"),
        C.RELEASE: Move(H.RELEASED, "_release"),
        C.RELEASE_COMPENSATE: Move(H.COMPENSATED, "_compensate"),
        C.LEASE_EXPIRED: Move(H.ABSENT, IGNORE),
        C.RESULT_RETRY: Move(H.ABSENT, IGNORE),
    },
    H.PREPARED: {
        C.PREPARE: Move(H.PREPARED, "_revote_yes"),
        C.COMMIT: Move(H.COMMITTED, "_execute"),
        C.ABORT: Move(H.ABORTED, "_abort"),
        C.RELEASE_COMPENSATE: Move(H.COMPENSATED, "_compensate"),
        C.LEASE_EXPIRED: Move(H.PREPARED, "_ask_decision"),
        C.RESULT_RETRY: Move(H.PREPARED, IGNORE),
    },
    H.COMMITTED: {
        C.PREPARE: Move(H.COMMITTED, "_revote_yes"),
        C.COMMIT: Move(H.COMMITTED, "_ack_commit"),
        C.RELEASE: Move(H.RELEASED, "_stop_and_release"),
        C.RELEASE_COMPENSATE: Move(H.COMPENSATED, "_stop_and_compensate"),
        C.EXECUTION_DONE: Move(H.EXECUTED, "_report_result"),
        C.RESULT_ACCEPTED: Move(H.COMMITTED, "_note_accepted"),
        C.LEASE_EXPIRED: Move(H.COMMITTED, IGNORE),
        C.RESULT_RETRY: Move(H.COMMITTED, IGNORE),
    },
    H.EXECUTED: {
        C.PREPARE: Move(H.EXECUTED, "_revote_yes"),
        C.COMMIT: Move(H.EXECUTED, "_ack_commit"),
        C.RELEASE: Move(H.RELEASED, "_release"),
        C.RELEASE_COMPENSATE: Move(H.COMPENSATED, "_compensate"),
        C.RESULT_ACCEPTED: Move(H.EXECUTED, "_pull_slowly"),
        C.RESULT_RETRY: Move(H.EXECUTED, "_resend_result"),
        C.LEASE_EXPIRED: Move(H.EXECUTED, IGNORE),
    },
    H.REFUSED: {
        C.PREPARE: Move(H.REFUSED, "_revote_no"),
        C.ABORT: Move(H.ABORTED, "_abort"),
        C.LEASE_EXPIRED: Move(H.REFUSED, IGNORE),
        C.RESULT_RETRY: Move(H.REFUSED, IGNORE),
    },
    H.ABORTED: {
        C.PREPARE: Move(H.ABORTED, "_revote_no"),
        C.ABORT: Move(H.ABORTED, "_abort"),
        C.LEASE_EXPIRED: Move(H.ABORTED, IGNORE),
        C.RESULT_RETRY: Move(H.ABORTED, IGNORE),
    },
    H.RELEASED: {
        C.PREPARE: Move(H.RELEASED, "_revote_no"),
        C.COMMIT: Move(H.RELEASED, "_ack_commit"),
        C.RELEASE: Move(H.RELEASED, "_release"),
        C.RESULT_ACCEPTED: Move(H.RELEASED, IGNORE),
        C.EXECUTION_DONE: Move(H.RELEASED, IGNORE),  # the session no longer needs its result
        C.LEASE_EXPIRED: Move(H.RELEASED, IGNORE),
        C.RESULT_RETRY: Move(H.RELEASED, IGNORE),
    },
    H.COMPENSATED: {
        C.PREPARE: Move(H.COMPENSATED, "_revote_no"),
        C.COMMIT: Move(H.COMPENSATED, "_ack_commit"),
        C.RELEASE_COMPENSATE: Move(H.COMPENSATED, "_compensate"),
        C.RESULT_ACCEPTED: Move(H.COMPENSATED, IGNORE),
        C.EXECUTION_DONE: Move(H.COMPENSATED, "_compensate_late_execution"),
        C.LEASE_EXPIRED: Move(H.COMPENSATED, IGNORE),
        C.RESULT_RETRY: Move(H.COMPENSATED, IGNORE),
    },
}


def diagram() -> str:
    """The participant table as a Mermaid ``stateDiagram-v2`` (``IGNORE`` moves left out)."""
    return mermaid(PARTICIPANT_TRANSITIONS, Held.ABSENT)
