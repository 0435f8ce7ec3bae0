"""Helpers for tests that run a real server process on loopback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

#: Connection attempts before giving up; each waits up to 50 ms on the process.
CONNECT_ATTEMPTS = 400


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(
    process: subprocess.Popen[bytes], port: int, log: Path
) -> None:
    """Return once ``port`` accepts connections; fail if ``process`` exits first."""
    for _ in range(CONNECT_ATTEMPTS):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        except ConnectionRefusedError:
            pass
        # Waiting on the process both paces the attempts and notices a crash.
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"server exited ({process.returncode}); see {log}")
    raise AssertionError(f"server did not listen on port {port}; see {log}")
