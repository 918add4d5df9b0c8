"""The deterministic simulation harness: the real coordination core under seeded faults.

``World`` wires the core's machines through a simulated clock, network and decision log;
``FaultPlan`` holds every fault knob; ``run_seed``/``run_many`` run and summarise; the checkers
in ``sim.checkers`` say what must always hold.
"""

from sim.checkers import CHECKERS, Violation
from sim.faults import FaultPlan
from sim.runner import run_many, run_seed
from sim.world import SimOptions, World

__all__ = ["CHECKERS", "FaultPlan", "SimOptions", "Violation", "World", "run_many", "run_seed"]
