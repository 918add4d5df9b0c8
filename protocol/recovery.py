"""Theory of operation: recovery on a new leader.

A leader keeps nothing that matters in memory: votes, acknowledgements and timers are all
rebuilt or re-requested. On taking over, it scans the sessions the ledger has not settled and
takes up each where the applied state left it:

* ``initialized``: queue it for planning (again); the ledger keeps the first ``Planned``.
* ``negotiating`` with no decision: prepare again. Agents that already voted yes still hold
  their reservation and answer yes again, so a failover does not fail sessions in flight; a
  decision appended by the previous leader and applied later still wins in the ledger.
* ``executing``: resend ``Commit`` to every subtask without a result and restart its deadline.
* terminal but not settled: resend the final word until every participant acknowledges.

Recovery is idempotent: running it twice on the same ledger yields the same coordinators and
the same resends, and every resend is safe because every handler is idempotent.
"""

from __future__ import annotations

from protocol.coordinator import Coordinator
from protocol.defects import NO_DEFECTS, Defects
from protocol.effects import Effect
from protocol.ledger import Ledger
from protocol.model import Timing
from protocol.planner import AdmissionQueue
from protocol.progress import PeerProgress
from protocol.session_table import SessionState


def recover(
    ledger: Ledger,
    term: int,
    timing: Timing,
    now: float,
    queue: AdmissionQueue,
    progress: PeerProgress,
    defects: Defects = NO_DEFECTS,
) -> tuple[dict[str, Coordinator], list[Effect]]:
    coordinators: dict[str, Coordinator] = {}
    effects: list[Effect] = []
    for record in ledger.active_sessions():
        if record.state is SessionState.INITIALIZED:
            queue.add(record)
            continue
        coordinator = Coordinator(record.session_id, term, timing, defects, progress)
        coordinators[record.session_id] = coordinator
        effects += coordinator.begin(now, ledger)
    return coordinators, effects + queue.drain(ledger)
