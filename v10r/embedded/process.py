"""Child processes of the embedded services: a free port to give one, and stopping one
the way a supervisor does (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0, *,
              group: bool = False) -> None:
    """SIGTERM (to its process group when `group`), SIGKILL after `timeout` seconds."""
    if process.poll() is not None:
        return
    send = os.killpg if group else os.kill
    send(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        send(process.pid, signal.SIGKILL)
        process.wait(timeout)
