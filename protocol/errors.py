"""Errors of the coordination core.

Two families, kept apart on purpose (STYLE.md item 7):

* ``InvariantViolation`` means the code is wrong. It is raised with an explicit ``if``
  (never ``assert``, which ``python -O`` strips) and is never caught by the core: a broken
  invariant must crash loudly rather than leave half a decision behind.
* ``CoordinationError`` and its subclasses are expected failures: bad input, an unknown
  session, a request that comes too late. The edges turn them into gRPC statuses; each one
  names the field or the state a person has to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate


class InvariantViolation(Exception):
    """A rule of the protocol was broken: a bug, not an input problem."""


class CoordinationError(Exception):
    """An expected failure, reported to the caller with a message a person can act on."""

    #: The gRPC status code name the edge answers with.
    status = "FAILED_PRECONDITION"


class InvalidTask(CoordinationError):
    """A submitted task is malformed; ``field`` names the part to fix."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidMessage(InvalidTask):
    """An agent's message is malformed (e.g. a registration without capabilities)."""


class NoCapableAgent(CoordinationError):
    """No registered agent offers a capability the task needs."""

    def __init__(self, capability: str, why: str = "") -> None:
        if why:
            message = f"capability {capability!r} {why}; give an agent more capacity or ask for less"
        else:
            message = (
                f"no registered agent offers capability {capability!r}; "
                "start an agent that declares it, or submit a task type the cluster supports"
            )
        super().__init__(message)
        self.capability = capability


class Overloaded(CoordinationError):
    """Too many sessions are in flight: retry the same request (same key) after a while."""

    status = "RESOURCE_EXHAUSTED"

    def __init__(self, in_flight: int, retry_after: float) -> None:
        super().__init__(
            f"{in_flight} sessions are in flight, the cluster's bound; nothing was accepted: retry "
            f"with the same idempotency key after about {retry_after * 1000:.0f} ms, backing off"
        )
        self.retry_after = retry_after


class UnknownSession(CoordinationError):
    """The session id names no session in the decision log."""

    status = "NOT_FOUND"

    def __init__(self, session_id: str, retired: bool = False) -> None:
        if retired:
            message = (
                f"session {shown(session_id)} settled and has left the coordinator's memory (it keeps "
                "the latest 5,000 settled sessions); its history is in the read model's "
                "coordination_sessions collection"
            )
        else:
            message = f"session {shown(session_id)} does not exist"
        super().__init__(message)
        self.session_id = session_id


class SessionAlreadyTerminal(CoordinationError):
    """A request (such as cancel) arrived after the session reached a terminal state."""

    def __init__(self, session_id: str, state: str) -> None:
        super().__init__(f"session {shown(session_id)} is already {state}; nothing to cancel")
        self.session_id = session_id
        self.state = state


class StaleRegistration(CoordinationError):
    """A registration of an earlier life of an agent than the one the log knows."""

    def __init__(self, agent_id: str, incarnation: int, current: int) -> None:
        super().__init__(
            f"incarnation: agent {shown(agent_id)} is registered with incarnation {current}; "
            f"{incarnation} is an earlier life (an agent's incarnation must grow with each start)"
        )


class IllegalTransition(InvariantViolation):
    """A machine was asked to take a transition its table does not have."""

    def __init__(self, machine: str, state: object, event: object, detail: str = "") -> None:
        where = f" ({detail})" if detail else ""
        super().__init__(f"{machine}: no transition from {state} on {event}{where}")
        self.machine = machine
        self.state = state
        self.event = event


#: Longest part of a caller's text quoted back in a message.
SHOWN_CHARS_MAX = 40


def shown(value: object) -> str:
    """A caller's value as an error message quotes it: short whatever the value. Text is cut to
    ``SHOWN_CHARS_MAX`` characters with its length said, so a 60 KB field cannot become a 60 KB
    error; an array or object is described, not printed; a huge integer gets its digit count
    (``repr`` of one over 4,300 digits raises ``ValueError``). Every layer above quotes callers'
    values through this one function."""
    if isinstance(value, str):
        # The cut counts the repr's escapes: 40 characters that each print as \\U000e0001 are 400.
        widths = accumulate(len(repr(c)) - 2 for c in value[: SHOWN_CHARS_MAX + 1])
        kept = sum(1 for width in widths if width <= SHOWN_CHARS_MAX)
        if kept == len(value):
            return repr(value)
        return f"{value[:kept]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 64:
        return f"an integer of about {abs(value).bit_length() * 0.30103:.0f} digits"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return f"an object of {len(value)} fields"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    return f"a {type(value).__name__}"
