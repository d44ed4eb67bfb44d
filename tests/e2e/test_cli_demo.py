"""`v10r demo`, the README's first command, end to end: embedded PostgreSQL, in-process
queue and workers, the local model, live changes and a semantic search."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
V10R = [sys.executable, "-m", "v10r"]


def run_demo(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("DATABASE_URL", None)
    return subprocess.run([*V10R, "demo", "--data-dir", str(data_dir), *args], env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def test_demo_embeds_every_row_shows_live_changes_and_searches(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", "--query", "my parcel arrived broken")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "270 help-centre articles" in out
    assert re.search(r"embedding .* 270/270 .* 0 pending", out), out
    live = re.findall(r"│ (insert|update) +│ +\d+ +│ .+ │ +([\d,]+) ms │", out)
    assert [kind for kind, _ in live] == ["insert", "insert", "insert", "update"], out
    assert "semantic search: “my parcel arrived broken”" in out
    hits = re.findall(r"│ +\d+ │ (.+?) +│ +(0\.\d{3}) │", out)
    assert len(hits) == 5 and "Shipping and delivery" in hits[0][0], out
    assert "Point v10r at your own database" in out
    assert "Traceback" not in result.stderr
    assert not _processes_under(tmp_path), "the demo left its database running"


def test_demo_reuses_its_database_on_the_next_run(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert run_demo(data).returncode == 0
    again = run_demo(data)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already applied" in again.stdout
    assert "273 help-centre articles" in again.stdout  # + the 3 live inserts of the first run
    reset = run_demo(data, "--reset")
    assert "270 help-centre articles" in reset.stdout


def test_demo_on_kafka_runs_the_production_path(tmp_path: Path) -> None:
    """`--queue kafka`: an embedded Kafka-protocol broker and a real `faust -A v10r worker`."""
    result = run_demo(tmp_path / "demo", "--queue", "kafka")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "`faust -A v10r worker` ready" in out
    assert re.search(r"embedding .* 270/270 .* 0 pending", out), out
    assert len(re.findall(r"│ (?:insert|update) +│ +\d+ +│ .+ │ +[\d,]+ ms │", out)) == 4, out
    assert "semantic search" in out
    assert not _processes_under(tmp_path), "the demo left its database, broker or worker running"


def _processes_under(directory: Path) -> list[str]:
    """Processes started in, or given a path inside, `directory`."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        info = process.info
        if str(directory) in " ".join(info["cmdline"] or []) + " " + (info["cwd"] or ""):
            found.append(" ".join(info["cmdline"] or []))
    return found
