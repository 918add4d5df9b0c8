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
deliver late, and timers that may fire after being cancelled, are listed in every row and lead
back to the same phase; the handler then does nothing or re-answers from the ledger.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PREPARING = "preparing"
    DECIDING = "deciding"
    COMMITTED = "committed"
    SETTLING = "settling"
    DONE = "done"


class Input(StrEnum):
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


P, In = Phase, Input

# Inputs that may arrive in any phase: a remote party's late, duplicated or earlier-life
# message, and a timer the host fired while its cancellation was on the way.
_LATE = {
    In.VOTE_YES: None,
    In.VOTE_NO: None,
    In.ACK: None,
    In.QUERY: None,
    In.RESULT: None,
    In.RETRY: None,
    In.PREPARE_TIMEOUT: None,
    In.EXECUTION_TIMEOUT: None,
}


def _row(phase: Phase, moves: dict[Input, Phase]) -> dict[Input, Phase]:
    row = {i: phase for i in _LATE}
    row.update(moves)
    return row


COORDINATOR_TRANSITIONS: dict[Phase, dict[Input, Phase]] = {
    P.PREPARING: _row(
        P.PREPARING,
        {
            In.ALL_YES: P.DECIDING,
            In.VOTE_NO: P.DECIDING,
            In.PREPARE_TIMEOUT: P.DECIDING,
            In.QUERY: P.DECIDING,
            In.CANCEL: P.DECIDING,
            In.RETRY: P.PREPARING,
            In.AGENT_RESTARTED: P.PREPARING,
            In.DECIDED_COMMIT: P.COMMITTED,
            In.DECIDED_ABORT: P.SETTLING,
        },
    ),
    P.DECIDING: _row(
        P.DECIDING,
        {
            In.CANCEL: P.DECIDING,
            In.RETRY: P.DECIDING,
            In.PREPARE_TIMEOUT: P.DECIDING,
            In.AGENT_RESTARTED: P.DECIDING,
            In.DECIDED_COMMIT: P.COMMITTED,
            In.DECIDED_ABORT: P.SETTLING,
        },
    ),
    P.COMMITTED: _row(
        P.COMMITTED,
        {
            In.RETRY: P.COMMITTED,
            In.CANCEL: P.COMMITTED,
            In.AGENT_RESTARTED: P.COMMITTED,
            In.FINISHED: P.COMMITTED,
            In.EXECUTION_TIMEOUT: P.COMMITTED,
            In.TERMINAL: P.SETTLING,
        },
    ),
    P.SETTLING: _row(
        P.SETTLING,
        {
            In.RETRY: P.SETTLING,
            In.CANCEL: P.SETTLING,
            In.AGENT_RESTARTED: P.SETTLING,
            In.EXECUTION_TIMEOUT: P.SETTLING,
            In.FINISHED: P.SETTLING,
            In.ALL_ACKED: P.SETTLING,
            In.SETTLED: P.DONE,
        },
    ),
    P.DONE: {},
}
