"""Planted bugs: deliberate defects the simulator switches on to prove its checkers bite.

Each name disables one safety rule in the core. They exist only so that ``mca sim
--planted-bug NAME`` can show the checker that catches the defect; nothing else sets them.
"""

from __future__ import annotations

COMMIT_BEFORE_APPEND = "commit-before-append"
PARTICIPANT_UNILATERAL_ABORT = "participant-unilateral-abort"
NO_IDEMPOTENCY = "no-idempotency"
#: Group commit loses the order of the records within a batch (they are applied reversed).
BATCH_REORDERED = "batch-reordered"

PLANTED_BUGS = (COMMIT_BEFORE_APPEND, PARTICIPANT_UNILATERAL_ABORT, NO_IDEMPOTENCY, BATCH_REORDERED)

Defects = frozenset[str]
NO_DEFECTS: Defects = frozenset()
