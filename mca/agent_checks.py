"""Theory of operation: what a replica refuses from an agent.

The leader takes an agent's word only for what the agent may say, whoever its certificate says
it is (``mca.boundary`` made sure of that much): a message must name the caller as its sender and
be about a session that exists and a subtask assigned to the caller; its numbers and words must
fit what the log, the snapshots and the read model can hold. A registration must be the
caller's own, within the grant of its deployment entry, and not of an earlier life. A message
about a retired session is a late repeat, dropped without a word. Each check answers with the
gRPC status and a message that names the field; none of them appends anything.

Pure functions of the message, the caller and the ledger; ``AgentChecks`` runs them for the
services and the leader's streams under the log's guard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import grpc

from mca.catalog import check_document
from mca.livestate import Progress
from mca.tls import Principal
from mca.topology import Grant
from mca.views import STATUS
from protocol import messages as m
from protocol.errors import CoordinationError, UnknownSession, shown
from protocol.leader import check_register
from protocol.ledger import Ledger
from protocol.model import RESULT_DOCUMENT_LENGTH_MAX, Outcome, params_refusal, text_refusal

if TYPE_CHECKING:
    from mca.raftlog import RaftDecisionLog

#: A refused message of a batch: its index, the status, and why.
Refused = tuple[int, grpc.StatusCode, str]
M = TypeVar("M")  # the kind of message sifted: what goes in typed comes out typed
#: Not refused, not stepped: a late repeat about a session that settled and retired.
_LATE = (grpc.StatusCode.OK, "late")


def refusal(message: object, agent_id: str, ledger: Ledger) -> tuple[grpc.StatusCode, str]:
    """Why an agent's protocol message is refused at the boundary ((OK, '') when it is taken):
    it must be the caller's own, about a session that exists and a subtask assigned to the
    caller; a result's document must be one the read model can store."""
    claimed = getattr(message, "agent_id", None)
    if claimed != agent_id:
        return grpc.StatusCode.PERMISSION_DENIED, f"agent_id: {shown(str(claimed))} is not the caller ({agent_id})"
    session_id = getattr(message, "session_id", "")
    record = ledger.session(session_id)
    if record is None:
        if ledger.retired(session_id):
            return _LATE
        return grpc.StatusCode.NOT_FOUND, f"session_id: {UnknownSession(session_id)}"
    subtask_id = getattr(message, "subtask_id", "")
    if not any(a.subtask_id == subtask_id and a.agent_id == agent_id for a in record.assignments):
        return (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"subtask_id: {shown(subtask_id)} of session {session_id} is not assigned to {agent_id}",
        )
    if isinstance(message, m.Vote):
        why = params_refusal("offers", message.offers) or text_refusal("reason", message.reason)
        if why:
            return grpc.StatusCode.INVALID_ARGUMENT, why
    if isinstance(message, m.Result):
        why = outcome_refusal(message.outcome)
        if why:
            return grpc.StatusCode.INVALID_ARGUMENT, why
    return grpc.StatusCode.OK, ""


def outcome_refusal(outcome: Outcome) -> str:
    """Why an agent's outcome cannot travel ('' when it can): bounded names, numbers and words,
    and a document the read model can store. The agent host checks its own results with this
    before they leave, so a bad one fails its subtask with the reason instead of being refused
    and resent until the execution times out."""
    why = params_refusal("outcome.output", outcome.output) or text_refusal("outcome.error", outcome.error)
    if why or not outcome.document:
        return why
    if len(outcome.document) > RESULT_DOCUMENT_LENGTH_MAX:
        return f"outcome.document: {len(outcome.document)} characters; at most {RESULT_DOCUMENT_LENGTH_MAX}"
    why = check_document(outcome.document)
    return f"outcome.document: {why}" if why else ""


def sift(messages: list[M], agent_id: str, ledger: Ledger) -> tuple[list[M], list[Refused]]:
    """The messages of ``agent_id`` that pass the checks (``refusal``), and the refused ones. A
    message about a retired session is a late repeat: neither. The caller holds the guard."""
    taken: list[M] = []
    refused: list[Refused] = []
    for i, message in enumerate(messages):
        code, why = refusal(message, agent_id, ledger)
        if code is not grpc.StatusCode.OK:
            refused.append((i, code, why))
        elif not why:
            taken.append(message)
    return taken, refused


def registration_refusal(
    message: m.Register, principal: Principal, grants: Mapping[str, Grant], ledger: Ledger
) -> tuple[grpc.StatusCode, str] | None:
    """Why ``principal`` may not register ``message`` (None: it may): only as itself, within
    its grant, and not as an earlier life than the registered one. The caller holds the guard."""
    if message.agent_id != principal.name:
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"agent_id: {shown(message.agent_id)} is not the caller ({principal})",
        )
    grant = grants.get(message.agent_id)
    if grant is None:
        return grpc.StatusCode.PERMISSION_DENIED, f"agent {principal.name} is not an agent of this deployment"
    extra = sorted(set(message.capabilities) - grant.capabilities)
    if extra:
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"capabilities: {shown(extra[0])} is not granted to {principal.name} "
            f"(granted: {', '.join(sorted(grant.capabilities))})",
        )
    if message.capacity > grant.capacity:
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"capacity: {message.capacity} is more than the {grant.capacity} granted to {principal.name}",
        )
    try:
        check_register(message, ledger)
    except CoordinationError as exc:
        return STATUS.get(exc.status, grpc.StatusCode.FAILED_PRECONDITION), str(exc)
    return None


def progress_refusal(report: Progress, agent_id: str, ledger: Ledger) -> str:
    """Why a progress report cannot be taken (empty: it can): it must come from the agent a
    subtask of an executing session is assigned to. The caller holds the guard."""
    if not math.isfinite(report.fraction) or not 0.0 <= report.fraction <= 1.0:
        return f"fraction: {report.fraction} is not between 0 and 1"
    record = ledger.session(report.session_id)
    if record is None:
        return f"session_id: {UnknownSession(report.session_id, ledger.retired(report.session_id))}"
    if record.state.value != "executing":
        return f"session_id: session {record.session_id} is {record.state.value}, not executing"
    owner = next((a.agent_id for a in record.assignments if a.subtask_id == report.subtask_id), None)
    if owner is None:
        return f"subtask_id: {shown(report.subtask_id)} is not a subtask of {report.session_id}"
    if owner != agent_id:
        return f"agent_id: subtask {report.subtask_id} is assigned to {owner}, not {shown(agent_id)}"
    return ""


class AgentChecks:
    """The checks above on the replica's ledger, each under the log's guard."""

    def __init__(self, log_of: Callable[[], RaftDecisionLog], grants: Mapping[str, Grant]) -> None:
        self._log = log_of
        self._grants = grants

    def sift(self, messages: list[M], agent_id: str) -> tuple[list[M], list[Refused]]:
        """``sift`` under the log's guard."""
        with self._log().guard:
            return sift(messages, agent_id, self._log().ledger)

    def registration_refused(self, message: m.Register, principal: Principal) -> tuple[grpc.StatusCode, str] | None:
        with self._log().guard:
            return registration_refusal(message, principal, self._grants, self._log().ledger)

    def check_progress(self, report: Progress, agent_id: str) -> str:
        with self._log().guard:
            return progress_refusal(report, agent_id, self._log().ledger)
