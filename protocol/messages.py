"""Messages between clients, the MCA leader and agents.

These are the core's view of the wire; ``protocol/*.proto`` maps them onto gRPC later. Every
message a coordinator sends to an agent carries

* ``term``: the Raft term of the leader that sent it. An agent remembers the highest term it has
  seen and ignores anything older, so a deposed leader's late message cannot act (fencing).
* ``incarnation``: the agent incarnation the decision log knows. An agent that restarted has a
  new incarnation and ignores messages meant for its previous life; it learns what it still owns
  from ``RegisterReply`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.frozen import fast_init
from protocol.model import Assignment, Outcome, Params, TaskSpec

# --- client <-> MCA ---------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True)
class Submit:
    client: str
    idempotency_key: str
    task: TaskSpec
    #: The principal that submitted (authenticated at the edge): it owns the session, and its
    #: idempotency keys are its own (two owners may use the same key for different tasks).
    owner: str = ""


@fast_init
@dataclass(frozen=True)
class SubmitReply:
    idempotency_key: str
    session_id: str = ""
    error: str = ""
    status: str = "OK"


@fast_init
@dataclass(frozen=True)
class Cancel:
    client: str
    session_id: str


@fast_init
@dataclass(frozen=True)
class CancelReply:
    session_id: str
    state: str = ""
    error: str = ""
    status: str = "OK"


# --- agent -> MCA -----------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True)
class Register:
    """An agent (re)starting: who it is, what it can do, and its new incarnation."""

    agent_id: str
    capabilities: tuple[str, ...]
    capacity: int
    incarnation: int
    #: Where the agent listens for the coordinator (host:port); empty in the simulator.
    address: str = ""


@fast_init
@dataclass(frozen=True)
class Vote:
    agent_id: str
    incarnation: int
    session_id: str
    subtask_id: str
    yes: bool
    reason: str = ""
    #: Parameters this agent contributes to the negotiation (e.g. weekly training kcal).
    offers: Params = ()


@fast_init
@dataclass(frozen=True)
class Ack:
    """Confirms that the agent acted on a decision: ``kind`` is commit, abort or release."""

    agent_id: str
    incarnation: int
    session_id: str
    subtask_id: str
    kind: str


@fast_init
@dataclass(frozen=True)
class QueryDecision:
    """Sent by an agent whose lease ran out while it holds a yes vote: what was decided?"""

    agent_id: str
    incarnation: int
    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class Result:
    agent_id: str
    incarnation: int
    session_id: str
    subtask_id: str
    outcome: Outcome


# --- MCA -> agent -----------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True)
class RegisterReply:
    """What a restarted agent still owns: every subtask of a session still executing.

    ``committed`` subtasks have no accepted result yet and are executed again; ``finished`` ones
    keep their reservation until the session's final ``Release``.
    """

    term: int
    agent_id: str
    incarnation: int
    committed: tuple[tuple[str, Assignment, Params], ...] = ()
    finished: tuple[tuple[str, Assignment], ...] = ()


@fast_init
@dataclass(frozen=True)
class Prepare:
    term: int
    incarnation: int
    session_id: str
    assignment: Assignment


@fast_init
@dataclass(frozen=True)
class Commit:
    term: int
    incarnation: int
    session_id: str
    subtask_id: str
    parameters: Params = ()


@fast_init
@dataclass(frozen=True)
class Abort:
    term: int
    incarnation: int
    session_id: str
    subtask_id: str
    reason: str = ""


@fast_init
@dataclass(frozen=True)
class ResultAccepted:
    """The result is in the log; keep the reservation until the session's ``Release``."""

    term: int
    incarnation: int
    session_id: str
    subtask_id: str


@fast_init
@dataclass(frozen=True)
class Release:
    """The session is over: release the reservation, and compensate if it did not complete."""

    term: int
    incarnation: int
    session_id: str
    subtask_id: str
    compensate: bool


#: What the MCA sends an agent (in a ``ToAgentBatch`` on the wire).
ToAgent = RegisterReply | Prepare | Commit | Abort | ResultAccepted | Release
#: What an agent sends the MCA in a ``ToMcaBatch`` (``Register`` has a call of its own).
ToMca = Vote | Ack | QueryDecision | Result
FromAgent = Register | ToMca
Message = Submit | SubmitReply | Cancel | CancelReply | ToAgent | FromAgent
