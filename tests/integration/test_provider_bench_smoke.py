"""The provider benchmark runs and reports in the documented JSON shape (speed not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_reports_json():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "providers.py"), "--quick", "--json"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, check=True)
    report = json.loads(done.stdout)
    assert report["quick"] is True and report["texts"] > 0 and report["threads"] >= 1
    assert [r["batch_size"] for r in report["results"]] == [1, 8]
    for result in report["results"]:
        assert result["target"] == "local"
        assert result["texts_per_s"] > 0 and result["raw_texts_per_s"] > 0
        assert 0 < result["p50_ms"] <= result["p95_ms"]
        assert result["ratio"] == pytest.approx(result["texts_per_s"] / result["raw_texts_per_s"])
