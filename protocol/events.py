"""Events the hosts feed into the machines besides messages: applied entries, timers,
finished executions and role changes; and, per machine, the union of everything its ``step``
takes (``CoordinatorEvent``, ``ParticipantEvent``, ``LeaderEvent``), so that a host handing a
machine something it does not take is a type error rather than an ``InvariantViolation``."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.entries import Entry
from protocol.frozen import fast_init
from protocol.ledger import ApplyResult
from protocol.messages import Cancel, FromAgent, Submit, ToAgent, ToMca
from protocol.model import Outcome
from protocol.timers import TimerKey


@fast_init
@dataclass(frozen=True)
class Applied:
    """Entry number ``index`` was applied to the ledger and gave ``result``."""

    index: int
    entry: Entry
    result: ApplyResult


@fast_init
@dataclass(frozen=True)
class TimerFired:
    key: TimerKey


@fast_init
@dataclass(frozen=True)
class ExecutionDone:
    session_id: str
    subtask_id: str
    attempt: int
    outcome: Outcome


@fast_init
@dataclass(frozen=True)
class BecameLeader:
    """This replica leads from now on: rebuild the unfinished sessions from the ledger."""


@fast_init
@dataclass(frozen=True)
class Booted:
    """The agent process started with a new incarnation and knows nothing yet."""


@fast_init
@dataclass(frozen=True)
class AgentRestarted:
    """The ledger applied a new incarnation of ``agent_id`` (the leader tells its coordinators)."""

    agent_id: str


@fast_init
@dataclass(frozen=True)
class CancelRequested:
    """A client asked to cancel this session (the leader tells its coordinator)."""


#: What ``Coordinator.step`` takes: its participants' messages, and what the leader routes to it.
CoordinatorEvent = ToMca | CancelRequested | AgentRestarted | TimerFired | Applied

#: What ``Participant.step`` takes: the leader's messages and the agent host's own events.
ParticipantEvent = ToAgent | Booted | ExecutionDone | TimerFired

#: What ``Leader.step`` takes: client requests, agents' messages, applied entries, timers.
LeaderEvent = Submit | Cancel | FromAgent | BecameLeader | TimerFired | Applied
