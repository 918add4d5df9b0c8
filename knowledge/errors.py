"""Typed errors of the knowledge layer.

Theory of operation: every expected failure a caller can act on has its own class under
``KnowledgeError``, so an agent can tell "retry with a fresh version" (``VersionConflict``) from
"the input is wrong" (``BadInput``) from "you may not touch that graph" (``AccessDenied``) without
parsing messages. A broken invariant of our own code is a bug and raises ``InvariantViolation``
(never ``assert``, which ``python -O`` strips).
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "BadInput",
    "InvariantViolation",
    "KnowledgeError",
    "QueryFailed",
    "SnapshotError",
    "VersionConflict",
]


class KnowledgeError(Exception):
    """Base class of every error the knowledge layer raises on purpose."""


class BadInput(KnowledgeError, ValueError):
    """Malformed or hostile input (unknown label or property, NaN, over-long text...); nothing was written."""


class AccessDenied(KnowledgeError):
    """The backend refused: these credentials may not read or write that graph."""


class BackendUnavailable(KnowledgeError):
    """The graph server, vector index or model could not be reached or started."""


class QueryFailed(KnowledgeError):
    """The backend rejected a query (a bug in our Cypher, or a constraint); the message is the backend's."""


class SnapshotError(KnowledgeError):
    """A snapshot file is unreadable, of an unknown format version, or does not match the target."""


class InvariantViolation(KnowledgeError):
    """A bug: something our own code guarantees did not hold."""


class VersionConflict(KnowledgeError):
    """An optimistic write was based on a stale version: re-read, merge, retry.

    ``expected`` is the version the writer based its change on, ``actual`` the version found
    (``0`` when the item does not exist yet).
    """

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key}: expected version {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual
