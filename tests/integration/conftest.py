"""Integration fixtures: real components on 127.0.0.1, started and stopped by the test session."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """Ports the kernel says are free now on 127.0.0.1 (bound and released at once)."""
    sockets = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
