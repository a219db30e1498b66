"""bench/query_latency.py at a small size: every filter selectivity has a row, its plan, and the store's costs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "query_latency.py"), "--skip-demo", "--points", "3000", "--dim", "16",
         "--queries", "10", *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", [None, "int8"])
def test_the_query_latency_bench_reports_every_selectivity(tmp_path, quantization):
    store = tmp_path / "store"
    done = _run("--store", str(store), *(["--quantization", quantization] if quantization else []))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["filter"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert list(rows) == ["none", "2 kingdoms", "phylum", "family"]
    assert rows["2 kingdoms"]["filter_fraction"] == pytest.approx(0.5, abs=0.1)
    assert rows["phylum"]["filter_fraction"] == pytest.approx(1 / 16, abs=0.03)
    assert rows["family"]["filter_fraction"] < 0.01
    for row in rows.values():
        assert row["recall_at_10"] >= 0.95
        assert row["disk_mb_per_million"] > 0 and row["serving_rss_mb_per_million"] > 0 and row["build_s"] >= 0
        assert row["quantization"] == (quantization or "none") and row["reused_store"] is False
    assert rows["family"]["plan"] == "exact"  # 6 points: scored exactly
    assert "RAM serving" in done.stderr and "plan" in done.stderr
    again = _run("--store", str(store), *(["--quantization", quantization] if quantization else []))
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(json.loads(line)["reused_store"] for line in again.stdout.splitlines())
