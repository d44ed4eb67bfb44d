"""Container health check for the v10r services: exit 0 when healthy, 1 otherwise.

When the service serves metrics (`$V10R_METRICS_PORT`), healthy means its `/readyz`
answers 200: the process runs and reaches its database, queue and provider (see
`v10r.ops.health`). Otherwise healthy means the container's main process (PID 1) is
alive and not a zombie, and the database answers a query with the credentials the
service itself uses (`$DATABASE_URL`). It prints one line and never the DSN's password.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

TIMEOUT_S = 5.0


def main_process_alive(pid: int = 1) -> bool:
    """True when /proc says the process exists and is not a zombie or dead."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines()
                  if line.startswith("State:")), "?")
    return state not in ("Z", "X")


async def database_answers(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S)
    except Exception:  # any failure means "not healthy"; the reason is in the service log
        return False
    try:
        return await conn.fetchval("SELECT 1", timeout=TIMEOUT_S) == 1
    finally:
        await conn.close()


def readiness(port: int) -> tuple[bool, str]:
    """(ready?, one line saying why) from the service's own `/readyz`."""
    import json
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S):
            return True, "healthy"
    except urllib.error.HTTPError as exc:
        try:
            checks = json.loads(exc.read()).get("checks", {})
        except ValueError:
            checks = {}
        failing = "; ".join(f"{k}: {v}" for k, v in sorted(checks.items()) if v != "ok")
        return False, f"unhealthy: not ready ({failing or f'HTTP {exc.code}'})"
    except (OSError, TimeoutError) as exc:
        return False, f"unhealthy: /readyz on port {port} does not answer ({exc})"


def main() -> int:
    port = os.environ.get("V10R_METRICS_PORT", "").strip()
    if port.isdigit():
        ready, line = readiness(int(port))
        print(line)
        return 0 if ready else 1
    pid = int(os.environ.get("V10R_HEALTH_PID", "1"))
    if not main_process_alive(pid):
        print(f"unhealthy: process {pid} is not running")
        return 1
    dsn = os.environ.get("DATABASE_URL")
    if dsn and not asyncio.run(database_answers(dsn)):
        print("unhealthy: the database does not answer with $DATABASE_URL")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
