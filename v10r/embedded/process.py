"""Stopping a child process the way a supervisor does: SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess


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
