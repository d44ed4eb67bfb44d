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

pytestmark = pytest.mark.integration

PROBE = """
import json, v10r
app = v10r.app
from v10r import faust_app
print(json.dumps({"agents": sorted(app.agents), "tables": sorted(app.tables),
                  "pipelines": [p.name for p in faust_app.pipelines],
                  "broker": [str(u) for u in app.conf.broker],
                  "transport": type(app.transport).__name__,
                  "fetch_wait_ms": app.transport.fetch_wait_ms,
                  "concurrency": [a.concurrency for a in app.agents.values()],
                  "standby_replicas": app.conf.table_standby_replicas}))
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


def test_the_consumer_waits_briefly_for_data_and_runs_batches_in_flight(tmp_path: Path) -> None:
    spec = kafka_spec("docs", "docs", "http://127.0.0.1:9/v1")
    (tmp_path / "docs.yaml").write_text(yaml.safe_dump(spec))

    default = declared(tmp_path)
    tuned = declared(tmp_path, V10R_FAUST_FETCH_WAIT_MS="5", V10R_FAUST_CONCURRENCY="3")

    assert default["transport"] == "FetchWaitTransport"
    assert (default["fetch_wait_ms"], default["concurrency"]) == (50, [2])
    assert (tuned["fetch_wait_ms"], tuned["concurrency"]) == (5, [3])


def test_workers_keep_no_standby_copies_of_each_others_tables_unless_asked(
        tmp_path: Path) -> None:
    spec = kafka_spec("docs", "docs", "http://127.0.0.1:9/v1")
    (tmp_path / "docs.yaml").write_text(yaml.safe_dump(spec))

    assert declared(tmp_path)["standby_replicas"] == 0
    assert declared(tmp_path, V10R_FAUST_STANDBY_REPLICAS="1")["standby_replicas"] == 1


async def test_the_worker_consumer_is_built_with_the_fetch_wait() -> None:
    import faust

    from v10r.stream.consumer import FetchWaitConsumerThread, FetchWaitTransport

    app = faust.App("probe", broker="kafka://127.0.0.1:9")
    app.transport = FetchWaitTransport(app.conf.broker_consumer, app, fetch_wait_ms=7)
    thread = app.consumer._new_consumer_thread()
    assert isinstance(thread, FetchWaitConsumerThread)
    built = thread._create_worker_consumer(app.transport)
    try:
        assert built._fetch_max_wait_ms == 7  # aiokafka's fetcher reads it when it starts
    finally:
        await built.stop()


@pytest.mark.parametrize(("env", "expected"), [
    ({"V10R_FAUST_FETCH_WAIT_MS": "-5"}, (0, 2)),
    ({"V10R_FAUST_CONCURRENCY": "0"}, (50, 1)),
    ({"V10R_FAUST_CONCURRENCY": "-3", "V10R_FAUST_FETCH_WAIT_MS": "1e3"}, (1000, 1)),
])
def test_fetch_wait_and_concurrency_are_clamped_to_sane_values(env, expected) -> None:
    settings = FaustSettings.from_env(env)
    assert (settings.fetch_wait_ms, settings.concurrency) == expected


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = FaustSettings.from_env({"V10R_FAUST_BATCH_SIZE": "32",
                                       "V10R_FAUST_WEB_PORT": "6067",
                                       "V10R_FAUST_BATCH_WITHIN_S": "0.05"})
    assert (settings.batch_size, settings.web_port, settings.batch_within_s) == (32, 6067, 0.05)
    assert FaustSettings.from_env({}) == FaustSettings()
    assert FaustSettings().web_port is None and FaustSettings().store == "memory://"


@pytest.mark.parametrize("name", ["V10R_FAUST_BATCH_WITHIN_S", "V10R_FAUST_FETCH_WAIT_MS",
                                  "V10R_FAUST_CONCURRENCY", "V10R_FAUST_STANDBY_REPLICAS"])
def test_a_malformed_setting_names_the_variable(name: str) -> None:
    with pytest.raises(SpecError, match=name):
        FaustSettings.from_env({name: "soon"})


def test_progress_totals_add_up_every_run_of_a_pipeline_only() -> None:
    entries = [("docs/run1", {"processed": 3, "written": 2, "skipped": 1}),
               ("docs/run2", {"processed": 4, "written": 4, "unknown": 9}),
               ("docs_v2/run1", {"processed": 100})]
    assert total(entries, "docs") == Counters(processed=7, written=6, skipped=1)
