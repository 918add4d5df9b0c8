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

Each row maps an input to a ``Move``: the next phase and the ``Coordinator`` method that acts
(see ``transitions.py``). The phase decides which method runs, so no method asks which phase it
is in. Inputs missing from a phase's row are bugs (``IllegalTransition``). Inputs that the
network may deliver late, and timers that may fire after being cancelled, are listed in every
row but ``done``'s and lead back to the same phase: either ``IGNORE`` or an action that
re-answers from the ledger. ``done`` has no row at all: the leader drops a coordinator as soon
as its ``settled`` entry applies, and ``Coordinator.step`` answers a retired session before
the table, so anything that still reaches ``done`` is a bug.

``diagram()`` draws the table in Mermaid; docs/protocol.md carries the drawing, and
tests/unit/test_protocol_diagrams.py keeps the two equal (and rewrites the docs when run).
"""

from __future__ import annotations

from enum import StrEnum

from protocol.transitions import IGNORE, Move, mermaid


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


COORDINATOR_TRANSITIONS: dict[Phase, dict[Input, Move[Phase]]] = {
    P.PREPARING: {
        In.VOTE_YES: Move(P.PREPARING, "_count_yes"),
        In.ALL_YES: Move(P.DECIDING, "_decide_commit"),
        In.VOTE_NO: Move(P.DECIDING, "_abort_on_no"),
        In.PREPARE_TIMEOUT: Move(P.DECIDING, "_abort_on_timeout"),
        In.QUERY: Move(P.DECIDING, "_abort_on_query"),
        In.CANCEL: Move(P.DECIDING, "_abort_on_cancel"),
        In.RETRY: Move(P.PREPARING, "_resend_prepare"),
        In.AGENT_RESTARTED: Move(P.PREPARING, "_prepare_again"),
        # A decision the previous leader appended, applied after this one took over.
        In.DECIDED_COMMIT: Move(P.COMMITTED, "_start_executing"),
        In.DECIDED_ABORT: Move(P.SETTLING, "_start_settling"),
        In.ACK: Move(P.PREPARING, IGNORE),
        In.RESULT: Move(P.PREPARING, "_answer_if_recorded"),
        In.EXECUTION_TIMEOUT: Move(P.PREPARING, IGNORE),
    },
    P.DECIDING: {
        In.VOTE_YES: Move(P.DECIDING, IGNORE),
        In.VOTE_NO: Move(P.DECIDING, IGNORE),
        In.ACK: Move(P.DECIDING, IGNORE),
        In.QUERY: Move(P.DECIDING, IGNORE),  # the agent asks again when its lease runs out
        In.RESULT: Move(P.DECIDING, "_answer_if_recorded"),
        In.RETRY: Move(P.DECIDING, IGNORE),
        In.PREPARE_TIMEOUT: Move(P.DECIDING, IGNORE),
        In.EXECUTION_TIMEOUT: Move(P.DECIDING, IGNORE),
        In.CANCEL: Move(P.DECIDING, "_remember_cancel"),
        In.AGENT_RESTARTED: Move(P.DECIDING, IGNORE),
        In.DECIDED_COMMIT: Move(P.COMMITTED, "_start_executing"),
        In.DECIDED_ABORT: Move(P.SETTLING, "_start_settling"),
    },
    P.COMMITTED: {
        In.VOTE_YES: Move(P.COMMITTED, "_answer_from_ledger"),
        In.VOTE_NO: Move(P.COMMITTED, IGNORE),
        In.ACK: Move(P.COMMITTED, "_note_commit_ack"),
        In.QUERY: Move(P.COMMITTED, "_answer_from_ledger"),
        In.RESULT: Move(P.COMMITTED, "_record_result"),
        In.RETRY: Move(P.COMMITTED, "_resend_commit"),
        In.PREPARE_TIMEOUT: Move(P.COMMITTED, IGNORE),
        In.EXECUTION_TIMEOUT: Move(P.COMMITTED, "_fail_silent_subtask"),
        In.CANCEL: Move(P.COMMITTED, "_cancel_execution"),
        In.AGENT_RESTARTED: Move(P.COMMITTED, "_answer_restarted"),
        In.FINISHED: Move(P.COMMITTED, "_accept_result"),
        In.TERMINAL: Move(P.SETTLING, "_end_execution"),
    },
    P.SETTLING: {
        In.VOTE_YES: Move(P.SETTLING, "_answer_from_ledger"),
        In.VOTE_NO: Move(P.SETTLING, IGNORE),
        In.ACK: Move(P.SETTLING, "_note_final_ack"),
        In.ALL_ACKED: Move(P.SETTLING, "_settle_if_all_acked"),
        In.QUERY: Move(P.SETTLING, "_answer_from_ledger"),
        In.RESULT: Move(P.SETTLING, "_answer_from_ledger"),
        In.RETRY: Move(P.SETTLING, "_resend_final"),
        In.PREPARE_TIMEOUT: Move(P.SETTLING, IGNORE),
        In.EXECUTION_TIMEOUT: Move(P.SETTLING, IGNORE),
        In.CANCEL: Move(P.SETTLING, IGNORE),  # already terminal: the leader answers the client
        In.AGENT_RESTARTED: Move(P.SETTLING, "_settle_restarted"),
        In.FINISHED: Move(P.SETTLING, IGNORE),  # a late result, kept by the ledger for accounting
        In.SETTLED: Move(P.DONE, "_stop_retrying"),
    },
    P.DONE: {},
}


def diagram() -> str:
    """The coordinator table as a Mermaid ``stateDiagram-v2`` (``IGNORE`` moves left out)."""
    return mermaid(COORDINATOR_TRANSITIONS, Phase.PREPARING)
