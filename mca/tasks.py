"""The task type plugin API: what a package imports to give a cluster a task type of its own
(docs/task-types.md).

A task type is a ``TaskType``: a name, a description, a function from the payload (a parsed JSON
object, already checked at the boundary: at most 64 KiB, 64 levels, no values a store cannot
hold) to subtasks that raises ``InvalidTask`` naming the field, its default success criteria,
and per capability whose results carry a JSON document a ``ResultKind``: the read-model
collection and domain event of those documents and how ``mca submit`` shows them. A plugin
module exposes one ``TaskType`` or a list of them under a name, and cluster.yaml names it as
``module:attribute``::

    task_type_plugins: ["wellness.tasks:TASK_TYPES"]

The plugin imports this module and ``mca`` imports nothing of the plugin's package, so the
runtime stays free of any domain (the import contracts in pyproject.toml hold that line).
"""

from __future__ import annotations

from mca.catalog import ResultKind, TaskType, field_path, numbers
from protocol.errors import InvalidTask
from protocol.model import SubtaskSpec, params

__all__ = ["InvalidTask", "ResultKind", "SubtaskSpec", "TaskType", "field_path", "numbers", "params"]
