"""``VectorIndex``: one agent's own collection of embedded items, searched with filters inside the query.

Theory of operation: each agent owns one Qdrant collection (384 dimensions, cosine). The
embedded default is ``qdrant-client`` local mode, one folder per agent (``QdrantIndex.local``);
production passes a Qdrant server URL (``QdrantIndex.remote``); both speak the same API. A
point's id is derived from its domain key (``uuid5``), so re-indexing the same item overwrites it
instead of duplicating it, and the key is kept in the payload.

Filters are a small typed ``VectorFilter`` (field equals any of these values; field holds none of
these values) translated to a Qdrant ``Filter`` and applied by the index during the search, so
``k`` hits are ``k`` hits that pass the filter (filtering after the search would return fewer).
Filterable payload fields come from a fixed allow-list. Local mode ignores payload indexes and
scans: it is a brute-force search, which the bench measures at the real sizes.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models

from knowledge.embeddings import DIMENSIONS
from knowledge.errors import BadInput
from knowledge.validate import check_agent_id, check_value

__all__ = ["FILTER_FIELDS", "Hit", "Point", "QdrantIndex", "VectorFilter", "VectorIndex"]

# Payload fields a filter may name. Values are strings or lists of strings in the payload. Other payload
# fields (numbers a domain re-ranks by, say) are stored and returned but cannot be filtered on.
FILTER_FIELDS = frozenset(
    {"kind", "group", "role", "allergens", "conflicts_with", "equipment", "primary", "muscles", "level", "category"}
)

_POINT_NAMESPACE = uuid.UUID("6f1d3c1e-4b0a-4d8e-9a51-2f6c0b7e9d10")


@dataclass(frozen=True, slots=True)
class Point:
    """An item to index: its domain key (``food:01001``), unit vector and payload."""

    key: str
    vector: Sequence[float] | npt.NDArray[np.float32]
    payload: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    key: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VectorFilter:
    """``must``: field has any of the values; ``must_not``: field has none of them. Fields from ``FILTER_FIELDS``."""

    must: Mapping[str, Sequence[str]] = field(default_factory=dict)
    must_not: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def to_qdrant(self) -> models.Filter | None:
        def conditions(spec: Mapping[str, Sequence[str]]) -> list[models.Condition]:
            out: list[models.Condition] = []
            for name, values in spec.items():
                if name not in FILTER_FIELDS:
                    raise BadInput(f"unknown filter field {name!r} (allowed: {', '.join(sorted(FILTER_FIELDS))})")
                if isinstance(values, str) or not values or not all(isinstance(v, str) for v in values):
                    raise BadInput(f"filter {name!r} needs a non-empty list of strings")
                out.append(models.FieldCondition(key=name, match=models.MatchAny(any=list(values))))
            return out

        must, must_not = conditions(self.must), conditions(self.must_not)
        if not must and not must_not:
            return None
        return models.Filter(must=must or None, must_not=must_not or None)


# Payload fields the index sets itself.
_RESERVED = frozenset({"key", "digest"})


def _point_digest(key: str, vector: list[float], payload: Mapping[str, object]) -> str:
    h = hashlib.sha256(key.encode())
    h.update(np.asarray(vector, dtype="<f4").tobytes())
    h.update(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()[:32]


def point_id(key: str) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, key))


@runtime_checkable
class VectorIndex(Protocol):
    """One agent's vector collection. Implementation: ``QdrantIndex`` (local folder or server)."""

    def upsert(self, points: Sequence[Point]) -> int: ...

    def search(
        self, vector: Sequence[float] | npt.NDArray[np.float32], k: int = 10, where: VectorFilter | None = None
    ) -> list[Hit]: ...

    def count(self) -> int: ...

    def points(self) -> Iterator[Point]:
        """Every point with its vector (for snapshots)."""
        ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def _check_vector(vector: Sequence[float] | npt.NDArray[np.float32]) -> list[float]:
    values = [float(x) for x in vector]
    if len(values) != DIMENSIONS:
        raise BadInput(f"vector has {len(values)} dimensions, expected {DIMENSIONS}")
    if not all(math.isfinite(x) for x in values):
        raise BadInput("vector holds NaN or infinity")
    return values


