"""bench/build_write_path.py at a small size: every path writes every point, one JSON line each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_write_path_bench_prints_a_table_and_a_json_line_per_path():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "build_write_path.py"), "--points", "700", "--batch-size", "64",
         "--flush-points", "256", "--species", "30", "--dim", "16", "--repeats", "1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["path"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == {"sync", "writer", "store", "catalog"}
    for row in rows.values():  # the bench asserts each path stored and marked all 700 points
        assert row["points"] == 700 and row["points_per_s"] > 0 and row["points_per_cpu_s"] > 0
        assert row["over_sync"] == pytest.approx(row["points_per_s"] / rows["sync"]["points_per_s"], rel=0.01)
    assert rows["sync"]["over_sync"] == 1.0 and rows["writer"]["flush_points"] == 256
    assert "over sync" in done.stderr
