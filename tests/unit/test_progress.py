"""Resends go only where a message was lost (``protocol.progress``): a coordinator whose retry
timer fires resends to an agent that answered a later request or said nothing for the retry
interval, and leaves alone an agent still working through what was sent before it; a
participant does the same with its results and the MCA."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.coordinator import Coordinator
from protocol.effects import Effect, Send, SetTimer
from protocol.events import Booted, ExecutionDone, TimerFired
from protocol.ledger import Ledger
from protocol.messages import Commit, Prepare, RegisterReply, Result, ResultAccepted
from protocol.model import Assignment
from protocol.participant import Participant
from protocol.progress import PATIENCE, PeerProgress
from protocol.timers import ResultRetry, Retry
from tests.unit.helpers import OK, TIMING, session_in

NOW = 10.0


def prepared_to(effects: list[Effect]) -> list[str]:
    return sorted(e.to for e in effects if isinstance(e, Send) and isinstance(e.message, Prepare))


@dataclass
class Preparing:
    """Session s1 with its prepares sent at NOW to wpa and npa."""

    progress: PeerProgress = field(default_factory=PeerProgress)
    ledger: Ledger = field(default_factory=lambda: session_in("planned"))

    def __post_init__(self) -> None:
        self.coordinator = Coordinator("s1", 2, TIMING, progress=self.progress)
        assert prepared_to(self.coordinator.begin(NOW, self.ledger)) == ["npa", "wpa"]

    def retry(self, at: float) -> list[Effect]:
        return self.coordinator.step(TimerFired(Retry("s1")), at, self.ledger)


def test_a_busy_agent_gets_no_resend_and_a_silent_one_does() -> None:
    s = Preparing()
    progress = s.progress
    # wpa answers a request sent before ours: it is alive, working through its queue.
    progress.answered("wpa", NOW - 1.0, NOW + TIMING.retry / 2)
    effects = s.retry(NOW + TIMING.retry)
    assert prepared_to(effects) == ["npa"]  # npa said nothing for the whole interval
    assert any(isinstance(e, SetTimer) and e.key == Retry("s1") for e in effects)  # still watching


def test_an_agent_that_answered_a_later_request_gets_the_lost_one_again() -> None:
    s = Preparing()
    progress = s.progress
    progress.answered("wpa", NOW + 0.01, NOW + 0.02)  # sent after our prepare, answered: ours was lost
    progress.heard("npa", NOW + TIMING.retry / 2)  # npa busy with older work
    assert prepared_to(s.retry(NOW + TIMING.retry)) == ["wpa"]


def test_nothing_is_resent_while_both_agents_work_and_the_timer_stays() -> None:
    s = Preparing()
    progress = s.progress
    for agent in ("wpa", "npa"):
        progress.heard(agent, NOW + TIMING.retry / 2)
    effects = s.retry(NOW + TIMING.retry)
    assert prepared_to(effects) == []
    assert [e for e in effects if isinstance(e, SetTimer)] != []
    # Silent from then on for a whole (doubled) interval: both get it again.
    assert prepared_to(s.retry(NOW + TIMING.retry / 2 + 3 * TIMING.retry)) == ["npa", "wpa"]


def test_a_new_life_of_an_agent_starts_with_nothing_heard() -> None:
    progress = PeerProgress()
    progress.answered("wpa", 5.0, 6.0)
    assert progress.lost("wpa", 4.0, 6.1, 1.0)  # a later request was answered
    assert not progress.lost("wpa", 5.5, 6.1, 1.0)  # heard 0.1 s ago, nothing later answered
    progress.forget("wpa")
    assert progress.lost("wpa", 5.5, 6.1, 1.0)  # never heard from (this life): resend


def test_silence_shorter_than_twice_the_agents_lag_is_not_loss() -> None:
    progress = PeerProgress()
    progress.answered("wpa", 1.0, 3.0)  # a loaded agent: two seconds to answer
    assert not progress.lost("wpa", 2.0, 5.0, 0.5)  # two seconds of silence: it answers in batches
    assert progress.lost("wpa", 2.0, 7.5, 0.5)  # over twice its lag: gone, resend


def executed() -> Participant:
    """npa holding s1.0 and s2.0 committed, and its result for s1.0 sent at NOW."""
    p = Participant("npa", ("plan_meal",), 2, 1, TIMING)
    p.step(Booted(), NOW)
    p.step(RegisterReply(1, "npa", 1), NOW)
    for sid in ("s1", "s2"):
        p.step(Prepare(1, 1, sid, Assignment(f"{sid}.0", "npa", "plan_meal", 1)), NOW)
        p.step(Commit(1, 1, sid, f"{sid}.0"), NOW)
    assert [e.message for e in p.step(ExecutionDone("s1", "s1.0", 1, OK), NOW) if isinstance(e, Send)]
    return p


def results(effects: list[Effect]) -> list[str]:
    return [e.message.subtask_id for e in effects if isinstance(e, Send) and isinstance(e.message, Result)]


def test_a_participant_keeps_its_result_while_the_mca_is_busy_with_earlier_ones() -> None:
    p = executed()
    p.step(Commit(1, 1, "s2", "s2.0"), NOW + TIMING.retry / 2)  # the MCA is talking: alive
    effects = p.step(TimerFired(ResultRetry("s1", "s1.0")), NOW + TIMING.retry)
    assert results(effects) == []
    assert SetTimer(ResultRetry("s1", "s1.0"), NOW + 3 * TIMING.retry) in effects  # still watching


def test_a_participant_resends_a_result_the_mca_skipped() -> None:
    p = executed()
    p.step(ExecutionDone("s2", "s2.0", 1, OK), NOW + 0.01)  # a later result...
    p.step(ResultAccepted(1, 1, "s2", "s2.0"), NOW + 0.02)  # ...accepted: the one for s1.0 was lost
    assert results(p.step(TimerFired(ResultRetry("s1", "s1.0")), NOW + TIMING.retry)) == ["s1.0"]


def test_a_message_unanswered_for_long_goes_again_even_to_a_chatty_peer() -> None:
    progress = PeerProgress()
    progress.heard("wpa", 10.9)  # always talking
    assert not progress.lost("wpa", 10.0, 11.0, 1.0)
    assert progress.lost("wpa", 10.0, 10.0 + PATIENCE * 1.0, 1.0)


def test_a_commit_is_not_taken_for_lost_while_its_agent_answers_later_requests() -> None:
    """The result answers a commit after the execution, so an agent that has answered requests
    sent after the commit is still working on it: only silence or the patience resends it."""
    progress = PeerProgress()
    ledger = session_in("committed")
    coordinator = Coordinator("s1", 2, TIMING, progress=progress)
    commits = coordinator.begin(NOW, ledger)
    assert sorted(e.to for e in commits if isinstance(e, Send) and isinstance(e.message, Commit)) == ["npa", "wpa"]
    for agent in ("wpa", "npa"):
        progress.answered(agent, NOW + 0.01, NOW + 0.02)  # a vote for a later session, say
    retry = coordinator.step(TimerFired(Retry("s1")), NOW + TIMING.retry, ledger)
    assert [e for e in retry if isinstance(e, Send)] == []
    # Unanswered for PATIENCE times the wait: the commit goes again, to a chatty agent too.
    for agent in ("wpa", "npa"):
        progress.heard(agent, NOW + 2 * TIMING.retry)
    later = coordinator.step(TimerFired(Retry("s1")), NOW + 2 * PATIENCE * TIMING.retry, ledger)
    assert sorted(e.to for e in later if isinstance(e, Send) and isinstance(e.message, Commit)) == ["npa", "wpa"]
