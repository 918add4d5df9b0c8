"""Theory of operation: the two-phase coordinator of one session (runs on the MCA leader).

    preparing --all yes / a no / timeout / query / cancel--> deciding   (decision appended)
    deciding  --decided(commit) applied--> committed --session terminal applied--> settling
    deciding  --decided(abort) applied---> settling
    settling  --every participant acked, settled applied--> done

The decision is appended in ``deciding`` and sent only once it is applied (``committed`` or
``settling``): a leader that crashes in between leaves an entry the next leader reads, never a
participant in doubt. Until a decision is applied the only decision still open is abort
(presumed abort). In ``committed`` the coordinator resends ``Commit`` until acked, turns each
result into a ``Finished`` entry, and fails a subtask whose agent stays silent past the
execution timeout. In ``settling`` it sends the final word (``Abort``, or ``Release`` with or
without compensation) until every participant acknowledges, then appends ``Settled``.

A ``decided`` entry can also arrive in ``preparing``: an entry appended by the previous leader
may be applied after this one took over. The table allows it; the ledger already chose.

Inputs missing from a phase's row are bugs (``IllegalTransition``). Inputs that the network may
deliver late are listed and lead back to the same phase; the handler then does nothing or
re-answers from the ledger.
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    PREPARING = "preparing"
    DECIDING = "deciding"
    COMMITTED = "committed"
    SETTLING = "settling"
    DONE = "done"


class Input(str, Enum):
    VOTE_YES = "vote_yes"
    ALL_YES = "all_yes"
    VOTE_NO = "vote_no"
    PREPARE_TIMEOUT = "prepare_timeout"
    RETRY = "retry"
    QUERY = "query"
    CANCEL = "cancel"
    AGENT_RESTARTED = "agent_restarted"
    DECIDED_COMMIT = "decided_commit"
    DECIDED_ABORT = "decided_abort"
    ACK = "ack"
    RESULT = "result"
    FINISHED = "finished"
    EXECUTION_TIMEOUT = "execution_timeout"
    TERMINAL = "terminal"
    ALL_ACKED = "all_acked"
    SETTLED = "settled"


P, I = Phase, Input

# Inputs a remote party may deliver in any phase (late, duplicated, or for an earlier life).
_LATE = {I.VOTE_YES: None, I.VOTE_NO: None, I.ACK: None, I.QUERY: None, I.RESULT: None}


def _row(phase: Phase, moves: dict[Input, Phase]) -> dict[Input, Phase]:
    row = {i: phase for i in _LATE}
    row.update(moves)
    return row


COORDINATOR_TRANSITIONS: dict[Phase, dict[Input, Phase]] = {
    P.PREPARING: _row(
        P.PREPARING,
        {
            I.ALL_YES: P.DECIDING,
            I.VOTE_NO: P.DECIDING,
            I.PREPARE_TIMEOUT: P.DECIDING,
            I.QUERY: P.DECIDING,
            I.CANCEL: P.DECIDING,
            I.RETRY: P.PREPARING,
            I.AGENT_RESTARTED: P.PREPARING,
            I.DECIDED_COMMIT: P.COMMITTED,
            I.DECIDED_ABORT: P.SETTLING,
        },
    ),
    P.DECIDING: _row(
        P.DECIDING,
        {
            I.CANCEL: P.DECIDING,
            I.RETRY: P.DECIDING,
            I.PREPARE_TIMEOUT: P.DECIDING,
            I.AGENT_RESTARTED: P.DECIDING,
            I.DECIDED_COMMIT: P.COMMITTED,
            I.DECIDED_ABORT: P.SETTLING,
        },
    ),
    P.COMMITTED: _row(
        P.COMMITTED,
        {
            I.RETRY: P.COMMITTED,
            I.CANCEL: P.COMMITTED,
            I.AGENT_RESTARTED: P.COMMITTED,
            I.FINISHED: P.COMMITTED,
            I.EXECUTION_TIMEOUT: P.COMMITTED,
            I.TERMINAL: P.SETTLING,
        },
    ),
    P.SETTLING: _row(
        P.SETTLING,
        {
            I.RETRY: P.SETTLING,
            I.CANCEL: P.SETTLING,
            I.AGENT_RESTARTED: P.SETTLING,
            I.EXECUTION_TIMEOUT: P.SETTLING,
            I.FINISHED: P.SETTLING,
            I.ALL_ACKED: P.SETTLING,
            I.SETTLED: P.DONE,
        },
    ),
    P.DONE: {},
}
