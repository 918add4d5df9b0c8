"""A long embedding job (an agent's first start) reports its progress chunk by chunk, and what a
chunk computed is in the cache at once, so a start cut short recomputes only the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import embeddings
from knowledge.embeddings import Embedder, print_progress


def test_misses_are_computed_in_chunks_and_each_chunk_is_kept(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "CHUNK", 2)
    heard: list[tuple[int, int]] = []
    first = Embedder(tmp_path / "cache.sqlite", progress=lambda done, total: heard.append((done, total)))
    first._model = embedder._load()  # the session's model: loading it again costs seconds
    texts = ["oats with milk", "lentil soup", "barbell squat"]
    vectors = first.embed(texts)
    first.close()
    assert heard == [(2, 3), (3, 3)] and first.computed_total == 3
    again = Embedder(tmp_path / "cache.sqlite")
    assert (again.embed(texts) == vectors).all() and again.computed_total == 0  # every chunk was stored
    again.close()


def test_progress_is_printed_at_each_tenth_of_a_long_job_only(capsys: pytest.CaptureFixture[str]) -> None:
    report = print_progress("npa-1")
    for done in range(0, 8_463 + 1, 500):
        report(done, 8_463)
    lines = capsys.readouterr().err.splitlines()
    assert 9 <= len(lines) <= 11 and lines[-1].startswith("npa-1: embedded 8,000 of 8,463 texts")
    short = print_progress("wpa-1")
    short(10, 10)  # a job of one chunk says nothing
    assert capsys.readouterr().err == ""
