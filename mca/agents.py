"""Agents that ship with the runtime itself (the domain agents live in ``npa`` and ``wpa``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from mca.sdk import Agent, Job


class EchoAgent(Agent):
    """Capability ``echo``: returns twice the payload's ``value`` (after ``sleep`` seconds, and
    failing on ``fail``). For smoke tests, examples and benchmarks of the runtime itself."""

    capabilities = ("echo",)

    def __init__(self, agent_id: str = "echo", capacity: int = 16) -> None:
        self.agent_id = agent_id
        self.capacity = capacity

    async def execute(self, job: Job) -> Mapping[str, float]:
        if job.inputs.get("sleep"):
            await asyncio.sleep(job.inputs["sleep"])
        if job.inputs.get("fail"):
            raise RuntimeError("the task asked to fail")
        return {"value": 2 * job.inputs.get("value", 0.0)}
