"""The coordination core: pure protocol machines with no I/O, no clock and no randomness.

Each machine is ``step(event, now) -> list[Effect]``; hosts (the runtime, the simulator) turn
effects into I/O. See DESIGN.md for the protocols and each module's opening for its theory.
"""

from protocol.coordinator import Coordinator
from protocol.defects import PLANTED_BUGS
from protocol.effects import (
    Append,
    CancelTimer,
    Effect,
    Send,
    SetTimer,
    StartCompensation,
    StartExecution,
)
from protocol.errors import (
    CoordinationError,
    IllegalTransition,
    InvalidTask,
    InvariantViolation,
    NoCapableAgent,
    SessionAlreadyTerminal,
    UnknownSession,
)
from protocol.events import Applied, BecameLeader, Booted, ExecutionDone, TimerFired
from protocol.leader import Leader
from protocol.ledger import Ledger
from protocol.log import DecisionLog
from protocol.model import Assignment, Decision, Outcome, SubtaskSpec, TaskSpec, Timing
from protocol.participant import Participant
from protocol.session_table import SessionState

__all__ = [
    "PLANTED_BUGS",
    "Append",
    "Applied",
    "Assignment",
    "BecameLeader",
    "Booted",
    "CancelTimer",
    "CoordinationError",
    "Coordinator",
    "Decision",
    "DecisionLog",
    "Effect",
    "ExecutionDone",
    "IllegalTransition",
    "InvalidTask",
    "InvariantViolation",
    "Leader",
    "Ledger",
    "NoCapableAgent",
    "Outcome",
    "Participant",
    "Send",
    "SessionAlreadyTerminal",
    "SessionState",
    "SetTimer",
    "StartCompensation",
    "StartExecution",
    "SubtaskSpec",
    "TaskSpec",
    "TimerFired",
    "Timing",
    "UnknownSession",
]
