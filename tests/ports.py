"""Loopback ports for tests that start servers."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_listener(port: int, timeout: float, alive=lambda: True) -> bool:
    """Whether something accepts connections on the loopback port within timeout seconds (while alive())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False
