"""Each agent's own knowledge graph and vector index (arrives with the knowledge-layer change)."""
