"""An agent written with the SDK: a thermostat that joins a negotiation.

Run it in a cluster by naming it in cluster.yaml (the folder of cluster.yaml is on the agents'
import path)::

    agents:
      - {id: thermostat-1, class: "examples.custom_agent:Thermostat", capacity: 4}
    task_types:
      climate: [thermostat, echo]

Its yes vote offers a setpoint; the coordinator records it in the decision log as a negotiated
parameter, and every agent of the session executes with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from mca.sdk import Agent, Assignment, Job


class Thermostat(Agent):
    capabilities = ("thermostat",)

    def __init__(self, agent_id: str = "thermostat", capacity: int = 4) -> None:
        self.agent_id = agent_id
        self.capacity = capacity
        self.applied: dict[str, float] = {}  # side effects, keyed by subtask id (re-runs are harmless)

    def offers(self, assignment: Assignment) -> Mapping[str, float]:
        return {"setpoint_c": 21.5}

    async def execute(self, job: Job) -> Mapping[str, float]:
        setpoint = job.parameters.get("setpoint_c", 20.0)
        self.applied[job.subtask_id] = setpoint
        return {"setpoint_c": setpoint}

    async def compensate(self, subtask_id: str) -> None:
        self.applied.pop(subtask_id, None)
