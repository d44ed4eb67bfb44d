"""What `faust -A v10r worker` finds at import: settings from the environment, one agent
and dedup table per Kafka pipeline, and no connection to anything yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.faust.helpers import ROOT, kafka_spec
from v10r.errors import SpecError
from v10r.stream.progress import total
from v10r.stream.settings import FaustSettings
from v10r.work.settle import Counters

PROBE = """
import json, v10r
app = v10r.app
from v10r import faust_app
print(json.dumps({"agents": sorted(app.agents), "tables": sorted(app.tables),
                  "pipelines": [p.name for p in faust_app.pipelines],
                  "broker": [str(u) for u in app.conf.broker]}))
"""


def declared(spec_dir: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, cwd=spec_dir, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "V10R_PIPELINES": str(spec_dir),
             # nothing listens there: an import that connected would fail or hang
             "V10R_KAFKA_URL": "kafka://127.0.0.1:9,127.0.0.1:10", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_declares_an_agent_and_a_dedup_table_per_kafka_pipeline(tmp_path: Path) -> None:
    for name, kind in (("on_kafka", "kafka"), ("on_redis", "redis")):
        spec = kafka_spec(name, name, "http://127.0.0.1:9/v1", kind=kind)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))

    only_kafka = declared(tmp_path)
    everything = declared(tmp_path, V10R_FAUST_ALL_PIPELINES="1")

    assert only_kafka["pipelines"] == ["on_kafka"]
    assert only_kafka["agents"] == ["v10r.agent.on_kafka"]
    assert only_kafka["tables"] == ["progress", "seen-on_kafka"]
    assert only_kafka["broker"] == ["kafka://127.0.0.1:9", "kafka://127.0.0.1:10"]
    assert everything["pipelines"] == ["on_kafka", "on_redis"]


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = FaustSettings.from_env({"V10R_FAUST_BATCH_SIZE": "32",
                                       "V10R_FAUST_WEB_PORT": "6067",
                                       "V10R_FAUST_BATCH_WITHIN_S": "0.05"})
    assert (settings.batch_size, settings.web_port, settings.batch_within_s) == (32, 6067, 0.05)
    assert FaustSettings.from_env({}) == FaustSettings()
    assert FaustSettings().web_port is None and FaustSettings().store == "memory://"


def test_a_malformed_setting_names_the_variable() -> None:
    with pytest.raises(SpecError, match="V10R_FAUST_BATCH_WITHIN_S"):
        FaustSettings.from_env({"V10R_FAUST_BATCH_WITHIN_S": "soon"})


def test_progress_totals_add_up_every_run_of_a_pipeline_only() -> None:
    entries = [("docs/run1", {"processed": 3, "written": 2, "skipped": 1}),
               ("docs/run2", {"processed": 4, "written": 4, "unknown": 9}),
               ("docs_v2/run1", {"processed": 100})]
    assert total(entries, "docs") == Counters(processed=7, written=6, skipped=1)
