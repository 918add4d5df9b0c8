"""Theory of operation: the simulated clients and the workload they submit.

The workload is drawn from the seed before the run starts (or given by a scenario): tasks of a
single echo subtask or of two planning subtasks, each submitted by one of a few clients under
an idempotency key at a random time in the first part of the fault window. A client retries
every 300 ms until it is answered, and, as real users do, sometimes submits the same key again
on purpose after the answer and sometimes cancels a while after it. A cancel is retried until
it is answered too. At the end every task must have been answered, and every cancel too: a
request nobody answers is a lost session.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from protocol.messages import Cancel, CancelReply, Message, Submit, SubmitReply
from protocol.model import SubtaskSpec, TaskSpec
from sim.checkers import Checkers, Violation
from sim.schedule import ClientCancel, ClientSubmit, Shared

MCA = "mca"  # the address of whichever replicas act as leader
RETRY = 0.3  # seconds between a client's retries


@dataclass
class ClientTask:
    """A task a client submits, how it behaves around it, and the answers it got."""

    key: str
    task: TaskSpec
    at: float
    repeat: bool
    cancel_after: float | None
    session_id: str = ""
    cancel_answered: bool = False


def draw_workload(rng: random.Random, sessions: int, clients: int, fault_window: float) -> list[tuple[str, ClientTask]]:
    """The seed's workload: which client submits which task, when, and what else it does."""
    tasks = []
    for i in range(sessions):
        kind = rng.choice(("echo", "wellness", "wellness"))
        if kind == "echo":
            subtasks: tuple[SubtaskSpec, ...] = (SubtaskSpec("echo", 1, (("n", float(i)),)),)
        else:
            subtasks = (SubtaskSpec("plan_workout"), SubtaskSpec("plan_meal"))
        task = TaskSpec(kind, subtasks, ("all_subtasks_ok", "outputs_present"))
        client = f"c{i % clients + 1}"
        cancel_after = rng.uniform(0.0, 0.3) if rng.random() < 0.15 else None
        tasks.append(
            (
                client,
                ClientTask(
                    f"{client}-k{i}",
                    task,
                    rng.uniform(0.3, fault_window * 0.6),
                    repeat=rng.random() < 0.3,
                    cancel_after=cancel_after,
                ),
            )
        )
    return tasks


class Clients:
    """The clients' side of every task: submits, cancels, and the answers they got."""

    def __init__(self, shared: Shared, checkers: Checkers, send: Callable[[str, str, Message], None]) -> None:
        self._shared = shared
        self._checkers = checkers
        self._send = send
        self.tasks: list[ClientTask] = []

    def add(self, client: str, ct: ClientTask) -> None:
        """Plan task ``ct``: ``client`` first submits it at ``ct.at``."""
        self.tasks.append(ct)
        self._shared.clock.at(ct.at, ClientSubmit(client, len(self.tasks) - 1))

    def submit(self, client: str, i: int, repeat: bool) -> None:
        ct = self.tasks[i]
        if ct.session_id and not repeat:
            return  # answered: stop retrying
        self._send(client, MCA, Submit(client, ct.key, ct.task))
        if not repeat:
            self._shared.clock.after(RETRY, ClientSubmit(client, i))

    def cancel(self, client: str, i: int) -> None:
        ct = self.tasks[i]
        if ct.cancel_answered:
            return
        self._send(client, MCA, Cancel(client, ct.session_id))
        self._shared.clock.after(RETRY, ClientCancel(client, i))

    def receive(self, client: str, event: object) -> None:
        clock = self._shared.clock
        if isinstance(event, SubmitReply):
            i = next(i for i, ct in enumerate(self.tasks) if ct.key == event.idempotency_key)
            ct = self.tasks[i]
            if event.status != "OK":
                return  # retried by the pending submit timer
            self._checkers.acknowledged(ct.key, event.session_id)
            if not ct.session_id:
                ct.session_id = event.session_id
                if ct.repeat:  # a user who submits the same request again
                    clock.after(self._shared.rng.uniform(0.0, 0.5), ClientSubmit(client, i, repeat=True))
                if ct.cancel_after is not None:
                    clock.after(ct.cancel_after, ClientCancel(client, i))
        elif isinstance(event, CancelReply):
            for ct in self.tasks:
                if ct.session_id == event.session_id:
                    ct.cancel_answered = True

    def check_answered(self) -> None:
        """At the end: every request was answered."""
        for ct in self.tasks:
            if not ct.session_id:
                raise Violation("no-lost-session", f"the client never got an answer for {ct.key}")
            if ct.cancel_after is not None and not ct.cancel_answered:
                raise Violation("no-lost-session", f"the cancel of {ct.session_id} was never answered")
