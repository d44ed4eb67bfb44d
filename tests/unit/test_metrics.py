"""Metrics render in Prometheus' text exposition format."""

import pytest

from v10r.ops.metrics import Sample, render

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
        'v10r_worker_written_total{pipeline="docs"} 3',
        'v10r_worker_written_total{pipeline="shop"} 5',
        "# HELP v10r_listener_buffered_tasks tasks waiting",
        "# TYPE v10r_listener_buffered_tasks gauge",
        "v10r_listener_buffered_tasks 0",
    ]


def test_label_values_are_escaped() -> None:
    line = render([Sample("x_total", 1, "h", labels=(("pipeline", 'a"b\\c\nd'),))]).splitlines()[-1]
    assert line == 'v10r_x_total{pipeline="a\\"b\\\\c\\nd"} 1'
