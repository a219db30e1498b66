"""bench/readers_load.py at a small size: it runs, every search answers, every reader sees every point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_readers_load_bench_prints_a_table_and_a_json_line_per_figure(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "readers_load.py"), "--base", "1000", "--images", "500", "--readers", "2",
         "--seconds", "5", "--dim", "32", "--batch", "100", "--workdir", str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = {row["figure"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert figures["searches failed"]["value"] == 0
    assert figures["readers that saw every point after the build"]["value"] == 2
    assert figures["searches answered"]["value"] > 0 and figures["searches answered"]["baseline"] > 0
    p95 = figures["search p95"]
    assert p95["ratio"] == pytest.approx(p95["value"] / p95["baseline"])
    assert {row["readers"] for row in figures.values()} == {2}
    assert "search p95" in done.stderr and "ratio" in done.stderr
    assert list(tmp_path.iterdir()) == []  # its store is removed
