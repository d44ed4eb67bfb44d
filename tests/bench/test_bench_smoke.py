"""Every pipeline benchmark runs its tiny workload and reports the documented JSON shape.

Speed is never judged here: only that each script starts and stops its services, pushes
rows through the real pipeline, and reports positive numbers with a baseline beside them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


def run_bench(script: str, *args: str) -> dict[str, Any]:
    argv = [sys.executable, str(ROOT / "bench" / script), "--quick", "--json", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["quick"] is True
    assert report["machine"]["cpus"] >= 1 and report["machine"]["postgres"]
    return report


def test_pipeline_reports_rows_per_second_per_queue_and_operation_against_the_baseline():
    report = run_bench("pipeline.py", "--queues", "memory,redis,rabbitmq")
    assert report["benchmark"] == "pipeline"
    assert len(report["baseline_rows_per_s"]) == 2 and min(report["baseline_rows_per_s"]) > 0
    cases = {(r["queue"], r["workers"], r["op"]) for r in report["results"]}
    assert cases == {(q, 1, op) for q in ("memory", "redis", "rabbitmq")
                     for op in ("insert", "update")}
    for result in report["results"]:
        assert result["rows"] == report["rows"] and result["rows_per_s"] > 0
        assert result["ratio"] == pytest.approx(
            result["rows_per_s"] / result["baseline_rows_per_s"], rel=1e-2)


def test_pipeline_runs_two_worker_loops_over_the_embedded_kafka_broker():
    report = run_bench("pipeline.py", "--queues", "kafka", "--workers", "2", "--rows", "100")
    assert [r.get("error") for r in report["results"]] == [None, None]
    assert {(r["queue"], r["workers"], r["op"]) for r in report["results"]} == {
        ("kafka", 2, "insert"), ("kafka", 2, "update")}
    assert all(r["rows_per_s"] > 0 for r in report["results"])


def test_pipeline_runs_the_http_provider_on_every_queue_with_cpu_per_process():
    report = run_bench("pipeline.py", "--queues", "memory,redis,rabbitmq", "--rows", "200",
                       "--provider", "http-base64,http-float")
    assert [r.get("error") for r in report["results"]] == [None] * 12
    assert {(r["queue"], r["provider"], r["op"]) for r in report["results"]} == {
        (q, p, op) for q in ("memory", "redis", "rabbitmq")
        for p in ("http-base64", "http-float") for op in ("insert", "update")}
    for result in report["results"]:
        assert result["rows_per_s"] > 0
        cpu = result["cpu_us_per_row"]
        if result["queue"] == "memory":  # `listen --workers-in-process`: loops in the bench
            assert result["worker_processes"] == 0 and set(cpu) == {"bench", "server",
                                                                    "postgres"}
        else:  # the listener in the bench, one `v10r worker` process, the broker
            assert result["worker_processes"] == 1
            assert set(cpu) == {"bench", "worker1", "server", "broker", "postgres"}
            assert cpu["worker1"] > 0 and result["rows_per_batch"] > 0


def test_pipeline_runs_faust_workers_measured_like_the_v10r_worker_cases():
    report = run_bench("pipeline.py", "--queues", "memory", "--workers", "1", "--rows", "100",
                       "--faust", "1")
    faust = [r for r in report["results"] if r["queue"] == "faust"]
    assert [r.get("error") for r in faust] == [None, None]
    for result in faust:
        assert result["worker_processes"] == 1 and result["rows_per_s"] > 0
        assert set(result["cpu_us_per_row"]) == {"bench", "worker1", "server", "broker",
                                                 "postgres"}
        assert result["cpu_us_per_row"]["worker1"] > 0 and result["rows_per_batch"] > 0


def test_latency_reports_percentiles_per_queue_beside_the_round_trip_baseline():
    report = run_bench("latency.py")
    assert report["baseline"]["count"] == report["rows"]
    assert [r["queue"] for r in report["results"]] == ["memory", "redis"]
    for result in [report["baseline"], *report["results"]]:
        assert result["count"] == report["rows"]
        assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_model_reports_pipeline_and_raw_model_rates():
    (result,) = run_bench("model.py")["results"]
    assert result["rows_per_s"] > 0 and result["raw_texts_per_s"] > 0
    assert len(result["raw_runs"]) == 2
    assert result["ratio"] == pytest.approx(result["rows_per_s"] / result["raw_texts_per_s"],
                                            rel=1e-2)


def test_catchup_reports_rate_and_memory_along_the_scan():
    report = run_bench("catchup.py")
    (result,) = report["results"]
    assert result["rows"] == report["rows"] and result["rows_per_s"] > 0
    assert result["baseline_rows_per_s"] > 0
    assert set(result["rss_mb_at"]) == {"25%", "50%", "100%"}
    assert 0 < result["rss_before_mb"] <= result["peak_rss_mb"]


def test_memory_reports_listener_and_worker_rss_with_their_baselines():
    (result,) = run_bench("memory.py")["results"]
    assert result["embedded"] == result["rows"]
    for name in ("listener", "worker"):
        assert 0 < result[f"{name}_final_rss_mb"] <= result[f"{name}_peak_rss_mb"]
    assert result["model_rss_mb"] > result["cli_import_rss_mb"] > 0
    assert result["worker_target_mb"] == pytest.approx(200 + result["model_rss_mb"], abs=0.2)