class QdrantIndex:
    """A ``VectorIndex`` on one Qdrant collection named after the agent."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self._client = client
        self.collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
            )

    @classmethod
    def local(cls, folder: Path | str, agent_id: str) -> QdrantIndex:
        """Local mode in ``folder`` (one folder per agent; local mode allows one client per folder)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return cls(QdrantClient(path=str(folder)), f"kg-{check_agent_id(agent_id)}")

    @classmethod
    def remote(cls, url: str, agent_id: str, api_key: str | None = None) -> QdrantIndex:
        index = cls(QdrantClient(url=url, api_key=api_key), f"kg-{check_agent_id(agent_id)}")
        for name in FILTER_FIELDS:  # a server uses payload indexes for filtered search; local mode ignores them
            index._client.create_payload_index(index.collection, name, models.PayloadSchemaType.KEYWORD)
        return index

    def upsert(self, points: Sequence[Point], batch: int = 1024) -> int:
        """Write the points that are new or changed; returns how many were written.

        Local mode writes each point in its own SQLite transaction (about 1.5 ms a point here), so
        re-indexing 8,463 unchanged foods at every agent start would cost ~14 s. Each point carries
        a ``digest`` of its vector and payload; points whose stored digest matches are skipped.
        """
        structs: list[models.PointStruct] = []
        for p in points:
            if not isinstance(p.key, str) or not p.key:
                raise BadInput("a point needs a non-empty string key")
            for name, value in p.payload.items():
                if name in _RESERVED:
                    raise BadInput(f"payload field {name!r} is reserved")
                check_value(f"payload.{name}", value)
            vector = _check_vector(p.vector)
            digest = _point_digest(p.key, vector, p.payload)
            structs.append(
                models.PointStruct(
                    id=point_id(p.key), vector=vector, payload={**p.payload, "key": p.key, "digest": digest}
                )
            )
        stored: dict[str, object] = {}
        for start in range(0, len(structs), batch):
            records = self._client.retrieve(
                self.collection, ids=[s.id for s in structs[start : start + batch]], with_payload=["digest"]
            )
            stored.update({str(r.id): (r.payload or {}).get("digest") for r in records})
        todo = [s for s in structs if s.payload is None or stored.get(str(s.id)) != s.payload["digest"]]
        for start in range(0, len(todo), batch):
            self._client.upsert(self.collection, points=todo[start : start + batch], wait=True)
        return len(todo)

    def search(
        self, vector: Sequence[float] | npt.NDArray[np.float32], k: int = 10, where: VectorFilter | None = None
    ) -> list[Hit]:
        if not 1 <= k <= 1000:
            raise BadInput(f"k must be between 1 and 1000, not {k}")
        response = self._client.query_points(
            self.collection,
            query=_check_vector(vector),
            query_filter=where.to_qdrant() if where is not None else None,
            limit=k,
            with_payload=True,
        )
        hits = []
        for p in response.points:
            payload = dict(p.payload or {})
            payload.pop("digest", None)
            hits.append(Hit(str(payload.get("key")), float(p.score), payload))
        return hits

    def count(self) -> int:
        return int(self._client.count(self.collection, exact=True).count)

    def points(self) -> Iterator[Point]:
        offset: Any = None
        for _ in range(1_000_000):  # bounded: one page per iteration
            records, offset = self._client.scroll(
                self.collection, limit=512, offset=offset, with_payload=True, with_vectors=True
            )
            for r in records:
                payload = dict(r.payload or {})
                key = str(payload.pop("key"))
                payload.pop("digest", None)
                vector = r.vector
                if not isinstance(vector, list):
                    raise BadInput(f"point {key}: unexpected vector format")
                yield Point(key, [float(x) for x in vector], payload)  # type: ignore[arg-type]
            if offset is None:
                return

    def clear(self) -> None:
        self._client.delete_collection(self.collection)
        self._client.create_collection(
            self.collection, vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
        )

    def close(self) -> None:
        self._client.close()
