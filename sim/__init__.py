"""The deterministic simulation harness: the real coordination core under seeded faults.

``World`` wires the core's machines through a simulated clock (``sim.schedule``), network
(``sim.network``), Raft log (``sim.raftmodel``), agents (``sim.agents``) and clients
(``sim.workload``); ``FaultPlan`` holds every fault knob and ``SimOptions`` the shape of a run;
``run_seed``/``run_many`` run and summarise; the checkers in ``sim.checkers`` say what must
always hold.
"""

from sim.checkers import CHECKERS, Violation
from sim.faults import FaultPlan
from sim.options import SimOptions
from sim.runner import run_many, run_seed
from sim.world import World

__all__ = ["CHECKERS", "FaultPlan", "SimOptions", "Violation", "World", "run_many", "run_seed"]
