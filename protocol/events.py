"""Events the hosts feed into the machines besides messages: applied entries, timers,
finished executions and role changes."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.entries import Entry
from protocol.ledger import ApplyResult
from protocol.model import Outcome
from protocol.timers import TimerKey


@dataclass(frozen=True)
class Applied:
    """Entry number ``index`` was applied to the ledger and gave ``result``."""

    index: int
    entry: Entry
    result: ApplyResult


@dataclass(frozen=True)
class TimerFired:
    key: TimerKey


@dataclass(frozen=True)
class ExecutionDone:
    session_id: str
    subtask_id: str
    attempt: int
    outcome: Outcome


@dataclass(frozen=True)
class BecameLeader:
    """This replica leads from now on: rebuild the unfinished sessions from the ledger."""


@dataclass(frozen=True)
class Booted:
    """The agent process started with a new incarnation and knows nothing yet."""
