"""Metrics render in Prometheus' text exposition format (prometheus-client's)."""

import pytest
from prometheus_client import CollectorRegistry, Histogram

from v10r.ops.metrics import REGISTRY, Sample, render

pytestmark = pytest.mark.unit


def test_help_and_type_once_per_metric_then_one_line_per_sample() -> None:
    text = render([
        Sample("worker_written_total", 3, "rows written", labels=(("pipeline", "docs"),)),
        Sample("worker_written_total", 5, "rows written", labels=(("pipeline", "shop"),)),
        Sample("listener_buffered_tasks", 0, "tasks waiting", "gauge"),
    ])
    assert text.splitlines() == [
        "# HELP v10r_worker_written_total rows written",
        "# TYPE v10r_worker_written_total counter",
        'v10r_worker_written_total{pipeline="docs"} 3.0',
        'v10r_worker_written_total{pipeline="shop"} 5.0',
        "# HELP v10r_listener_buffered_tasks tasks waiting",
        "# TYPE v10r_listener_buffered_tasks gauge",
        "v10r_listener_buffered_tasks 0.0",
    ]


def test_label_values_are_escaped() -> None:
    line = render([Sample("x_total", 1, "h", labels=(("pipeline", 'a"b\\c\nd'),))]).splitlines()[-1]
    assert line == 'v10r_x_total{pipeline="a\\"b\\\\c\\nd"} 1.0'


def test_no_samples_render_an_empty_exposition() -> None:
    assert render([]) == ""


def test_histograms_and_build_info_come_with_the_process_registry() -> None:
    text = render([Sample("worker_batches_total", 1, "batches")], registry=REGISTRY)
    for name in ("v10r_batch_duration_seconds", "v10r_provider_request_seconds",
                 "v10r_enqueue_to_write_seconds"):
        assert f"# TYPE {name} histogram" in text
    assert 'v10r_build_info{version="' in text
    assert text.rstrip().endswith("v10r_worker_batches_total 1.0")


def test_a_registry_histogram_renders_its_buckets_sum_and_count() -> None:
    registry = CollectorRegistry()
    latency = Histogram("v10r_t_seconds", "t", ["pipeline"], registry=registry,
                        buckets=(0.1, 1))
    latency.labels("docs").observe(0.5)
    text = render([], registry=registry)
    assert 'v10r_t_seconds_bucket{le="0.1",pipeline="docs"} 0.0' in text
    assert 'v10r_t_seconds_bucket{le="1.0",pipeline="docs"} 1.0' in text
    assert 'v10r_t_seconds_count{pipeline="docs"} 1.0' in text
