"""Entries of the decision log: every coordination decision, appended before anyone acts on it.

The log is replicated by Raft (pysyncobj in the runtime, a linearizable model in the simulator);
``protocol.ledger.Ledger.apply`` turns the applied entries into the coordination state, the same
on every replica. Each entry is idempotent to apply: appending one twice (a retry after a leader
change) changes nothing the second time, and the apply result says which value won.

Two entry kinds go beyond the five the design lists, for reasons the simulator made concrete:

* ``Registered`` records an agent's incarnation. A yes vote from an incarnation that has since
  restarted is void (its reservation died with it); the ledger turns a ``Decided(commit)`` that
  relied on such a vote into an abort, on every replica alike.
* ``Settled`` records that every participant acknowledged the session's final message, so a new
  leader knows which terminal sessions still owe a release or a compensation.

Records travel in a ``Batch``: one Raft entry per turn of the leader's loop, whatever the number
of sessions that turn moved (DESIGN.md, "Group commit"). Raft words stay with the batch (it is
the entry that is appended and applied); the records inside are the coordination decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.frozen import fast_init
from protocol.model import Assignment, Decision, Outcome, Params, TaskSpec


@fast_init
@dataclass(frozen=True)
class Accepted:
    idempotency_key: str
    task: TaskSpec
    owner: str = ""
    #: Planned at submit: the agent chosen for each subtask, in order, when the leader had room
    #: for the task then (the ledger applies it as a ``Planned`` right after accepting, so a
    #: session costs one record and one Raft round trip less); empty: planned later.
    agents: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True)
class Registered:
    agent_id: str
    capabilities: tuple[str, ...]
    capacity: int
    incarnation: int
    address: str = ""


@fast_init
@dataclass(frozen=True)
class Planned:
    session_id: str
    assignments: tuple[Assignment, ...]


@fast_init
@dataclass(frozen=True)
class Negotiated:
    session_id: str
    parameters: Params


@fast_init
@dataclass(frozen=True)
class Decided:
    session_id: str
    decision: Decision
    reason: str = ""
    #: For commit: the incarnation of each agent whose yes vote the decision relies on.
    incarnations: tuple[tuple[str, int], ...] = ()
    cancelled: bool = False


@fast_init
@dataclass(frozen=True)
class Finished:
    """A subtask's result (first one applied wins), or with ``subtask_id=""`` a cancellation."""

    session_id: str
    subtask_id: str
    outcome: Outcome
    cancelled: bool = False


@fast_init
@dataclass(frozen=True)
class Settled:
    session_id: str


Entry = Accepted | Registered | Planned | Negotiated | Decided | Finished | Settled


@fast_init
@dataclass(frozen=True)
class Batch:
    """The records one turn of the leader's loop produced, appended as one Raft entry (group
    commit). Raft makes a batch atomic: a majority holds all of its records or none. Applying
    it applies the records in order, each exactly as if it had been appended alone, so a
    record's idempotency and the replicas' agreement do not depend on how records were batched.
    """

    records: tuple[Entry, ...]
    #: The term of the leader that cut it. A log that can carry a deposed leader's batch past
    #: the next leader's barrier (pysyncobj forwards a queued command to the new leader) skips
    #: a batch of a term older than the latest barrier; 0: unfenced (tests, old journals).
    term: int = 0
