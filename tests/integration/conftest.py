"""Integration fixtures: real components on 127.0.0.1, started and stopped by the test session."""

from __future__ import annotations

from mca.embedded import free_ports

__all__ = ["free_ports"]
